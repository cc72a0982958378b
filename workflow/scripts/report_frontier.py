"""The speed-quality frontier (rule frontier): every method and rate, test metric vs measured
speed-up, the speed-up each method reaches at no significant loss / within the allocation,
and the GA vs Kwon et al. head to head."""

from lotteryprune import io, runtime
from lotteryprune.report import frontier, tables

log = runtime.start(snakemake)
settings = tables.Settings(**dict(snakemake.params.settings))
out = frontier.report(snakemake.input.finetune, snakemake.input.bench, settings)
for name in ("points", "table", "versus"):
    log.info("%s:\n%s", name, out[name].drop(columns=["files"], errors="ignore").to_string())
    io.write_csv(snakemake.output[name], out[name])
frontier.figure(
    out["points"], snakemake.output.figure, metric=settings.metric, allocation_points=settings.loss_allocation
)
