"""MCAP: the relative-distance KL, the Gumbel-top-k mask, the 5-layer CNN and its pattern
task, padding-free maps, and the run (budget, determinism, learning on dead heads)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import prune_task
from lotteryprune.model.batching import encode
from lotteryprune.model.heads import n_pruned
from lotteryprune.model.sources import load_classifier, load_tokenizer
from lotteryprune.prune import run_method
from lotteryprune.prune.mcap import (
    PATTERNS,
    MapCNN,
    MetaController,
    _Observer,
    describe_maps,
    layer_quota_keep,
    pattern_maps,
    pretrain_patterns,
    rdd_kl,
    relative_distances,
    straight_through_mask,
)

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["prune"]["mcap"]


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(40)


def _task(tiny, rate=50, seed=0, **params):
    return prune_task(tiny, rate, {**DEFAULT, "episodes": 6, "k": 12, "pattern_steps": 5, **params}, seed=seed)


def test_relative_distance_distributions_and_kl():
    torch.manual_seed(0)
    reps = torch.randn(6, 5)
    r = relative_distances(reps)
    assert r.shape == (6, 5) and torch.allclose(r.sum(-1), torch.ones(6)) and (r > 0).all()
    # by hand for instance 0: cosine distances to the others, normalised (Eq. 10-11)
    x = torch.nn.functional.normalize(reps, dim=-1)
    dist = 1 - x[0] @ x[1:].T + 1e-8
    assert torch.allclose(r[0], dist / dist.sum(), atol=1e-6)
    # KL(p || q) of each row, averaged (Eq. 12-14), against scipy-free by-hand sums
    other = torch.randn(6, 5)
    q = relative_distances(other)
    expect = np.mean([float((r[n] * (r[n] / q[n]).log()).sum()) for n in range(6)])
    assert rdd_kl(reps, other).item() == pytest.approx(expect, rel=1e-5)
    assert rdd_kl(reps, reps).item() == pytest.approx(0, abs=1e-7)
    assert rdd_kl(reps, reps * 3.0).item() == pytest.approx(0, abs=1e-6)  # scale-free (cosine)


def test_layer_quota_keeps_the_best_of_each_layer_then_the_best_of_the_rest():
    scores = torch.tensor([[9.0, 8.0, 7.0, 6.0], [1.0, 2.0, 0.0, 3.0], [5.0, 4.0, 4.0, 0.5]])
    keep = layer_quota_keep(scores, 5)  # 1 per layer: 9, 3, 5; then the best of the rest: 8, 7
    assert keep.tolist() == [[True, True, True, False], [False, False, False, True], [True, False, False, False]]
    keep = layer_quota_keep(scores, 7)  # 2 per layer: 9 8 | 3 2 | 5 4 (tie at 4: lower index); then 7
    assert keep.tolist() == [[True, True, True, False], [False, True, False, True], [True, True, False, False]]
    assert layer_quota_keep(scores, 2).sum() == 2  # fewer kept than layers: no quota, the global best
    assert layer_quota_keep(scores, 2).tolist()[0][:2] == [True, True]


def test_straight_through_mask_budget_and_gradient():
    logits = torch.randn(3, 4, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    mask = straight_through_mask(logits, 5, 0.5, gen)
    assert torch.allclose(mask.detach(), mask.detach().round()) and mask.detach().sum() == 5
    assert (mask.detach().sum(1) >= 1).all()  # no layer emptied
    (mask * torch.arange(12.0).view(3, 4)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert logits.grad.sum(1).abs().max() < 1e-5  # a softmax per layer: the heads compete


def test_gumbel_top1_samples_the_softmax():
    """Gumbel-max: the head a layer keeps alone is drawn with probability softmax(logits)."""
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]])
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(1, 4)
    for _ in range(4000):
        counts += straight_through_mask(logits, 1, 1.0, gen).detach()
    assert (counts[0] / 4000).tolist() == pytest.approx(torch.softmax(logits[0], 0).tolist(), abs=0.025)


def test_cnn_has_five_convolutions_and_shapes():
    cnn = MapCNN(4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in cnn.modules()) == 5
    for size in (32, 48):
        feats, delta = cnn(torch.rand(6, size, size))
        assert feats.shape == (6, 64) and delta.shape == (6,) and ((delta > 0) & (delta < 1)).all()
    feats, delta = describe_maps(cnn, torch.rand(3, 8, 32, 32))
    assert feats.shape == (3, 8, 64) and delta.shape == (3, 8)
    assert MetaController(cnn.features)(feats.mean(0), delta.mean(0)).shape == (8,)
    with pytest.raises(ValueError, match="at least 32"):
        cnn(torch.rand(1, 16, 16))


def test_pattern_maps_and_pretraining():
    gen = torch.Generator().manual_seed(0)
    maps, labels = pattern_maps(50, 32, gen)
    assert maps.shape == (50, 32, 32) and sorted(set(labels.tolist())) == list(range(len(PATTERNS)))
    rows = maps.sum(-1)
    valid = rows > 0
    assert torch.allclose(rows[valid], torch.ones(int(valid.sum())), atol=1e-5)
    assert ((maps.sum(-2) > 0) == valid).all()  # padded columns are zero where padded rows are
    torch.manual_seed(0)
    cnn = MapCNN(4)
    accuracy, loss = pretrain_patterns(cnn, 60, 32, 1e-3, gen)
    assert accuracy > 0.6 and loss < 1.0  # chance: 0.2 and log 5 = 1.61
    vertical, _ = pattern_maps(5, 32, gen)  # the first of each 5 is vertical
    _, delta = cnn(torch.cat([vertical[:1], vertical[1:]]))
    assert delta[0] < delta[1:].min()  # delta = P(not vertical)


def test_maps_do_not_depend_on_batch_neighbours(tiny):
    """Padded query rows and key columns are zeroed: a short tweet's map is the same alone
    and batched with a longer one."""
    d, texts, _ = tiny
    model = load_classifier(d, attn_implementation="eager").eval()
    tok = load_tokenizer(d)
    short, long = sorted(texts, key=len)[0], sorted(texts, key=len)[-1]
    alone = _Observer(model.base_model, tok, encode(tok, [short], 64), 32, "cpu", micro_batch=2)
    paired = _Observer(model.base_model, tok, encode(tok, [short, long], 64), 32, "cpu", micro_batch=2)
    assert len(encode(tok, [short], 64)[0]) < len(encode(tok, [long], 64)[0])
    torch.testing.assert_close(alone.maps[0], paired.maps[0], atol=2e-3, rtol=0)  # float16 cache
    torch.testing.assert_close(alone.reps[0], paired.reps[0], atol=1e-5, rtol=1e-5)
    n = len(encode(tok, [short], 64)[0])
    assert (paired.maps[0][:, n:, :] == 0).all() and (paired.maps[0][:, :, n:] == 0).all()


@pytest.mark.parametrize("rate", [25, 50, 75])
def test_run_exact_count(tiny, rate):
    res = run_method("mcap", _task(tiny, rate))
    assert res.unit == "heads" and res.head_keep.shape == (2, 4)
    assert int((~res.head_keep).sum()) == n_pruned(8, rate)
    assert len(res.history) == 6 and all(np.isfinite(h["kl"]) and h["kl"] >= 0 for h in res.history)
    assert all(h["objective"] == pytest.approx(h["kl"] + res.extras["cnn_loss"]) for h in res.history)


@pytest.mark.parametrize("variant", [{"optimizer": "sgd", "accumulate": 4, "lr": 0.02}, {"pattern_steps": 0}])
def test_run_variants(tiny, variant):
    res = run_method("mcap", _task(tiny, 50, **variant))
    assert int((~res.head_keep).sum()) == 4
    assert res.extras["optimizer_steps"] == math.ceil(6 / variant.get("accumulate", 1))


def test_run_deterministic_per_seed(tiny):
    a = run_method("mcap", _task(tiny, seed=3))
    b = run_method("mcap", _task(tiny, seed=3))
    assert np.array_equal(a.head_keep, b.head_keep) and a.extras["scores"] == b.extras["scores"]
    c = run_method("mcap", _task(tiny, seed=4))
    assert c.extras["scores"] != a.extras["scores"]


def test_learns_to_prune_heads_without_effect(tiny, tmp_path, dead_heads):
    """Four of the eight heads have no effect (zero value rows and output columns: masking
    them leaves the representations unchanged) and a map of their own (zero query weights:
    uniform attention); the live heads' query and key weights are scaled up so their maps
    are peaked (in the random tiny model every map is nearly uniform). MCAP scores heads from
    their maps only, so it must learn that the uniform map means "no effect": trained with
    the shipped config's optimiser, learning rate and episode count, it prunes (nearly) only
    those: all four on each of three seeds (chance: 1/70 per seed), where the same runs
    without learning (lr 1e-12) do not."""
    d, texts, labels = tiny
    dead = [(0, 1), (0, 2), (1, 0), (1, 3)]
    dead_heads(d, tmp_path, dead)
    model = load_classifier(tmp_path)
    for layer in range(2):
        for head in range(4):
            attn = model.base_model.encoder.layer[layer].attention.self
            rows = slice(head * attn.attention_head_size, (head + 1) * attn.attention_head_size)
            with torch.no_grad():
                if (layer, head) in dead:
                    attn.query.weight[rows] = 0
                    attn.query.bias[rows] = 0
                else:
                    attn.query.weight[rows] *= 30
                    attn.key.weight[rows] *= 30
    model.save_pretrained(tmp_path)
    dead_mask = np.zeros((2, 4), dtype=bool)
    dead_mask[tuple(zip(*dead))] = True
    hits = {}
    for lr in (DEFAULT["lr"], 1e-12):
        hits[lr] = []
        for seed in range(3):
            task = _task(
                (tmp_path, texts, labels),
                50,
                seed=seed,
                episodes=DEFAULT["episodes"],
                k=20,
                pattern_steps=DEFAULT["pattern_steps"],
                lr=lr,
            )
            hits[lr].append(int((~run_method("mcap", task).head_keep & dead_mask).sum()))
    assert hits[DEFAULT["lr"]] == [4, 4, 4], hits
    assert sum(hits[1e-12]) < 12, hits
