import pandas as pd

from lotteryprune import io, report, runtime

log = runtime.start(snakemake)
p = snakemake.params
frame = report.load_finetune(snakemake.input.finetune)
table2 = pd.read_csv(snakemake.input.table2)
summaries = {}
for path in snakemake.input.table6_summaries:
    s = io.read_json(path)
    summaries[s["selection"]] = s
model = io.read_json(snakemake.input.model_info)
t5 = report.table5(
    frame,
    selection=p.selection,
    loss_allocation=p.loss_allocation,
    model=f"{p.model} ({model['layers']}x{model['heads']} heads)",
    data=p.data,
)
t4 = report.table4(frame, table2, rate=p.rate, selection=p.selection, table2_file=snakemake.input.table2)
t6 = report.table6(frame, summaries, rate=p.rate)
claims = report.claims(frame, t4, t5, t6, selection=p.selection, rate=p.rate)
for name, table in (("table4", t4), ("table5", t5), ("table6", t6), ("claims", claims)):
    log.info("%s:\n%s", name, table.drop(columns=["files"], errors="ignore").to_string())
    io.write_csv(snakemake.output[name], table)
