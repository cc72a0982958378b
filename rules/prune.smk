# The pruning stage: one job per cell (method, lottery sample, prune rate), every method
# behind one interface (lotteryprune.prune), every output the same kind of file. A cell
# holds one mask per search seed (prune.seeds; random: its draws).


# Search a keep-mask (or weight mask) per seed for one method at one prune rate; score each
# by the shared short training on the lottery sample.
rule prune:
    input:
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
        sample="results/select/{selection}/ids.json",
    output:
        masks="results/prune/{method}/{selection}/{rate}/masks.safetensors",
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
        seeds=search_seeds_of,
        method_params=method_params,
        train=config["prune"]["train"],
        valid_size=config["prune"]["fitness_valid_size"],
        metric=config["metric"],
        max_length=config["model"]["max_length"],
        dtype=config["dtype"],
        device=config["device"],
        workdir=lambda wc: f"results/prune/{wc.method}/{wc.selection}/{wc.rate}/work",
    script:
        "../workflow/scripts/prune_run.py"
