# The paper's tables, the claims file and the figures, computed from result files only.


# Tables 4, 5, 6, claims.csv and protocols.csv from every fine-tuning result, table2, the
# prune summaries and the benchmarks.
rule tables:
    input:
        finetune=all_finetune_cells(),
        table2="results/table2.csv",
        labels=expand(
            "results/compress/{compressor}/labels.parquet",
            compressor=config["compress"]["methods"],
        ),
        table6_summaries=table6_summaries(),
        summaries=prune_summaries(),
        bench=bench_paths(),
        model_info=rules.pretrained_model.output.info,
    output:
        table4=report(
            "results/table4.csv",
            caption="../workflow/report/table4.rst",
            category="Tables",
        ),
        table5=report(
            "results/table5.csv",
            caption="../workflow/report/table5.rst",
            category="Tables",
        ),
        table6=report(
            "results/table6.csv",
            caption="../workflow/report/table6.rst",
            category="Tables",
        ),
        claims=report(
            "results/claims.csv",
            caption="../workflow/report/claims.rst",
            category="Tables",
        ),
        protocols=report(
            "results/protocols.csv",
            caption="../workflow/report/protocols.rst",
            category="Tables",
        ),
    log:
        "results/report/tables.log",
    benchmark:
        "results/benchmarks/report/tables.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=REPORT_SETTINGS,
        rates=PRUNE_RATES,
        compressors=config["compress"]["methods"],
        model=config["model"]["source"],
        data=config["data"]["labelled"]["format"],
    script:
        "../workflow/scripts/report_tables.py"


# Figures 7 (F1 vs rate), 8 (time vs rate), 9 (kept-head grids) and GA fitness curves.
rule figures:
    input:
        finetune=all_finetune_cells(),
        bench=bench_paths(),
        ga=ga_summaries(),
    output:
        fig7=report(
            "results/figures/fig7_f1_vs_rate.png",
            caption="../workflow/report/fig7.rst",
            category="Figures",
        ),
        fig8=report(
            "results/figures/fig8_time_vs_rate.png",
            caption="../workflow/report/fig8.rst",
            category="Figures",
        ),
        fig9=report(
            "results/figures/fig9_head_grids.png",
            caption="../workflow/report/fig9.rst",
            category="Figures",
        ),
        fitness=report(
            "results/figures/ga_fitness.png",
            caption="../workflow/report/fitness.rst",
            category="Figures",
        ),
    log:
        "results/report/figures.log",
    benchmark:
        "results/benchmarks/report/figures.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=REPORT_SETTINGS,
    script:
        "../workflow/scripts/report_figures.py"


# Beyond the paper (issue #18): the speed-quality frontier of every method in prune.methods
# (config/beyond.yaml adds fisher, fisher_heads and ga_ffn): test metric vs measured speed-up
# at every rate, and for the methods in finetune.methods with every augmentation too. Not
# part of `all`; build it with
#   snakemake results/frontier.csv --cores 2 --configfile config/config.yaml config/beyond.yaml
rule frontier:
    input:
        finetune=frontier_cells(),
        bench=bench_paths(),
    output:
        points="results/frontier.csv",
        table="results/frontier_table.csv",
        versus="results/frontier_versus.csv",
        figure=report(
            "results/figures/frontier.png",
            caption="../workflow/report/frontier.rst",
            category="Figures",
        ),
    log:
        "results/report/frontier.log",
    benchmark:
        "results/benchmarks/report/frontier.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=REPORT_SETTINGS,
    script:
        "../workflow/scripts/report_frontier.py"
