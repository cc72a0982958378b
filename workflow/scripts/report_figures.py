import numpy as np
import pandas as pd

from lotteryprune import io, report, runtime
from lotteryprune.report import figures

log = runtime.start(snakemake)
frame = report.load_finetune(snakemake.input.finetune)
ref_f1, _ = report.reference_f1(frame)
sel = frame[(frame["selection"] == snakemake.params.selection) | (frame["method"] == "unpruned")]
agg = report.aggregate(sel[sel["method"] != "unpruned"], ["method", "augmentation", "rate"])
figures.figure7(agg, ref_f1, snakemake.output.fig7)
bench = pd.DataFrame(
    [
        {
            "method": b["method"],
            "rate": b["rate"],
            "pruned_ms": b["pruned"]["latency_s"] * 1e3,
            "unpruned_ms": b["unpruned"]["latency_s"] * 1e3,
        }
        for b in map(io.read_json, snakemake.input.bench)
    ]
)
figures.figure8(agg[agg["augmentation"] == "none"], bench, snakemake.output.fig8)
summaries = [io.read_json(p) for p in snakemake.input.ga]
figures.plot_head_grids({s["rate"]: np.array(s["head_keep"], dtype=bool) for s in summaries}, snakemake.output.fig9)
figures.plot_fitness_history({s["rate"]: s["history"] for s in summaries}, snakemake.output.fitness)
log.info("figures written")
