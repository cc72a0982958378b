# The pruning stage: one job per (method, lottery sample, prune rate), every method behind
# one interface (lotteryprune.prune.METHODS), every output the same kind of file.


# Search/score a keep-mask (or weight mask) for one method at one prune rate.
rule prune:
    input:
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
        sample="results/select/{selection}/ids.json",
    output:
        mask="results/prune/{method}/{selection}/{rate}/mask.safetensors",
        summary="results/prune/{method}/{selection}/{rate}/summary.json",
    log:
        "results/prune/{method}/{selection}/{rate}/prune.log",
    benchmark:
        "results/benchmarks/prune/{method}/{selection}/{rate}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        method_params=method_params,
        train=config["prune"]["train"],
        fitness_valid_size=config["prune"].get("fitness_valid_size"),
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config.get("device", "auto"),
        workdir=lambda wc: f"results/prune/{wc.method}/{wc.selection}/{wc.rate}/work",
    script:
        "../workflow/scripts/prune_run.py"
