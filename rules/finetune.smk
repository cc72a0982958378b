# The paper's final step: augmented training with 0-shot compressed labels, then the true
# labels, evaluated once on the test split. The unpruned model is the reference.


# Fine-tune one pruning result (method, lottery sample, rate) with one augmentation and seed.
rule finetune:
    input:
        unpack(augmentation_inputs),
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
        mask=rules.prune.output.mask,
    output:
        metrics="results/finetune/{method}/{selection}/{rate}/{augmentation}/seed{seed}/metrics.json",
    log:
        "results/finetune/{method}/{selection}/{rate}/{augmentation}/seed{seed}/finetune.log",
    benchmark:
        "results/benchmarks/finetune/{method}/{selection}/{rate}/{augmentation}/seed{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        **FINETUNE_PARAMS,
    script:
        "../workflow/scripts/finetune_run.py"


# The unpruned model through the same recipe: what "lossless" is measured against.
rule finetune_reference:
    input:
        unpack(augmentation_inputs),
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
    output:
        metrics="results/finetune/unpruned/{augmentation}/seed{seed}/metrics.json",
    log:
        "results/finetune/unpruned/{augmentation}/seed{seed}/finetune.log",
    benchmark:
        "results/benchmarks/finetune/unpruned/{augmentation}/seed{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        **FINETUNE_PARAMS,
    script:
        "../workflow/scripts/finetune_run.py"
