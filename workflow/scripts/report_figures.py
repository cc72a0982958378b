"""Figures 7 (score vs rate), 8 (time vs rate), 9 (GA kept-head grids) and the GA's fitness
curves (rule figures)."""

import numpy as np

from lotteryprune import io, runtime
from lotteryprune.report import figures, tables

log = runtime.start(snakemake)
settings = tables.Settings(**dict(snakemake.params.settings))
results = tables.load_results(snakemake.input.finetune, settings)
bench = {b["method"]: b for b in map(io.read_json, snakemake.input.bench)}
figures.figure7(results, snakemake.output.fig7)
figures.figure8(results, bench, snakemake.output.fig8)
summaries = [io.read_json(p) for p in snakemake.input.ga]
# Figure 9 shows the first search seed's mask at each rate, as the paper shows one mask per rate
figures.plot_head_grids(
    {s["rate"]: np.array(s["runs"][0]["head_keep"], dtype=bool) for s in summaries}, snakemake.output.fig9
)
figures.plot_fitness_history(
    {s["rate"]: [r["history"] for r in s["runs"]] for s in summaries}, snakemake.output.fitness, metric=settings.metric
)
log.info("figures written")
