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
