"""Fit one label-compression method on the train split's 0-shot scores; label every text."""

import pandas as pd

from lotteryprune import compress, io, runtime, zeroshot

log = runtime.start(snakemake)
p = snakemake.params
emotions = zeroshot.load_emotions(snakemake.input.emotions)
labelled = compress.join_scores(
    pd.read_parquet(snakemake.input.split), pd.read_parquet(snakemake.input.labelled), name=snakemake.input.labelled
)
extra = compress.join_scores(
    pd.read_parquet(snakemake.input.extra_texts), pd.read_parquet(snakemake.input.extra), name=snakemake.input.extra
)
cfg = {p.method: p.settings, "boundary": p.boundary, "code_threshold": p.code_threshold}
labels, metrics = compress.compress(p.method, labelled, extra, emotions, cfg, seed=p.seed)
io.write_parquet(snakemake.output.labels, labels)
io.write_json(
    snakemake.output.metrics,
    {
        **metrics,
        "config": {
            "method": p.method,
            "settings": p.settings,
            "boundary": p.boundary,
            "code_threshold": p.code_threshold,
            "seed": p.seed,
        },
    },
)
log.info("%s: test %s, fit %.1f s", p.method, metrics["test"], metrics["fit_seconds"])
