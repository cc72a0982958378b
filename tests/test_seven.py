"""SEVEN: the score formula against NumPy, the cubic schedule, exact global masks, the runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotteryprune.prune import PruneTask, run_method
from lotteryprune.prune.seven import SevenScorer, global_keep_masks, head_scores, keep_fraction, window
from lotteryprune.model.training import TrainConfig
from lotteryprune.model.heads import n_pruned, prunable_linears
from lotteryprune.model.sources import load_classifier


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(32)


def _task(tiny, rate=0.5, seed=0, **params):
    d, texts, labels = tiny
    p = {"a1": 0.8, "a2": 0.9, "eps": 1e-8, "epochs": 2, "start_frac": 0.1, "end_frac": 0.7}
    p.update(params)
    return PruneTask(str(d), texts, labels, texts[:8], labels[:8], rate, TrainConfig(epochs=2, batch_size=8, seed=seed), params=p, seed=seed, progress=False)


def test_scorer_matches_numpy_formula():
    rng = np.random.default_rng(1)
    a1, a2, eps = 0.8, 0.9, 1e-8
    w = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(5,))}
    grads = [{k: rng.normal(size=v.shape) for k, v in w.items()} for _ in range(4)]
    grads[2]["b"] = None  # a missing gradient counts as zero
    scorer = SevenScorer(a1, a2, eps)
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v2 = {k: np.zeros_like(v) for k, v in w.items()}
    s = {k: np.zeros_like(v) for k, v in w.items()}
    for t, step in enumerate(grads, 1):
        got = scorer.update({k: torch.tensor(x, dtype=torch.float32) for k, x in w.items()},
                            {k: None if g is None else torch.tensor(g, dtype=torch.float32) for k, g in step.items()})
        for k in w:
            g = np.zeros_like(w[k]) if step[k] is None else np.abs(step[k])
            m[k] = a1 * m[k] + (1 - a1) * g
            v2[k] = a2 * v2[k] + (1 - a2) * g**2
            m_hat, v_hat = m[k] / (1 - a1**t), v2[k] / (1 - a2**t)
            s[k] += np.abs(w[k] * g * m_hat / (np.sqrt(v_hat) + eps))
            np.testing.assert_allclose(got[k].numpy(), s[k], rtol=1e-5, atol=1e-7)
    assert scorer.t == 4


def test_cubic_schedule_window_and_final_value():
    total, k = 20, 0.3
    first, end = window(total, 0.1, 0.7)
    assert (first, end) == (2, 14)
    values = [keep_fraction(t, total, k, 0.1, 0.7) for t in range(total)]
    assert values[:2] == [None, None] and all(v is None for v in values[14:])
    inside = values[2:14]
    assert inside[-1] == pytest.approx(k) and all(a >= b for a, b in zip(inside, inside[1:]))
    assert inside[0] == pytest.approx(k + (1 - k) * (1 - 1 / 12) ** 3)
    assert window(1, 0.1, 0.7) == (0, 1)  # a one-step schedule still prunes once


def test_global_keep_masks_exact_ties_and_no_regrowth():
    scores = {"a": torch.tensor([[5.0, 1.0], [1.0, 1.0]]), "b": torch.tensor([9.0, 1.0, 0.0])}
    masks = {"a": torch.ones(2, 2, dtype=torch.bool), "b": torch.tensor([False, True, True])}
    out = global_keep_masks(scores, masks, 3)
    assert sum(int(m.sum()) for m in out.values()) == 3
    assert not out["b"][0]  # pruned stays pruned despite the top score
    # 5.0 kept, then the tie at 1.0 broken by flat order: a[0,1] and a[1,0]
    assert out["a"].tolist() == [[True, True], [True, False]] and out["b"].tolist() == [False, False, False]
    with pytest.raises(ValueError):
        global_keep_masks(scores, masks, 7)  # only 6 are still kept


def test_head_scores_sum_rows_and_columns(tiny):
    model = load_classifier(tiny[0])
    weights = {n: p for n, p in model.named_parameters() if n.endswith(".weight") and "encoder" in n}
    scores = {n: torch.rand_like(p) for n, p in weights.items()}
    got = head_scores(model, scores)
    d = model.config.hidden_size // model.config.num_attention_heads
    pre = "bert.encoder.layer.1."
    expect = sum(scores[pre + f"attention.self.{x}.weight"][2 * d : 3 * d].sum() for x in ("query", "key", "value"))
    expect = expect + scores[pre + "attention.output.dense.weight"][:, 2 * d : 3 * d].sum()
    assert got.shape == (2, 4) and got[1, 2] == pytest.approx(float(expect), rel=1e-5)


@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_run_weights_exact_rate_and_deterministic(tiny, rate):
    res = run_method("seven", _task(tiny, rate))
    assert res.unit == "weights" and res.head_keep.all()
    total = sum(m.numel() for m in res.weight_masks.values())
    kept = sum(int(m.sum()) for m in res.weight_masks.values())
    assert total - kept == int(round(rate * total))
    assert any("pooler" in n for n in res.weight_masks) and not any("classifier" in n for n in res.weight_masks)
    keeps = [h["keep"] for h in res.history]
    assert keeps == sorted(keeps, reverse=True) and len(keeps) > 1  # gradual, never regrowing
    again = run_method("seven", _task(tiny, rate))
    assert all(torch.equal(res.weight_masks[n], again.weight_masks[n]) for n in res.weight_masks)
    no_pooler = run_method("seven", _task(tiny, rate, include_pooler=False))
    assert set(no_pooler.weight_masks) == set(prunable_linears(load_classifier(tiny[0])))


def test_run_weights_pruned_weights_are_zero_after_training(tiny, monkeypatch):
    """The weights SEVEN masks are held at zero in the model it fine-tunes (train() re-applies
    the very dict SEVEN mutates)."""
    from lotteryprune.prune import seven
    from lotteryprune.model.training import train as real_train

    seen = {}

    def spy(model, *args, weight_masks=None, **kwargs):
        out = real_train(model, *args, weight_masks=weight_masks, **kwargs)
        seen["params"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return out

    monkeypatch.setattr(seven, "train", spy)
    res = run_method("seven", _task(tiny, 0.5))
    kept_nonzero = []
    for name, mask in res.weight_masks.items():
        assert (seen["params"][name][~mask] == 0).all()
        kept_nonzero.append(seen["params"][name][mask] != 0)
    assert torch.cat(kept_nonzero).float().mean() > 0.99


def test_run_heads_exact_count_and_deterministic(tiny):
    res = run_method("seven_heads", _task(tiny, 0.5))
    assert res.unit == "heads" and int((~res.head_keep).sum()) == n_pruned(8, 0.5)
    assert np.array(res.extras["scores"]).shape == (2, 4)
    again = run_method("seven_heads", _task(tiny, 0.5))
    assert np.array_equal(res.head_keep, again.head_keep)
