"""Shared fixtures: a tiny random BERT (built locally, no download) and one CPU thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lotteryprune.model.heads import layers_of
from lotteryprune.model.sources import load_classifier, load_tokenizer, materialise

torch.set_num_threads(1)

# Snakemake loads every installed executor plugin when it starts, and the Slurm plugin runs
# ``scontrol show config`` as it loads. Where Slurm's tools are installed but no controller
# is up (this suite's machine outside its Slurm tests), scontrol retries the controller for
# about 9 s, so every snakemake call paid 9 s. The local runs use no Slurm: they get a
# SLURM_CONF that scontrol rejects at once. The Slurm tests drop it again
# (test_slurm.snakemake_env), so their cluster is found at Slurm's default path.
NO_CONTROLLER = Path(__file__).parent / "slurm" / "no-controller.conf"


def pytest_configure(config):
    os.environ["SLURM_CONF"] = str(NO_CONTROLLER)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):

    path = tmp_path_factory.mktemp("tiny") / "bert"
    materialise("tiny:3x4", path, seed=0)
    return str(path)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Factory: a tiny 2x4 BERT and ``n`` seeded toy texts labelled by keywords."""
    import numpy as np

    def make(n: int):
        d = tmp_path_factory.mktemp("tiny")
        materialise("tiny:2x4", d)
        rng = np.random.default_rng(0)
        words = "i love this great day so happy bad sad hate it not good the what".split()
        texts = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(n)]
        labels = [int(("love" in t) or ("good" in t)) for t in texts]
        return d, texts, labels

    return make


@pytest.fixture(scope="session")
def dead_heads():
    """Factory: save a copy of the model at ``src`` to ``dst`` in which the given (layer, head)
    pairs have zero value rows (and bias) and zero output-projection columns: their context is
    zero and stays zero under training, so gating them has no effect on the loss."""

    def make(src, dst, heads):
        model = load_classifier(src)
        for layer, head in heads:
            attn = layers_of(model)[layer].attention
            d = attn.self.attention_head_size
            with torch.no_grad():
                attn.self.value.weight[head * d : (head + 1) * d] = 0
                attn.self.value.bias[head * d : (head + 1) * d] = 0
                attn.output.dense.weight[:, head * d : (head + 1) * d] = 0
        model.save_pretrained(dst)
        load_tokenizer(src).save_pretrained(dst)

    return make


TEST_TRAIN = {
    "epochs": 3,
    "lr": 1e-4,
    "batch_size": 16,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
}


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """Rule -> job count from ``snakemake -n --quiet rules`` output (its job-stats table)."""
    counts = {}
    for line in dry_run_stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def train_cfg(**overrides):
    """A TrainConfig for the tiny models: every field given (the library has no defaults)."""
    from lotteryprune.model.training import TrainConfig

    values = {**TEST_TRAIN, "max_length": 64, "seed": 0, "dtype": "float32", **overrides}
    job = {k: values.pop(k) for k in ("max_length", "seed", "dtype")}
    return TrainConfig.from_section(values, name="test", **job)


def prune_task(tiny, rate, params, *, seed=0, valid=8, workdir=None, threads=1, **train):
    """A PruneTask on a tiny corpus ``(model dir, texts, labels)``: the first ``valid`` texts
    are the validation subset, ``train`` overrides the short training's recipe."""
    from lotteryprune.prune import PruneTask

    d, texts, labels = tiny
    return PruneTask(
        str(d),
        texts,
        labels,
        texts[:valid],
        labels[:valid],
        rate,
        train_cfg(**{"batch_size": 8, **train, "seed": seed}),
        params=params,
        seed=seed,
        metric="macro_f1",
        workdir=workdir,
        threads=threads,
        progress=False,
    )


GA_PARAMS = {
    "population": 4,
    "generations": 2,
    "patience": 2,
    "drop_frac": 0.1,
    "elite_frac": 0.1,
    "crossover_rate": 0.5,
    "smoothing": 0.7,
    "workers": 1,
}
