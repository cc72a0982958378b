# Inference benchmark of each pruning result against the unpruned model, in one process.


# Latency/throughput/params/FLOPs of every physically pruned model of one method (each rate
# and seed) against the unpruned one, interleaved. It takes every core the run has, so no
# other job shares the CPU while it times (timings beside other jobs were noise).
rule bench_inference:
    input:
        model=rules.pretrained_model.output.model,
        masks=bench_masks,
    output:
        json="results/bench/{method}/{selection}.json",
    log:
        "results/bench/{method}/{selection}.log",
    benchmark:
        "results/benchmarks/bench/{method}/{selection}.tsv"
    conda:
        "../envs/torch.yaml"
    # a function, read when the job is built: the Snakefile must parse without --cores
    # (Slurm runs have none; profiles/slurm's set-threads sizes this rule there)
    threads: lambda wildcards: workflow.cores
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        rates=PRUNE_RATES,
        bench=config["bench"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow/scripts/bench_run.py"
