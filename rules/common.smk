# Shared set-up: config validation, library import path, wildcard constraints, helpers.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, schema="../config/schema.yaml")

# Scripts import the library from src/ (also inside conda envs and on SLURM nodes, which
# inherit the submitting environment).
SRC = os.path.join(workflow.basedir, "src")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p
)
sys.path.insert(0, SRC)


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
                paths += [finetune_path(method, DEFAULT_SEL, rate, aug, s) for s in SEEDS]
    return paths


def table4_paths():
    """GA at the reference rate with each compression method (and none) as augmentation."""
    augs = ["none"] + list(config["compress"]["methods"])
    return [finetune_path("ga", DEFAULT_SEL, REF_RATE, a, s) for a in augs for s in SEEDS]


def table6_paths():
    """GA at the reference rate, no augmentation, for every lottery selection."""
    return [finetune_path("ga", sel, REF_RATE, "none", s) for sel in SELECTIONS for s in SEEDS]


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
    return sorted(set(reference_paths() + figure7_paths() + table4_paths() + table6_paths()))
