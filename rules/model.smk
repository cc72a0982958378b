# The model stage: the pretrained model, materialised once into results/model so every
# stage reads the same one.


# Resolve config model.source (package, hub, path or tiny) into one local checkpoint.
rule pretrained_model:
    output:
        model=directory("results/model/pretrained"),
        info="results/model/model.json",
    log:
        "results/model/model.log",
    benchmark:
        "results/benchmarks/model/pretrained.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        source=config["model"]["source"],
        revision=config["model"].get("revision"),
        seed=config["seed"],
    script:
        "../workflow/scripts/model_pretrained.py"
