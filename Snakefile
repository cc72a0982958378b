# Genetic lottery head pruning (Bluteau & Gras, 2025) and its competitors, end to end.
# Entry point only: the config, one include per stage, and the default target.


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/zeroshot.smk"
include: "rules/compress.smk"
include: "rules/select.smk"
include: "rules/prune.smk"
include: "rules/finetune.smk"
include: "rules/bench.smk"
include: "rules/report.smk"


# Everything the paper reports: tables 2, 4, 5, 6, the claims and the figures.
rule all:
    default_target: True
    input:
        rules.tables.output,
        rules.figures.output,
        "results/table2.csv",
        "results/figures/selection_umap.png",
        saved_model_dirs(),
