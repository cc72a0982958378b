# The compress stage: 0-shot emotion scores -> one sentiment label per text, per method,
# fitted on the train split's scores only (no labels); Table 2 compares them on test.


# Fit one compression method on train scores; label every labelled and extra text.
rule compress:
    input:
        split="results/data/split.parquet",
        extra_texts="results/data/extra.parquet",
        labelled=rules.zeroshot_calibrate.output.labelled,
        extra=rules.zeroshot_calibrate.output.extra,
        emotions="config/emotions.yaml",
    output:
        labels="results/compress/{compressor}/labels.parquet",
        metrics="results/compress/{compressor}/metrics.json",
    log:
        "results/compress/{compressor}/compress.log",
    benchmark:
        "results/benchmarks/compress/{compressor}.tsv"
    wildcard_constraints:
        compressor="|".join(config["compress"]["methods"]),
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        method=lambda wc: wc.compressor,
        settings=compress_settings,
        boundary=lambda wc: (
            config["compress"]["boundary"] if wc.compressor == "lda" else None
        ),
        code_threshold=lambda wc: (
            config["compress"]["code_threshold"]
            if wc.compressor in ("pca", "ae", "vae")
            else None
        ),
        seed=config["seed"],
    script:
        "../workflow/scripts/compress_fit.py"


# Table 2: accuracy, F1 and MCC of every compression method on the test split.
rule table2:
    input:
        split="results/data/split.parquet",
        labels=expand(
            rules.compress.output.labels, compressor=config["compress"]["methods"]
        ),
    output:
        table="results/table2.csv",
    log:
        "results/compress/table2.log",
    benchmark:
        "results/benchmarks/table2/table2.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=config["compress"]["methods"],
    script:
        "../workflow/scripts/compress_table2.py"
