# Genetic lottery head pruning (Bluteau & Gras, 2025) and its competitors, end to end.
# Entry point only: the config, one include per stage, and the default target.


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"


rule all:
    default_target: True
    input:
        rules.split.output.table,
