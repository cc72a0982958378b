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
