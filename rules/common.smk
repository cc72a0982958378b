# Shared set-up: config validation, library import path, wildcard constraints, helpers.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, schema="../config/schema.yaml")

# Scripts import the library from src/ (also inside conda envs and on SLURM nodes, which
# inherit the submitting environment).
SRC = os.path.join(workflow.basedir, "src")
_inherited = os.environ.copy().pop("PYTHONPATH", "")
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, _inherited) if p))
sys.path.insert(0, SRC)

from lotteryprune.config import method_params as section_params  # torch-free


def format_rate(rate):
    """5 -> "5", 0.5 -> "0.5": how selection rates appear in paths."""
    return f"{float(rate):g}"


wildcard_constraints:
    dataset="labelled|extra",
    method="[a-z_]+",
    sel="(random|kmeans)-[0-9.]+",
    rate="[0-9]+",
    aug="[a-z]+",
    seed="[0-9]+",
    cmethod="[a-z]+",
    selector="random|kmeans",
    srate="[0-9.]+",


DATASETS = ["labelled", "extra"]


# --------------------------------------------------------------------------- targets
# What the tables need, derived from config; the report rules take these as inputs.

DEFAULT_SEL = config["select"]["default"]
REF_RATE = config["report"].get("reference_rate", 70)
SEEDS = config["finetune"]["seeds"]
PRUNE_RATES = config["prune"]["rates"]
SELECTIONS = [
    f"{s}-{format_rate(r)}"
    for s in config["select"]["selectors"]
    for r in config["select"]["rates"]
]


def finetune_path(method, sel, rate, aug, seed):
    return f"results/finetune/{method}/{sel}/{rate}/{aug}/seed{seed}/metrics.json"


def reference_paths():
    return [f"results/finetune/unpruned/none/seed{s}/metrics.json" for s in SEEDS]


def figure7_paths():
    """Every method at every rate (no augmentation); the augmented methods with each augmentation."""
    augmented = config["finetune"].get("methods", ["ga"])
    paths = []
    for method in config["prune"]["methods"]:
        augs = config["finetune"]["augmentations"] if method in augmented else ["none"]
        for aug in augs:
            for rate in PRUNE_RATES:
                paths += [
                    finetune_path(method, DEFAULT_SEL, rate, aug, s) for s in SEEDS
                ]
    return paths


def table4_paths():
    """GA at the reference rate with each compression method (and none) as augmentation."""
    augs = ["none"] + list(config["compress"]["methods"])
    return [
        finetune_path("ga", DEFAULT_SEL, REF_RATE, a, s) for a in augs for s in SEEDS
    ]


def table6_paths():
    """GA at the reference rate, no augmentation, for every lottery selection."""
    return [
        finetune_path("ga", sel, REF_RATE, "none", s)
        for sel in SELECTIONS
        for s in SEEDS
    ]


def table6_summaries():
    return [f"results/prune/ga/{sel}/{REF_RATE}/summary.json" for sel in SELECTIONS]


def bench_paths():
    return [
        f"results/bench/{m}/{DEFAULT_SEL}/{r}.json"
        for m in config["prune"]["methods"]
        for r in PRUNE_RATES
    ]


def ga_summaries():
    return [f"results/prune/ga/{DEFAULT_SEL}/{r}/summary.json" for r in PRUNE_RATES]


def all_finetune_paths():
    return sorted(
        set(reference_paths() + figure7_paths() + table4_paths() + table6_paths())
    )


# --------------------------------------------------------------------------- input functions


# used by rules/compress.smk
def compress_settings(wildcards):
    """Only the method's own config section (so editing compress.lda reruns only lda)."""
    return config["compress"].get(wildcards.cmethod, {})


# used by rules/finetune.smk
def augmentation_inputs(wildcards):
    """The compression labels an augmentation uses (none: no phase 1)."""
    if wildcards.aug == "none":
        return {}
    return {
        "labels": f"results/compress/{wildcards.aug}/labels.parquet",
        "extra": "results/data/extra.parquet",
    }


# used by rules/finetune.smk
FINETUNE_PARAMS = dict(
    augment=config["finetune"].get("augment", config["finetune"]["train"]),
    train=config["finetune"]["train"],
    max_length=config["model"]["max_length"],
    save_model=config["finetune"].get("save_model", False),
    device=config.get("device", "auto"),
)


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
