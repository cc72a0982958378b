# The lottery sample stage: which few train rows the pruning searches train on. One
# embedding pass of the train split serves K-means selection at every rate and the map.


# Embed the train split once with the pretrained encoder (mean-pooled, L2-normalised).
rule embed:
    input:
        model=rules.pretrained_model.output.model,
        split=rules.split.output.table,
    output:
        embeddings="results/select/train_embeddings.npz",
    log:
        "results/select/train_embeddings.log",
    benchmark:
        "results/benchmarks/embed/embed.tsv"
    # K-means selections feed GA searches and fine-tuning: before the independent prune jobs
    priority: 5
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        batch_size=config["select"]["batch_size"],
        max_length=config["model"]["max_length"],
        device=config["device"],
    script:
        "../workflow/scripts/select_embed.py"


# Pick the lottery sample: seeded random rows, or the rows nearest K-means centres.
rule select:
    input:
        unpack(select_inputs),
    output:
        ids="results/select/{selector}-{selection_rate}/ids.json",
    log:
        "results/select/{selector}-{selection_rate}/select.log",
    benchmark:
        "results/benchmarks/select/{selector}-{selection_rate}.tsv"
    priority: 5
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        selector=lambda wc: wc.selector,
        rate=lambda wc: float(wc.selection_rate),
        seed=config["seed"],
    script:
        "../workflow/scripts/select_pick.py"


# A UMAP map of the train embeddings with every selector's picks, one panel per rate.
rule select_umap:
    input:
        split=rules.split.output.table,
        embeddings=rules.embed.output.embeddings,
        picks=expand("results/select/{selection}/ids.json", selection=SELECTIONS),
    output:
        png=report(
            "results/figures/selection_umap.png",
            caption="../workflow/report/selection_umap.rst",
            category="Figures",
        ),
        pdf="results/figures/selection_umap.pdf",
    log:
        "results/figures/selection_umap.log",
    benchmark:
        "results/benchmarks/select_umap/select_umap.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        umap=config["select"]["umap"],
        seed=config["seed"],
    script:
        "../workflow/scripts/select_umap.py"
