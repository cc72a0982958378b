"""The stratified, seeded train/valid/test split of the labelled data (rule split)."""

import pandas as pd

from lotteryprune import data, io, runtime

log = runtime.start(snakemake)
table = data.split(pd.read_parquet(snakemake.input.table), snakemake.params.fractions, snakemake.params.seed)
counts = table.groupby("split")["label"].agg(["count", "mean"])
log.info("split sizes and positive rates:\n%s", counts)
io.write_parquet(snakemake.output.table, table)
io.write_json(
    snakemake.output.summary,
    {
        "sizes": counts["count"].to_dict(),
        "positive_rate": counts["mean"].to_dict(),
        "config": {"fractions": dict(snakemake.params.fractions), "seed": snakemake.params.seed},
    },
)
