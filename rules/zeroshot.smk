# The zeroshot stage: a score in [0,1] per text for every emotion hypothesis and the direct
# positive/negative hypotheses (NSP or embedding similarity, by config zeroshot.scorer).


# Score every text of one dataset against every hypothesis, in resumable chunks.
rule zeroshot:
    input:
        texts=zeroshot_texts,
        model=rules.pretrained_model.output.model,
        emotions="config/emotions.yaml",
    output:
        scores="results/zeroshot/{dataset}.parquet",
        info="results/zeroshot/{dataset}.json",
    log:
        "results/zeroshot/{dataset}.log",
    benchmark:
        "results/benchmarks/zeroshot/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        zeroshot=config["zeroshot"],
        max_length=config["model"]["max_length"],
        device=config.get("device", "auto"),
        workdir=lambda wc: f"results/zeroshot/.work/{wc.dataset}",
    script:
        "../workflow/scripts/zeroshot_score.py"
