"""Tables 4, 5, 6 and claims.csv from every fine-tuning cell, Table 2 and the benchmarks (rule tables)."""

import pandas as pd

from lotteryprune import io, runtime
from lotteryprune.report import tables

log = runtime.start(snakemake)
p = snakemake.params
settings = tables.Settings(**dict(p.settings))
results = tables.load_results(snakemake.input.finetune, settings)
table2 = pd.read_csv(snakemake.input.table2)
summaries = {s["selection"]: s for s in map(io.read_json, snakemake.input.table6_summaries)}
bench = {b["method"]: b for b in map(io.read_json, snakemake.input.bench)}
table2_preds = tables.table2_predictions(
    {m: pd.read_parquet(path) for m, path in zip(p.compressors, snakemake.input.labels)}, results.ids
)
model = io.read_json(snakemake.input.model_info)
t5 = tables.table5(results, model=f"{p.model} ({model['layers']}x{model['heads']} heads)", data=p.data, bench=bench)
t4 = tables.table4(results, table2, table2_file=snakemake.input.table2)
t6 = tables.table6(results, summaries)
claims = tables.claims(results, rates=list(p.rates), table2_preds=table2_preds, bench=bench)
protocols = tables.own_protocol(map(io.read_json, snakemake.input.summaries), settings.metric)
for name, table in (("table4", t4), ("table5", t5), ("table6", t6), ("claims", claims), ("protocols", protocols)):
    log.info("%s:\n%s", name, table.drop(columns=["files"], errors="ignore").to_string())
    io.write_csv(snakemake.output[name], table)
