"""A UMAP map of the train embeddings with every selector's picks (rule select_umap)."""

import pandas as pd

from lotteryprune import io, runtime, select

log = runtime.start(snakemake)
p = snakemake.params
train = select.train_rows(pd.read_parquet(snakemake.input.split))
ids = train["id"].tolist()
embeddings = select.aligned_embeddings(snakemake.input.embeddings, ids)
records = [io.read_json(path) for path in snakemake.input.picks]
select.selection_figure(
    embeddings,
    ids,
    train["label"].tolist(),
    records,
    snakemake.output.png,
    n_neighbors=p.umap["n_neighbors"],
    min_dist=p.umap["min_dist"],
    seed=p.seed,
)
log.info("selection map of %d selections written", len(records))
