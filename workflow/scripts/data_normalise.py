"""Parse one raw source into id/text/label/source and report every dropped row by reason (rule normalise)."""

from lotteryprune import data, io, runtime

log = runtime.start(snakemake)
p = snakemake.params
table, report = data.normalise(
    snakemake.input.raw, p.format, member=p.member, max_rows=p.max_rows, seed=p.seed, name=p.source
)
report["config"] = {"source": p.source, "format": p.format, "member": p.member, "max_rows": p.max_rows, "seed": p.seed}
log.info("kept %d of %d rows; dropped %s", report["kept"], report["read"], report["dropped"])
io.write_parquet(snakemake.output.table, table)
io.write_json(snakemake.output.report, report)
