# Shared set-up: config validation, wildcard constraints, helpers. The library
# (src/lotteryprune) is installed into the venv by setup.sh and into each conda env by
# its post-deploy script (envs/*.post-deploy.sh).
from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, schema="../config/schema.yaml")

from pathlib import Path

from lotteryprune.config import method_params as section_params  # torch-free
from lotteryprune.config import check_config, configfile_order, format_rate, runs

check_config(config, configfile_order(workflow))  # what the schema cannot say, by key


wildcard_constraints:
    dataset="labelled|extra",
    method="[a-z_]+",
    selection="(random|kmeans)-[0-9.]+",
    rate="[0-9]+",
    augmentation="[a-z]+",
    compressor="[a-z]+",
    selector="random|kmeans",
    selection_rate="[0-9.]+",


DATASETS = ["labelled", "extra"]


# --------------------------------------------------------------------------- targets
# What the tables need, derived from config; the report rules take these as inputs. One
# prune job and one fine-tuning job per cell (method, lottery sample, rate[, augmentation]):
# the cell's runs (search seeds, fine-tuning seeds: lotteryprune.config.runs) share one
# process, so the model is loaded and the texts tokenised once per cell.

DEFAULT_SEL = config["select"]["default"]
REF_RATE = config["report"]["reference_rate"]
PRUNE_RATES = config["prune"]["rates"]
METHODS = config["prune"]["methods"]
AUGMENTED = config["finetune"]["methods"]
AUGMENTATIONS = config["finetune"]["augmentations"]
SELECTIONS = [
    f"{s}-{format_rate(r)}"
    for s in config["select"]["selectors"]
    for r in config["select"]["rates"]
]


# used by rules/report.smk (lotteryprune.report.tables.Settings)
REPORT_SETTINGS = dict(
    metric=config["metric"],
    selection=DEFAULT_SEL,
    reference_rate=REF_RATE,
    loss_allocation=config["report"]["loss_allocation"],
    resamples=config["report"]["bootstrap"]["resamples"],
    confidence=config["report"]["bootstrap"]["confidence"],
    collapse=config["report"]["collapse"],
    seed=config["seed"],
)


def finetune_cell(method, selection, rate, augmentation):
    return f"results/finetune/{method}/{selection}/{rate}/{augmentation}/metrics.json"


def reference_cells():
    """The unpruned model through the same recipe, once per augmentation fine-tuned."""
    return [f"results/finetune/unpruned/{a}/metrics.json" for a in AUGMENTATIONS]


def figure7_cells():
    """Every method at every rate (no augmentation); the augmented methods with each augmentation."""
    return [
        finetune_cell(method, DEFAULT_SEL, rate, augmentation)
        for method in METHODS
        for augmentation in (AUGMENTATIONS if method in AUGMENTED else ["none"])
        for rate in PRUNE_RATES
    ]


def table4_cells():
    """GA at the reference rate with each compression method (and none) as augmentation."""
    augs = ["none"] + list(config["compress"]["methods"])
    return [finetune_cell("ga", DEFAULT_SEL, REF_RATE, a) for a in augs]


def table6_cells():
    """GA at the reference rate, no augmentation, for every lottery selection."""
    return [finetune_cell("ga", sel, REF_RATE, "none") for sel in SELECTIONS]


def table6_summaries():
    return [f"results/prune/ga/{sel}/{REF_RATE}/summary.json" for sel in SELECTIONS]


def bench_paths():
    return [f"results/bench/{m}/{DEFAULT_SEL}.json" for m in METHODS]


def prune_summaries():
    """Every method's prune summary at every rate on the default lottery sample."""
    return [
        f"results/prune/{m}/{DEFAULT_SEL}/{r}/summary.json"
        for m in METHODS
        for r in PRUNE_RATES
    ]


def frontier_cells():
    """Every method at every rate (the augmented methods with each augmentation), and the
    unpruned model with each augmentation: each series is measured against the unpruned
    model fine-tuned the same way."""
    return reference_cells() + figure7_cells()


def ga_summaries():
    return [f"results/prune/ga/{DEFAULT_SEL}/{r}/summary.json" for r in PRUNE_RATES]


def all_finetune_cells():
    return sorted(
        set(reference_cells() + figure7_cells() + table4_cells() + table6_cells())
    )


def saved_model_dirs():
    """With finetune.save_model, every cell's models directory: a target of rule all, so that
    turning the key on saves the models of cells whose metrics already exist (Snakemake reruns
    a job for a missing output only when something asks for that output)."""
    if not config["finetune"]["save_model"]:
        return []
    return [str(Path(cell).parent / "models") for cell in all_finetune_cells()]


# --------------------------------------------------------------------------- input functions


# used by rules/compress.smk
def compress_settings(wildcards):
    """Only the method's own config section (so editing compress.lda reruns only lda)."""
    return config["compress"].get(wildcards.compressor, {})


# used by rules/finetune.smk
def augmentation_inputs(wildcards):
    """The compression labels an augmentation uses (none: no phase 1)."""
    if wildcards.augmentation == "none":
        return {}
    return {
        "labels": f"results/compress/{wildcards.augmentation}/labels.parquet",
        "extra": "results/data/extra.parquet",
    }


# used by rules/finetune.smk
FINETUNE_PARAMS = dict(
    augment=config["finetune"]["augment"],
    train=config["finetune"]["train"],
    max_length=config["model"]["max_length"],
    dtype=config["dtype"],
    metric=config["metric"],
    device=config["device"],
)


# used by rules/finetune.smk: with finetune.save_model, each run's model is an output too
# (save_pretrained, written to a temporary directory and renamed when complete).
def saved_models(cell):
    """{"models": directory(<cell>/models)} when finetune.save_model, else nothing."""
    if not config["finetune"]["save_model"]:
        return {}
    return {"models": directory(f"{cell}/models")}


# used by rules/finetune.smk and rules/prune.smk
def method_runs(wildcards):
    """[(search seed, fine-tuning seed), ...] of the cell's method (lotteryprune.config.runs)."""
    return runs(config, wildcards.get("method", "unpruned"))


def search_seeds_of(wildcards):
    return [search for search, _ in method_runs(wildcards)]


# used by rules/bench.smk
def bench_masks(wildcards):
    """Every prune rate's masks of one method on one lottery sample."""
    return [
        f"results/prune/{wildcards.method}/{wildcards.selection}/{rate}/masks.safetensors"
        for rate in PRUNE_RATES
    ]


# used by rules/prune.smk
def method_params(wildcards):
    """The method's config section (variants share their family's: lotteryprune.config)."""
    return section_params(config, wildcards.method)


# used by rules/select.smk
def select_inputs(wildcards):
    """K-means needs the embeddings; random selection only the split."""
    inputs = {"split": rules.split.output.table}
    if wildcards.selector == "kmeans":
        inputs["embeddings"] = rules.embed.output.embeddings
    return inputs


# used by rules/zeroshot.smk
def zeroshot_texts(wildcards):
    """The labelled split or the extra (unlabelled) texts."""
    if wildcards.dataset == "labelled":
        return "results/data/split.parquet"
    return "results/data/extra.parquet"
