# The paper's final step: augmented training with 0-shot compressed labels, then the true
# labels, evaluated once on the test split. The unpruned model is the reference. One job
# per cell runs every (search seed, fine-tuning seed) pair of the cell.


# Fine-tune each mask of one pruning cell (method, lottery sample, rate) with one augmentation.
rule finetune:
    input:
        unpack(augmentation_inputs),
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
        masks=rules.prune.output.masks,
    output:
        **saved_models("results/finetune/{method}/{selection}/{rate}/{augmentation}"),
        metrics="results/finetune/{method}/{selection}/{rate}/{augmentation}/metrics.json",
        predictions="results/finetune/{method}/{selection}/{rate}/{augmentation}/predictions.parquet",
    log:
        "results/finetune/{method}/{selection}/{rate}/{augmentation}/finetune.log",
    benchmark:
        "results/benchmarks/finetune/{method}/{selection}/{rate}/{augmentation}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        **FINETUNE_PARAMS,
        runs=method_runs,
    script:
        "../workflow/scripts/finetune_run.py"


# The unpruned model through the same recipe, one run per fine-tuning seed: what "lossless"
# is measured against.
rule finetune_reference:
    input:
        unpack(augmentation_inputs),
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
    output:
        **saved_models("results/finetune/unpruned/{augmentation}"),
        metrics="results/finetune/unpruned/{augmentation}/metrics.json",
        predictions="results/finetune/unpruned/{augmentation}/predictions.parquet",
    log:
        "results/finetune/unpruned/{augmentation}/finetune.log",
    benchmark:
        "results/benchmarks/finetune/unpruned/{augmentation}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        **FINETUNE_PARAMS,
        runs=method_runs,
    script:
        "../workflow/scripts/finetune_run.py"
