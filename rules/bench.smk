# Inference benchmark of each pruning result against the unpruned model, same process.


# Latency/throughput/params/FLOPs of the physically pruned model vs the unpruned one.
rule bench_inference:
    input:
        model=rules.pretrained_model.output.model,
        mask=rules.prune.output.mask,
    output:
        json="results/bench/{method}/{selection}/{rate}.json",
    log:
        "results/bench/{method}/{selection}/{rate}.log",
    benchmark:
        "results/benchmarks/bench/{method}/{selection}/{rate}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        bench=config["bench"],
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../workflow/scripts/bench_run.py"
