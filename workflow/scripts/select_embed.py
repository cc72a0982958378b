"""Embed the train split once with the pretrained encoder, for K-means selection and the map (rule embed)."""

import pandas as pd

from lotteryprune import runtime, select

log = runtime.start(snakemake)
p = snakemake.params
train = select.train_rows(pd.read_parquet(snakemake.input.split))
embeddings = select.embed_train(
    snakemake.input.model,
    train["text"].astype(str).tolist(),
    batch_size=p.batch_size,
    max_length=p.max_length,
    device=runtime.device({"device": p.device}),
)
log.info("embedded %d train texts: %s", len(train), embeddings.shape)
select.write_embeddings(snakemake.output.embeddings, train["id"].tolist(), embeddings)
