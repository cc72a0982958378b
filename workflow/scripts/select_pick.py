"""Pick one lottery sample: seeded random rows or the rows nearest K-means centres (rule select)."""

import pandas as pd

from lotteryprune import io, runtime, select

log = runtime.start(snakemake)
p = snakemake.params
train = select.train_rows(pd.read_parquet(snakemake.input.split))
ids = train["id"].tolist()
embeddings = select.aligned_embeddings(snakemake.input.embeddings, ids) if p.selector == "kmeans" else None
record = select.select(p.selector, float(p.rate), ids, train["label"].tolist(), p.seed, embeddings=embeddings)
log.info(
    "%s at %s%%: %d of %d train samples, class balance %s",
    p.selector,
    p.rate,
    record["n"],
    len(ids),
    record["class_balance"],
)
io.write_json(snakemake.output.ids, record)
