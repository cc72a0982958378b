from lotteryprune import bench, io, runtime
from lotteryprune.model.heads import load_masks

log = runtime.start(snakemake)
p = snakemake.params
head_keep, weight_masks = load_masks(snakemake.input.mask)
result = bench.compare(
    snakemake.input.model,
    head_keep,
    weight_masks,
    **dict(p.bench),
    seed=p.seed,
    device=runtime.device({"device": p.device}),
)
result.update({"method": snakemake.wildcards.method, "selection": snakemake.wildcards.selection, "rate": int(snakemake.wildcards.rate)})
result["unit"] = "weights" if weight_masks else "heads"
log.info("measured speed-up %.3f, FLOP speed-up %.3f", result["measured_speedup"], result["flop_speedup"])
io.write_json(snakemake.output.json, result)
