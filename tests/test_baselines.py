"""Head baselines: exact prune counts, determinism, and scores that mean what they say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lotteryprune.model import attention
from lotteryprune.prune import PruneTask, run_method
from lotteryprune.prune.baselines import head_magnitudes, keep_from_scores
from lotteryprune.model.training import TrainConfig
from lotteryprune.model.heads import layers_of, n_pruned
from lotteryprune.model.sources import load_classifier, load_tokenizer

PARAMS = {
    "random": {"draws": 3},
    "magnitude": {"steps": 2},
    "importance": {"steps": 2, "finetune": True},
    "entropy": {"batches": 2},
    "sep": {"batches": 2},
}


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(32)


def _task(model_dir, texts, labels, method, rate=0.5, seed=0, **extra):
    params = {**PARAMS[method], **extra}
    cfg = TrainConfig(epochs=1, batch_size=8, seed=seed)
    return PruneTask(str(model_dir), texts, labels, texts[:8], labels[:8], rate, cfg, params=params, seed=seed, progress=False)


def test_keep_from_scores_exact_ties_and_pruned_first():
    scores = np.array([[3.0, 1.0, 1.0], [0.5, 2.0, 1.0]])
    keep = keep_from_scores(scores, 2)
    assert keep.tolist() == [[True, False, True], [False, True, True]]  # tie at 1.0: lower index first
    keep = keep_from_scores(scores, 2, pruned=np.array([[True, False, False], [False, False, False]]))
    assert keep.tolist() == [[False, True, True], [False, True, True]]  # the pruned head stays pruned
    with pytest.raises(ValueError):
        keep_from_scores(np.array([[np.nan, 1.0]]), 1)


@pytest.mark.parametrize("method", list(PARAMS))
@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_exact_count_and_deterministic(tiny, method, rate):
    d, texts, labels = tiny
    res = run_method(method, _task(d, texts, labels, method, rate))
    assert res.unit == "heads" and res.head_keep.shape == (2, 4) and res.head_keep.dtype == bool
    assert int((~res.head_keep).sum()) == n_pruned(8, rate)
    again = run_method(method, _task(d, texts, labels, method, rate))
    assert np.array_equal(res.head_keep, again.head_keep)
    if method != "random":
        assert np.array(res.extras["scores"]).shape == (2, 4)


def test_random_draws_depend_on_seed(tiny):
    d, texts, labels = tiny
    a = run_method("random", _task(d, texts, labels, "random", seed=0))
    b = run_method("random", _task(d, texts, labels, "random", seed=1))
    assert np.array_equal(np.array(a.extras["draws"][0], bool), a.head_keep)
    assert len(a.extras["draws"]) == 3 and len({str(x) for x in a.extras["draws"]}) > 1
    assert a.extras["draws"] != b.extras["draws"]


@pytest.mark.parametrize("finetune", [False, True])
def test_importance_prunes_a_head_without_effect_first(tiny, tmp_path, finetune, dead_heads):
    d, texts, labels = tiny
    dead_heads(d, tmp_path, [(1, 2)])
    res = run_method("importance", _task(tmp_path, texts, labels, "importance", rate=0.125, finetune=finetune, steps=1))
    scores = np.array(res.extras["scores"])
    assert scores[1, 2] == 0 and (np.delete(scores.ravel(), 6) > 0).all()
    assert (~res.head_keep).sum() == 1 and not res.head_keep[1, 2]


def test_magnitude_prunes_the_smallest_head_first(tiny, tmp_path):
    d, texts, labels = tiny
    model = load_classifier(d)
    attn = layers_of(model)[0].attention
    dh = attn.self.attention_head_size
    with torch.no_grad():
        for lin in (attn.self.query, attn.self.key, attn.self.value):
            lin.weight[3 * dh : 4 * dh] *= 0.01
        attn.output.dense.weight[:, 3 * dh : 4 * dh] *= 0.01
    mags = head_magnitudes(model)
    expect = sum(float(lin.weight.detach()[3 * dh : 4 * dh].abs().sum()) for lin in (attn.self.query, attn.self.key, attn.self.value))
    expect += float(attn.output.dense.weight.detach()[:, 3 * dh : 4 * dh].abs().sum())
    assert mags[0, 3] == pytest.approx(expect / (4 * dh * model.config.hidden_size), rel=1e-5)
    assert mags.argmin() == 3
    model.save_pretrained(tmp_path)
    load_tokenizer(d).save_pretrained(tmp_path)
    res = run_method("magnitude", _task(tmp_path, texts, labels, "magnitude", rate=0.125, steps=1))
    assert not res.head_keep[0, 3] and res.head_keep.sum() == 7


def test_attention_statistics_by_hand():
    # one layer, one sequence of 3 tokens (last is padding), two heads
    ids = torch.tensor([[2, 3, 0]])
    mask = torch.tensor([[1, 1, 0]])
    uniform = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    onsep = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    attn = torch.stack([uniform, onsep])[None, None]  # [L=1, B=1, H=2, T, T]
    ent, n = attention.head_entropy_sums(attn, mask)
    assert n == 2 and ent[0, 0] / n == pytest.approx(math.log(2), rel=1e-5) and ent[0, 1] / n == pytest.approx(0, abs=1e-6)
    sep, _ = attention.head_token_attention_sums(attn, mask, ids, 3)
    assert (sep[0] / n).tolist() == pytest.approx([0.5, 1.0])
    assert attention.fit_maps(attn, 5).shape[-2:] == (5, 5) and attention.fit_maps(attn, 2).shape[-2:] == (2, 2)


def test_entropy_and_sep_order(tiny):
    d, texts, labels = tiny
    ent = run_method("entropy", _task(d, texts, labels, "entropy", rate=0.25))
    e = np.array(ent.extras["entropy"])
    assert set(np.flatnonzero(~ent.head_keep.ravel())) == set(np.argsort(-e.ravel(), kind="stable")[:2])
    low = run_method("entropy", _task(d, texts, labels, "entropy", rate=0.25, entropy_prune="low"))
    assert set(np.flatnonzero(~low.head_keep.ravel())) == set(np.argsort(e.ravel(), kind="stable")[:2])
    sep = run_method("sep", _task(d, texts, labels, "sep", rate=0.25))
    s = np.array(sep.extras["sep"])
    assert (s > 0).all() and (s < 1).all()
    assert set(np.flatnonzero(~sep.head_keep.ravel())) == set(np.argsort(-s.ravel(), kind="stable")[:2])
