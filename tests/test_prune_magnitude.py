"""Magnitude (paper 002): individual weights of the encoder's Linears by one global |w|
threshold, iteratively; checked against a NumPy ranking of the weights."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from conftest import prune_task
from lotteryprune.model.heads import n_pruned
from lotteryprune.model.sources import load_classifier
from lotteryprune.prune import magnitude, run_method
from lotteryprune.prune.magnitude import schedule

# the encoder's attention and feed-forward matrices, named independently of prunable_linears
ENCODER_MATRIX = re.compile(
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$"
)


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(32)


def _task(tiny, rate, seed=0, **params):
    p = {"step_rate": 25, "dense_epochs": 0.5, "epochs_per_step": 0.5, **params}
    return prune_task(tiny, rate, p, seed=seed, epochs=1)


def _encoder_matrices(model) -> dict[str, np.ndarray]:
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters() if ENCODER_MATRIX.match(n)}


def _numpy_smallest(values: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Prune masks (True = pruned) of the n smallest values over all matrices together."""
    names = list(values)
    flat = np.concatenate([values[k].ravel() for k in names])
    pruned = np.zeros(flat.size, dtype=bool)
    pruned[np.argsort(flat, kind="stable")[:n]] = True
    out, offset = {}, 0
    for k in names:
        out[k] = pruned[offset : offset + values[k].size].reshape(values[k].shape)
        offset += values[k].size
    return out


def test_schedule_is_linear_and_exact():
    assert schedule(1000, 70, 10) == [100, 200, 300, 400, 500, 600, 700]
    assert schedule(1000, 75, 10) == [100, 200, 300, 400, 500, 600, 700, 750]
    assert schedule(1000, 5, 10) == [50] and schedule(1000, 90, 100) == [900]


@pytest.mark.parametrize("rate", [30, 90])
def test_one_shot_prunes_exactly_the_smallest_weights(tiny, rate):
    """No training (dense_epochs 0, one step, no fine-tuning): the mask is the global |w|
    ranking of the pretrained encoder's matrices."""
    res = run_method("magnitude", _task(tiny, rate, step_rate=100, dense_epochs=0, epochs_per_step=0))
    weights = _encoder_matrices(load_classifier(tiny[0]))
    assert res.unit == "weights" and res.head_keep.all() and set(res.weight_masks) == set(weights)
    total = sum(w.size for w in weights.values())
    expect = _numpy_smallest({n: np.abs(w) for n, w in weights.items()}, n_pruned(total, rate))
    for name, keep in res.weight_masks.items():
        assert np.array_equal(~keep.numpy(), expect[name]), name
    pruned = np.concatenate([np.abs(weights[n])[~res.weight_masks[n].numpy()] for n in weights])
    kept = np.concatenate([np.abs(weights[n])[res.weight_masks[n].numpy()] for n in weights])
    assert pruned.size == n_pruned(total, rate) and pruned.max() <= kept.min()
    assert res.achieved_rate() == pytest.approx(100 * n_pruned(total, rate) / total)


def test_iterative_prunes_the_smallest_live_weights_of_the_trained_model(tiny, monkeypatch):
    """With fine-tuning between the steps: at each step the newly pruned weights are the
    smallest |w| of the *current* weights among those still kept, the pruned set only grows,
    the last step reaches the exact rate, and pruned weights stay zero while training."""
    seen = []
    real = magnitude.magnitude_masks

    def spy(weights, masks, n_prune):
        before = {n: w.detach().numpy().copy() for n, w in weights.items()}
        alive = {n: m.numpy().copy() for n, m in masks.items()}
        out = real(weights, masks, n_prune)
        seen.append((before, alive, {n: m.numpy().copy() for n, m in out.items()}, n_prune))
        return out

    monkeypatch.setattr(magnitude, "magnitude_masks", spy)
    rate = 60
    res = run_method("magnitude", _task(tiny, rate))
    total = res.extras["total_weights"]
    assert [s[3] for s in seen] == schedule(total, rate, 25) == [h["pruned"] for h in res.history]
    for step, (w, alive, keep, n_prune) in enumerate(seen):
        # pruned weights were held at zero by the fine-tuning since the last step
        assert all((w[n][~alive[n]] == 0).all() for n in w)
        # independent: the already-pruned weights first, then the smallest live |w|
        live = {n: np.where(alive[n], np.abs(w[n]), -1.0) for n in w}  # already pruned rank first
        expect = _numpy_smallest(live, n_prune)
        assert all(np.array_equal(~keep[n], expect[n]) for n in w), step
        assert all((keep[n] <= alive[n]).all() for n in w)  # no regrowth
        assert sum(int((~keep[n]).sum()) for n in w) == n_prune
    assert res.achieved_rate() == pytest.approx(100 * n_pruned(total, rate) / total)
    assert res.extras["train_seconds"] > 0 and "macro_f1" in res.extras["own_model"]
    assert not any("pooler" in n or "classifier" in n for n in res.weight_masks)


def test_iterative_run_is_deterministic(tiny):
    a = run_method("magnitude", _task(tiny, 50, step_rate=20))
    b = run_method("magnitude", _task(tiny, 50, step_rate=20))
    assert all(torch.equal(a.weight_masks[n], b.weight_masks[n]) for n in a.weight_masks)
    assert len(a.history) == 3 and a.extras["own_model"] == b.extras["own_model"]
