# Shared set-up: config validation, wildcard constraints, helpers. The library
# (src/lotteryprune) is installed into the venv by setup.sh and into each conda env by
# its post-deploy script (envs/*.post-deploy.sh).
from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, schema="../config/schema.yaml")

from lotteryprune.config import method_params as section_params  # torch-free


def format_rate(rate):
    """5 -> "5", 0.5 -> "0.5": how selection rates appear in paths."""
    return f"{float(rate):g}"


wildcard_constraints:
    dataset="labelled|extra",
    method="[a-z_]+",
    selection="(random|kmeans)-[0-9.]+",
    rate="[0-9]+",
    augmentation="[a-z]+",
    seed="[0-9]+",
    compressor="[a-z]+",
    selector="random|kmeans",
    selection_rate="[0-9.]+",


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


def finetune_path(method, selection, rate, augmentation, seed):
    return f"results/finetune/{method}/{selection}/{rate}/{augmentation}/seed{seed}/metrics.json"


def reference_paths():
    return [f"results/finetune/unpruned/none/seed{s}/metrics.json" for s in SEEDS]


def figure7_paths():
    """Every method at every rate (no augmentation); the augmented methods with each augmentation."""
    augmented = config["finetune"].get("methods", ["ga"])
    paths = []
    for method in config["prune"]["methods"]:
        augs = config["finetune"]["augmentations"] if method in augmented else ["none"]
        for augmentation in augs:
            for rate in PRUNE_RATES:
                paths += [
                    finetune_path(method, DEFAULT_SEL, rate, augmentation, s)
                    for s in SEEDS
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
        finetune_path("ga", selection, REF_RATE, "none", s)
        for selection in SELECTIONS
        for s in SEEDS
    ]


def table6_summaries():
    return [
        f"results/prune/ga/{selection}/{REF_RATE}/summary.json"
        for selection in SELECTIONS
    ]


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
