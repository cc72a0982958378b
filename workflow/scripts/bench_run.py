"""Inference speed of every pruned model of one method (each rate and seed) against the
unpruned model, interleaved in one process that has the whole machine (rule bench_inference)."""

from lotteryprune import bench, io, runtime
from lotteryprune.model.heads import load_mask_set, mask_set_unit

log = runtime.start(snakemake)
p = snakemake.params
masks, units = {}, {}
for rate, path in zip(p.rates, snakemake.input.masks):
    units[int(rate)] = mask_set_unit(path)  # what the rate counts: heads | weights | flops
    for seed, mask in load_mask_set(path).items():
        masks[(int(rate), seed)] = mask
timed = bench.compare_masks(
    snakemake.input.model,
    masks,
    **dict(p.bench),
    seed=p.seed,
    device=runtime.device({"device": p.device}),
)
entries = []
for (rate, seed), record in timed.items():
    entries.append({"rate": rate, "seed": seed, "unit": units[rate], **record})
    log.info(
        "%s%% seed %d: measured speed-up %.3f [%.3f, %.3f], FLOP speed-up %.3f, realised %s %s",
        rate,
        seed,
        record["measured_speedup"],
        *record["measured_speedup_ci"],
        record["flop_speedup"],
        record["realised"],
        record["realised_ci"],
    )
io.write_json(
    snakemake.output.json,
    {
        "method": snakemake.wildcards.method,
        "selection": snakemake.wildcards.selection,
        "file": snakemake.output.json,
        "entries": entries,
    },
)
