"""MCAP: the relative-distance KL, the fixed-budget Gumbel mask, and the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotteryprune.prune import PruneTask, run_method
from lotteryprune.prune.mcap import MapCNN, MetaController, rdd_kl, relative_distances, straight_through_mask
from lotteryprune.model.training import TrainConfig
from lotteryprune.model.heads import n_pruned


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(40)


def _task(tiny, rate=0.5, seed=0, **params):
    d, texts, labels = tiny
    p = {"episodes": 6, "k": 12, "cnn_channels": 4, "lr": 0.01, "tau": 1.0, "seq_len": 16, **params}
    return PruneTask(str(d), texts, labels, texts[:8], labels[:8], rate, TrainConfig(batch_size=8, seed=seed), params=p, seed=seed, progress=False)


def test_relative_distance_distributions_and_kl():
    torch.manual_seed(0)
    reps = torch.randn(6, 5)
    r = relative_distances(reps)
    assert r.shape == (6, 5) and torch.allclose(r.sum(-1), torch.ones(6)) and (r > 0).all()
    # by hand for instance 0: cosine distances to the others, normalised
    x = torch.nn.functional.normalize(reps, dim=-1)
    dist = 1 - x[0] @ x[1:].T + 1e-8
    assert torch.allclose(r[0], dist / dist.sum(), atol=1e-6)
    assert rdd_kl(reps, reps).item() == pytest.approx(0, abs=1e-7)
    assert rdd_kl(reps, reps * 3.0).item() == pytest.approx(0, abs=1e-6)  # scale-free (cosine)
    assert rdd_kl(reps, torch.randn(6, 5)).item() > 1e-3


def test_straight_through_mask_budget_and_gradient():
    logits = torch.randn(12, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    mask = straight_through_mask(logits, 5, 0.5, gen)
    assert torch.allclose(mask.detach(), mask.detach().round()) and mask.detach().sum() == 5
    (mask * torch.arange(12.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_cnn_and_controller_shapes():
    cnn, ctl = MapCNN(4), MetaController(8, 4)
    feats, imp = cnn(torch.rand(3, 8, 16, 16))
    assert feats.shape == (8, 4) and imp.shape == (8,) and ((imp > 0) & (imp < 1)).all()
    assert ctl(feats, imp).shape == (8,)


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.75])
def test_run_exact_count(tiny, rate):
    res = run_method("mcap", _task(tiny, rate))
    assert res.unit == "heads" and res.head_keep.shape == (2, 4)
    assert int((~res.head_keep).sum()) == n_pruned(8, rate)
    assert len(res.history) == 6 and all(np.isfinite(h["kl"]) and h["kl"] >= 0 for h in res.history)


def test_run_deterministic_per_seed(tiny):
    a = run_method("mcap", _task(tiny, seed=3))
    b = run_method("mcap", _task(tiny, seed=3))
    assert np.array_equal(a.head_keep, b.head_keep) and a.extras["scores"] == b.extras["scores"]
    c = run_method("mcap", _task(tiny, seed=4))
    assert c.extras["scores"] != a.extras["scores"]


def test_learns_to_prune_heads_without_effect(tiny, tmp_path, dead_heads):
    """Four of the eight heads have zero value rows and output columns, so masking them leaves
    the representations unchanged: the trained controller prunes (nearly) only those. Chance
    would get >= 3 of 4 right with p = 17/70 per seed; three seeds all succeeding by chance: ~1%."""
    d, texts, labels = tiny
    dead = [(0, 1), (0, 2), (1, 0), (1, 3)]
    dead_heads(d, tmp_path, dead)
    dead_mask = np.zeros((2, 4), dtype=bool)
    dead_mask[tuple(zip(*dead))] = True
    for seed in range(3):
        task = _task((tmp_path, texts, labels), 0.5, seed=seed, episodes=30, k=20, lr=0.05)
        res = run_method("mcap", task)
        assert (~res.head_keep & dead_mask).sum() >= 3, (seed, res.head_keep.astype(int).tolist())
