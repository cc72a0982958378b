# The paper's final step: augmented training with 0-shot compressed labels, then the true
# labels, evaluated once on the test split. The unpruned model is the reference.


# Fine-tune one pruning result (method, lottery sample, rate) with one augmentation and seed.
rule finetune:
    input:
        unpack(augmentation_inputs),
        model=rules.model.output.model,
        split=rules.split.output.table,
        mask=rules.prune.output.mask,
    output:
        metrics="results/finetune/{method}/{sel}/{rate}/{aug}/seed{seed}/metrics.json",
    log:
        "results/finetune/{method}/{sel}/{rate}/{aug}/seed{seed}/finetune.log",
    benchmark:
        "results/benchmarks/finetune/{method}/{sel}/{rate}/{aug}/seed{seed}.tsv"
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
        model=rules.model.output.model,
        split=rules.split.output.table,
    output:
        metrics="results/finetune/unpruned/{aug}/seed{seed}/metrics.json",
    log:
        "results/finetune/unpruned/{aug}/seed{seed}/finetune.log",
    benchmark:
        "results/benchmarks/finetune/unpruned/{aug}/seed{seed}.tsv"
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
