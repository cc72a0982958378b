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
    n_neighbors=p.umap.get("n_neighbors", 15),
    min_dist=p.umap.get("min_dist", 0.1),
    seed=p.seed,
)
log.info("selection map of %d selections written", len(records))
