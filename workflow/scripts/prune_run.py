import time

import pandas as pd

from lotteryprune import io, runtime
from lotteryprune.prune import run_method, score_mask
from lotteryprune.prune.task import build_task
from lotteryprune.model.heads import save_masks

log = runtime.start(snakemake)
p = snakemake.params
wc = snakemake.wildcards
config = {
    "seed": p.seed,
    "model": {"max_length": p.max_length},
    "prune": {"train": dict(p.train), "fitness_valid_size": p.fitness_valid_size, wc.method: dict(p.method_params)},
}
task = build_task(
    pd.read_parquet(snakemake.input.split),
    io.read_json(snakemake.input.sample)["ids"],
    config,
    rate=int(wc.rate),
    model_dir=snakemake.input.model,
    method=wc.method,
    workdir=io.fingerprint_dir(p.workdir, config),
    device=runtime.device({"device": p.device}),
    threads=snakemake.threads,
)
start = time.perf_counter()
result = run_method(wc.method, task)
search_seconds = time.perf_counter() - start
# Every method's mask is scored by the same short training, so the F1s compare.
scored = score_mask(task, result.head_keep, result.weight_masks)
log.info("%s at %s%%: achieved rate %.4f, valid F1 %.4f", wc.method, wc.rate, result.achieved_rate(), scored["f1"])
save_masks(snakemake.output.mask, result.head_keep, result.weight_masks)
io.write_json(
    snakemake.output.summary,
    {
        "method": wc.method,
        "selection": wc.selection,
        "rate": int(wc.rate),
        "unit": result.unit,
        "achieved_rate": result.achieved_rate(),
        "head_keep": result.head_keep.astype(int).tolist(),
        "search_seconds": search_seconds,
        "valid": scored,
        "history": result.history,
        "extras": result.extras,
        "lottery_size": len(task.train_texts),
        "valid_size": len(task.valid_texts),
        "config": config,
    },
)
