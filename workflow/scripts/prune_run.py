"""Search one pruning cell (method, lottery sample, rate): one mask per search seed, each
scored by the shared short training (rule prune)."""

import pandas as pd

from lotteryprune import io, runtime
from lotteryprune.model.heads import save_mask_set
from lotteryprune.prune import prune_cell

log = runtime.start(snakemake)
p = snakemake.params
wc = snakemake.wildcards
masks, summary = prune_cell(
    wc.method,
    split=pd.read_parquet(snakemake.input.split),
    sample_ids=io.read_json(snakemake.input.sample)["ids"],
    model_dir=snakemake.input.model,
    rate=int(wc.rate),
    seeds=list(p.seeds),
    params=dict(p.method_params),
    train=dict(p.train),
    valid_size=p.valid_size,
    metric=p.metric,
    max_length=p.max_length,
    dtype=p.dtype,
    device=runtime.device({"device": p.device}),
    threads=snakemake.threads,
    workdir=p.workdir,
    inputs={"model": snakemake.input.model, "split": snakemake.input.split, "sample": snakemake.input.sample},
)
save_mask_set(snakemake.output.masks, masks, unit=summary["unit"])
io.write_json(snakemake.output.summary, {"selection": wc.selection, **summary})
