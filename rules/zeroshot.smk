# The zeroshot stage: a score in [0,1] per text for every emotion hypothesis and the direct
# positive/negative hypotheses (NSP or embedding similarity, by config zeroshot.scorer).
# Two steps: the expensive raw scoring, per dataset and resumable; then one calibration,
# fitted on the labelled train split and applied to both datasets.


# Raw scorer output (P(is next) or cosines) of one dataset, in resumable chunks.
rule zeroshot:
    input:
        texts=zeroshot_texts,
        model=rules.pretrained_model.output.model,
        emotions="config/emotions.yaml",
    output:
        raw="results/zeroshot/raw/{dataset}.parquet",
        info="results/zeroshot/raw/{dataset}.json",
    log:
        "results/zeroshot/raw/{dataset}.log",
    benchmark:
        "results/benchmarks/zeroshot/{dataset}.tsv"
    wildcard_constraints:
        dataset="labelled|extra",
    # the head of the longest chain (0-shot -> compression -> augmented fine-tuning): start it first
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        zeroshot=config["zeroshot"],
        max_length=config["model"]["max_length"],
        device=config["device"],
        workdir=lambda wc: f"results/zeroshot/.work/{wc.dataset}",
    script:
        "../workflow/scripts/zeroshot_score.py"


# Scores in [0,1] for both datasets: the calibration (similarity: one scale) is fitted on the
# labelled train split's raw scores, without labels, and applied to both; NSP: unchanged.
rule zeroshot_calibrate:
    input:
        split="results/data/split.parquet",
        labelled=rules.zeroshot.output.raw.format(dataset="labelled"),
        extra=rules.zeroshot.output.raw.format(dataset="extra"),
        emotions="config/emotions.yaml",
    output:
        labelled="results/zeroshot/labelled.parquet",
        extra="results/zeroshot/extra.parquet",
        calibration="results/zeroshot/calibration.json",
    log:
        "results/zeroshot/calibration.log",
    benchmark:
        "results/benchmarks/zeroshot/calibrate.tsv"
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        scorer=config["zeroshot"]["scorer"],
    script:
        "../workflow/scripts/zeroshot_calibrate.py"
