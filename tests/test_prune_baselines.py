"""Head baselines: exact prune counts, determinism, and scores that mean what they say; the
[SEP] and entropy orders on a constructed attention pattern whose right order is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import train_cfg
from lotteryprune.model import attention
from lotteryprune.model.heads import layers_of, n_pruned
from lotteryprune.model.sources import load_classifier, load_tokenizer
from lotteryprune.prune import PruneTask, run_method
from lotteryprune.prune.baselines import head_magnitudes, keep_from_scores

PARAMS = {
    "random": {"draws": 3},
    "magnitude_heads": {"steps": 2},
    "importance": {"steps": 2, "finetune": True},
    "entropy": {"batches": None},
    "sep": {"batches": None},
    "entropy_reversed": {"batches": 2},
    "sep_reversed": {"batches": 2},
}


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(32)


def _task(model_dir, texts, labels, method, rate=50, seed=0, **extra):
    params = {**PARAMS[method], **extra}
    cfg = train_cfg(epochs=1, batch_size=8, seed=seed)
    return PruneTask(
        str(model_dir),
        texts,
        labels,
        texts[:8],
        labels[:8],
        rate,
        cfg,
        params=params,
        seed=seed,
        metric="macro_f1",
        progress=False,
    )


def test_keep_from_scores_exact_ties_and_pruned_first():
    scores = np.array([[3.0, 1.0, 1.0], [0.5, 2.0, 1.0]])
    keep = keep_from_scores(scores, 2)
    assert keep.tolist() == [[True, False, True], [False, True, True]]  # tie at 1.0: lower index first
    keep = keep_from_scores(scores, 2, pruned=np.array([[True, False, False], [False, False, False]]))
    assert keep.tolist() == [[False, True, True], [False, True, True]]  # the pruned head stays pruned
    with pytest.raises(ValueError):
        keep_from_scores(np.array([[np.nan, 1.0]]), 1)


@pytest.mark.parametrize("method", list(PARAMS))
@pytest.mark.parametrize("rate", [25, 50])
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
    draws = [run_method("random", _task(d, texts, labels, "random", seed=s)).head_keep for s in range(4)]
    again = run_method("random", _task(d, texts, labels, "random", seed=0)).head_keep
    assert np.array_equal(draws[0], again)  # a draw is its seed
    assert len({d.tobytes() for d in draws}) > 1  # and seeds give other draws
    assert all(int((~d).sum()) == n_pruned(8, 50) for d in draws)


@pytest.mark.parametrize("finetune", [False, True])
def test_importance_prunes_a_head_without_effect_first(tiny, tmp_path, finetune, dead_heads):
    d, texts, labels = tiny
    dead_heads(d, tmp_path, [(1, 2)])
    res = run_method("importance", _task(tmp_path, texts, labels, "importance", rate=12.5, finetune=finetune, steps=1))
    scores = np.array(res.extras["scores"])
    assert scores[1, 2] == 0 and (np.delete(scores.ravel(), 6) > 0).all()
    assert (~res.head_keep).sum() == 1 and not res.head_keep[1, 2]


def test_magnitude_heads_prunes_the_smallest_head_first(tiny, tmp_path):
    d, texts, labels = tiny
    model = load_classifier(d)
    attn = layers_of(model)[0].attention
    dh = attn.self.attention_head_size
    with torch.no_grad():
        for lin in (attn.self.query, attn.self.key, attn.self.value):
            lin.weight[3 * dh : 4 * dh] *= 0.01
        attn.output.dense.weight[:, 3 * dh : 4 * dh] *= 0.01
    mags = head_magnitudes(model)
    expect = sum(
        float(lin.weight.detach()[3 * dh : 4 * dh].abs().sum())
        for lin in (attn.self.query, attn.self.key, attn.self.value)
    )
    expect += float(attn.output.dense.weight.detach()[:, 3 * dh : 4 * dh].abs().sum())
    assert mags[0, 3] == pytest.approx(expect / (4 * dh * model.config.hidden_size), rel=1e-5)
    assert mags.argmin() == 3
    model.save_pretrained(tmp_path)
    load_tokenizer(d).save_pretrained(tmp_path)
    res = run_method("magnitude_heads", _task(tmp_path, texts, labels, "magnitude_heads", rate=12.5, steps=1))
    assert not res.head_keep[0, 3] and res.head_keep.sum() == 7


def test_attention_statistics_by_hand():
    # one layer, one sequence of 3 tokens (last is padding), two heads
    ids = torch.tensor([[2, 3, 0]])
    mask = torch.tensor([[1, 1, 0]])
    uniform = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    onsep = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    attn = torch.stack([uniform, onsep])[None, None]  # [L=1, B=1, H=2, T, T]
    ent, n = attention.head_entropy_sums(attn, mask)
    assert (
        n == 2 and ent[0, 0] / n == pytest.approx(math.log(2), rel=1e-5) and ent[0, 1] / n == pytest.approx(0, abs=1e-6)
    )
    sep, _ = attention.head_token_attention_sums(attn, mask, ids, 3)
    assert (sep[0] / n).tolist() == pytest.approx([0.5, 1.0])
    assert attention.fit_maps(attn, 5).shape[-2:] == (5, 5) and attention.fit_maps(attn, 2).shape[-2:] == (2, 2)


# Constructed attention for the 2 x 4 tiny model: every query row of head h (flat index
# layer * 4 + head) is the distribution P[h] over the keys ([CLS], a, b, [SEP]). Entropy and
# attention to [SEP] are worked out by hand below; all distinct, and in different orders.
P = torch.tensor(
    [
        [0.25, 0.25, 0.25, 0.25],  # 0 uniform        H = 1.3863  [SEP] .25
        [0.00, 0.00, 0.00, 1.00],  # 1 [SEP] only     H = 0       [SEP] 1
        [0.97, 0.01, 0.01, 0.01],  # 2 [CLS] only     H = 0.1677  [SEP] .01
        [0.50, 0.00, 0.00, 0.50],  # 3 [CLS]+[SEP]    H = 0.6931  [SEP] .50
        [0.40, 0.30, 0.28, 0.02],  # 4 broad          H = 1.1624  [SEP] .02
        [0.05, 0.85, 0.05, 0.05],  # 5 one word       H = 0.5875  [SEP] .05
        [0.10, 0.10, 0.00, 0.80],  # 6 mostly [SEP]   H = 0.6390  [SEP] .80
        [0.00, 0.60, 0.20, 0.20],  # 7 words          H = 0.9503  [SEP] .20
    ]
)
ENTROPY = [1.3863, 0.0, 0.1677, 0.6931, 1.1624, 0.5875, 0.6390, 0.9503]
TO_SEP = [0.25, 1.0, 0.01, 0.50, 0.02, 0.05, 0.80, 0.20]


def _constructed_batches(tokenizer):
    """One batch: [CLS] a b [SEP], and [CLS] a [SEP] [PAD] whose valid rows are P over its
    three real keys (renormalised; its [SEP] is at position 2) and whose padded query row
    holds garbage that must not count."""
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    a, b = tokenizer.convert_tokens_to_ids(["love", "day"])
    input_ids = torch.tensor([[cls, a, b, sep], [cls, a, sep, pad]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    att = torch.zeros(2, 2, 4, 4, 4)  # [layers, B, heads, T, T]
    short = torch.stack([P[:, 0], P[:, 1] + P[:, 2], P[:, 3], torch.zeros(8)], 1)  # b's mass moved to a
    for flat in range(8):
        layer, head = divmod(flat, 4)
        att[layer, 0, head] = P[flat]
        att[layer, 1, head, :3] = short[flat]
        att[layer, 1, head, 3] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # padded query row: garbage
    return [{"attentions": att, "attention_mask": mask, "input_ids": input_ids, "hidden": None}]


def _expected_statistics():
    """Mean over the 7 valid query rows (4 + 3) of the hand-computed values."""

    def entropy(p):
        p = p[p > 0]
        return float(-(p * p.log()).sum())

    short = torch.stack([P[:, 0], P[:, 1] + P[:, 2], P[:, 3]], 1)
    ent = [(4 * entropy(P[h]) + 3 * entropy(short[h])) / 7 for h in range(8)]
    sep = [(4 * float(P[h, 3]) + 3 * float(short[h, 2])) / 7 for h in range(8)]
    return np.array(ent).reshape(2, 4), np.array(sep).reshape(2, 4)


def test_constructed_pattern_statistics_by_hand():
    assert [round(float(-(p[p > 0] * p[p > 0].log()).sum()), 4) for p in P] == ENTROPY
    assert P[:, 3].tolist() == pytest.approx(TO_SEP)


@pytest.mark.parametrize(
    "method, rate, pruned",
    [
        # paper 003: the lowest entropy first: order 1, 2, 5, 6, 3, 7, 4, 0
        ("entropy", 25, {1, 2}),
        ("entropy", 50, {1, 2, 5, 6}),
        # paper 003: the lowest attention to [SEP] first: order 2, 4, 5, 7, 0, 3, 6, 1
        ("sep", 25, {2, 4}),
        ("sep", 50, {2, 4, 5, 7}),
        # the reversed variants: the highest first
        ("entropy_reversed", 25, {0, 4}),
        ("sep_reversed", 25, {1, 6}),
    ],
)
def test_entropy_and_sep_orders_on_a_constructed_pattern(tiny, monkeypatch, method, rate, pruned):
    d, texts, labels = tiny
    tokenizer = load_tokenizer(d)
    monkeypatch.setattr(attention, "attention_batches", lambda *a, **k: iter(_constructed_batches(tokenizer)))
    res = run_method(method, _task(d, texts, labels, method, rate=rate))
    ent, sep = _expected_statistics()
    np.testing.assert_allclose(res.extras["entropy"], ent, rtol=1e-5)  # the statistics, then the order
    np.testing.assert_allclose(res.extras["sep"], sep, rtol=1e-5)
    assert set(np.flatnonzero(~res.head_keep.ravel())) == pruned
    # the padded sequence changes the statistics but no head's rank
    flat = (ent if "entropy" in method else sep).ravel()
    assert np.argsort(flat).tolist() == np.argsort(np.array(ENTROPY if "entropy" in method else TO_SEP)).tolist()


def test_entropy_keeps_a_uniform_head_to_the_last(tiny, tmp_path):
    """A head with zero query weights and bias attends uniformly to every valid key: the
    highest entropy a head can have, so paper 003's order prunes it last."""
    d, texts, labels = tiny
    model = load_classifier(d)
    attn = layers_of(model)[1].attention.self
    dh = attn.attention_head_size
    with torch.no_grad():
        attn.query.weight[2 * dh : 3 * dh] = 0
        attn.query.bias[2 * dh : 3 * dh] = 0
    model.save_pretrained(tmp_path)
    load_tokenizer(d).save_pretrained(tmp_path)
    res = run_method("entropy", _task(tmp_path, texts, labels, "entropy", rate=87.5))
    assert res.head_keep.sum() == 1 and res.head_keep[1, 2]
    assert np.argmax(res.extras["entropy"]) == 6
    reversed_ = run_method("entropy_reversed", _task(tmp_path, texts, labels, "entropy_reversed", rate=12.5))
    assert not reversed_.head_keep[1, 2] and reversed_.head_keep.sum() == 7
