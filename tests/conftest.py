"""Shared fixtures: a tiny random BERT (built locally, no download) and one CPU thread."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from lotteryprune import modeling

    path = tmp_path_factory.mktemp("tiny") / "bert"
    modeling.materialise("tiny:3x4", path, seed=0)
    return str(path)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Factory: a tiny 2x4 BERT and ``n`` seeded toy texts labelled by keywords."""
    import numpy as np

    from lotteryprune import modeling

    def make(n: int):
        d = tmp_path_factory.mktemp("tiny")
        modeling.materialise("tiny:2x4", d)
        rng = np.random.default_rng(0)
        words = "i love this great day so happy bad sad hate it not good the what".split()
        texts = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(n)]
        labels = [int(("love" in t) or ("good" in t)) for t in texts]
        return d, texts, labels

    return make
