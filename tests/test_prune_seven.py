"""SEVEN: the score and mask update against a transcription of the official code, the cubic
schedule, exact global masks, what is scored (post-step weights, raw gradients), the runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from conftest import prune_task, train_cfg
from lotteryprune.model.heads import n_pruned, prunable_linears
from lotteryprune.model.sources import load_classifier
from lotteryprune.prune import PruneTask, run_method
from lotteryprune.prune.seven import SevenPruner, SevenScorer, global_keep_masks, head_scores, remain_ratio, window

PARAMS = {"a1": 0.8, "a2": 0.8, "eps": 1e-9, "epochs": 2, "start_frac": 0.1, "end_frac": 0.7, "include_pooler": True}


@pytest.fixture(scope="module")
def tiny(tiny_corpus):
    torch.set_num_threads(1)
    return tiny_corpus(32)


def _task(tiny, rate=50, seed=0, **params):
    return prune_task(tiny, rate, {**PARAMS, **params}, seed=seed, epochs=2)


class OfficialSeven:
    """Transcription of the official SEVEN_dyn update (github xiaojinying/SEVEN @ 85e5903):
    strategies/pruner.py L33-44 (``layer_masks``) and L59-99 (``model_masks``),
    strategies/utils.py L13-65 (``fraction_threshold``, ``importance_masks``,
    ``flatten_importances``). Called once per training step k = 0 .. N-2 of the window
    (utils.py L248-249), after ``optimizer.step()``, with the post-step weights and the
    step's gradients (zero at pruned weights: the forward pass uses W * mask)."""

    def __init__(self, shapes: dict, keep_ratio: float, N: int, a1: float, a2: float):
        self.keep, self.N, self.a1, self.a2 = keep_ratio, N, a1, a2
        self.importances = {n: torch.zeros(s) for n, s in shapes.items()}
        self.m = {n: torch.zeros(s) for n, s in shapes.items()}
        self.v = {n: torch.zeros(s) for n, s in shapes.items()}
        self.masks = {n: torch.ones(s) for n, s in shapes.items()}

    def model_masks(self, iter_num: int, params: dict, grads: dict) -> dict:
        self.prune_epoch = iter_num
        remain_ratio = (self.keep) + (1 - self.keep) * ((1 - (iter_num + 1) / self.N) ** (3))
        for module in self.importances:  # layer_masks
            alpha_1, alpha_2 = self.a1, self.a2
            g = torch.clone(torch.abs(grads[module]))
            self.m[module] = alpha_1 * self.m[module] + (1 - alpha_1) * torch.abs(g)
            self.v[module] = alpha_2 * self.v[module] + (1 - alpha_2) * torch.pow(g, 2)
            m_hat = self.m[module] / (1 - (alpha_1 ** (self.prune_epoch + 1)))
            v_hat = torch.sqrt(self.v[module] / (1 - (alpha_2 ** (self.prune_epoch + 1)))) + 1e-9
            self.importances[module] += torch.abs(params[module] * g * m_hat / v_hat)
        for module, mask in self.masks.items():
            self.importances[module][mask == 0] = 0
        flat = torch.cat([imp.flatten() for imp in self.importances.values()], dim=0)
        threshold, _ = torch.topk(flat, int(remain_ratio * len(flat)))  # fraction_threshold
        threshold = threshold[-1]
        self.masks = {}
        for module, imp in self.importances.items():  # importance_masks
            mask = torch.ones_like(imp)
            mask[imp < threshold] = 0
            self.masks[module] = mask
        return self.masks


def test_pruner_matches_the_official_update_on_fixed_gradients():
    """A fixed sequence of weights and gradients through the official update and ours: the
    same scores on every live weight and the same mask after every window step."""
    gen = torch.Generator().manual_seed(0)
    shapes = {"a": (10, 10), "b": (20, 5), "c": (50,)}  # 250 weights
    total = 250
    rate, n = 60, 11  # window of n = 11 steps = the official iter_num N = 12
    n_keep_final = total - n_pruned(total, rate)
    official = OfficialSeven(shapes, 1 - rate / 100, n + 1, 0.8, 0.8)
    masks = {name: torch.ones(s, dtype=torch.bool) for name, s in shapes.items()}
    pruner = SevenPruner(SevenScorer(0.8, 0.8, 1e-9), masks, n_keep_final, n)
    weights = {name: torch.randn(s, generator=gen) for name, s in shapes.items()}
    kept = []
    for k in range(n):
        w = {name: weights[name] * official.masks[name] for name in shapes}  # pruned weights are zero
        g = {name: torch.randn(s, generator=gen) * (1 + k % 3) for name, s in shapes.items()}
        alive_before = {name: masks[name].clone() for name in shapes}
        expect = official.model_masks(k, w, {name: g[name] * official.masks[name] for name in shapes})
        got = pruner.step(k, w, g)  # ours: raw gradient, masked inside
        for name in shapes:
            assert torch.equal(got[name], expect[name].bool()), (k, name)
            live = alive_before[name]
            np.testing.assert_allclose(
                pruner.scorer.scores[name][live].numpy(), official.importances[name][live].numpy(), rtol=1e-5
            )
        kept.append(sum(int(m.sum()) for m in got.values()))
        weights = {name: weights[name] + 0.05 * torch.randn(s, generator=gen) for name, s in shapes.items()}
    assert kept[-1] == n_keep_final == 100 and kept == sorted(kept, reverse=True) and kept[0] < total


def test_scorer_matches_numpy_formula():
    rng = np.random.default_rng(1)
    a1, a2, eps = 0.8, 0.9, 1e-9
    w = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(5,))}
    grads = [{k: rng.normal(size=v.shape) for k, v in w.items()} for _ in range(4)]
    grads[2]["b"] = None  # a missing gradient counts as zero
    scorer = SevenScorer(a1, a2, eps)
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v2 = {k: np.zeros_like(v) for k, v in w.items()}
    s = {k: np.zeros_like(v) for k, v in w.items()}
    for t, step in enumerate(grads, 1):
        got = scorer.update(
            {k: torch.tensor(x, dtype=torch.float32) for k, x in w.items()},
            {k: None if g is None else torch.tensor(g, dtype=torch.float32) for k, g in step.items()},
        )
        for k in w:
            g = np.zeros_like(w[k]) if step[k] is None else np.abs(step[k])
            m[k] = a1 * m[k] + (1 - a1) * g
            v2[k] = a2 * v2[k] + (1 - a2) * g**2
            m_hat, v_hat = m[k] / (1 - a1**t), v2[k] / (1 - a2**t)
            s[k] += np.abs(w[k] * g * m_hat / (np.sqrt(v_hat) + eps))
            np.testing.assert_allclose(got[k].numpy(), s[k], rtol=1e-5, atol=1e-7)
    assert scorer.t == 4


def test_cubic_schedule_is_the_official_one():
    keep, n = 0.3, 12
    official = [keep + (1 - keep) * ((1 - (k + 1) / (n + 1)) ** 3) for k in range(n)]  # pruner.py L79, N = n + 1
    assert [remain_ratio(k, n, keep) for k in range(n)] == pytest.approx(official)
    assert window(20, 0.1, 0.7) == (2, 14)
    assert window(1, 0.1, 0.7) == (0, 1)  # a one-step schedule still prunes once
    # the official SST-2 run (t_i 1000, iter_num 4000 of 10 x 2105 steps) as fractions
    assert window(21050, 0.0475, 0.2375) == (999, 4999)
    pruner = SevenPruner(SevenScorer(0.8, 0.8, 1e-9), {"w": torch.ones(1000, dtype=torch.bool)}, 300, n)
    counts = [pruner.n_keep(k) for k in range(n)]
    assert counts[:-1] == [int(r * 1000) for r in official[:-1]] and counts[-1] == 300  # floor; last step exact


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


@pytest.mark.parametrize("rate", [30, 50])
def test_run_weights_exact_rate_and_deterministic(tiny, rate):
    res = run_method("seven", _task(tiny, rate))
    assert res.unit == "weights" and res.head_keep.all()
    total = sum(m.numel() for m in res.weight_masks.values())
    kept = sum(int(m.sum()) for m in res.weight_masks.values())
    assert total - kept == int(round(rate / 100 * total))
    assert any("pooler" in n for n in res.weight_masks) and not any("classifier" in n for n in res.weight_masks)
    keeps = [h["keep"] for h in res.history]
    assert keeps == sorted(keeps, reverse=True) and len(keeps) > 1  # gradual, never regrowing
    own = res.extras["own_model"]
    assert (
        {"macro_f1", "accuracy", "protocol"} <= set(own)
        and "predictions" not in own
        and "SEVEN's own" in own["protocol"]
    )
    again = run_method("seven", _task(tiny, rate))
    assert all(torch.equal(res.weight_masks[n], again.weight_masks[n]) for n in res.weight_masks)
    assert again.extras["own_model"]["macro_f1"] == own["macro_f1"]
    no_pooler = run_method("seven", _task(tiny, rate, include_pooler=False))
    assert set(no_pooler.weight_masks) == set(prunable_linears(load_classifier(tiny[0])))


def test_run_weights_scores_post_step_weights_and_raw_gradients(tiny, monkeypatch):
    """As the official order (backward, optimizer.step(), then the score): the pruner sees
    the weights after the optimiser step and the gradient before clipping."""
    from lotteryprune.model.training import train as real_train
    from lotteryprune.prune import seven

    seen, calls = {"post": [], "raw": [], "norm": []}, []

    def spy_train(model, *args, on_backward=None, **kwargs):
        params = dict(model.named_parameters())

        def backward(step, total):
            seen["raw"].append(
                {
                    n: p.grad.detach().clone()
                    for n, p in params.items()
                    if p.grad is not None and n.endswith("query.weight")
                }
            )
            seen["norm"].append(
                float(torch.cat([p.grad.flatten() for p in params.values() if p.grad is not None]).norm())
            )
            on_backward(step, total)

        def post(optimizer, a, k):
            seen["post"].append({n: p.detach().clone() for n, p in params.items() if n.endswith("query.weight")})

        handle = register_optimizer_step_post_hook(post)
        try:
            return real_train(model, *args, on_backward=backward, **kwargs)
        finally:
            handle.remove()

    real_step = seven.SevenPruner.step

    def spy_step(self, k, weights, grads):
        calls.append(
            (
                {n: w.detach().clone() for n, w in weights.items() if n.endswith("query.weight")},
                {n: g.clone() for n, g in grads.items() if n.endswith("query.weight")},
            )
        )
        return real_step(self, k, weights, grads)

    monkeypatch.setattr(seven, "train", spy_train)
    monkeypatch.setattr(seven.SevenPruner, "step", spy_step)
    d, texts, labels = tiny
    cfg = train_cfg(epochs=2, batch_size=8, seed=0, max_grad_norm=1e-4)  # clipping changes every gradient
    res = run_method(
        "seven",
        PruneTask(
            str(d),
            texts,
            labels,
            texts[:8],
            labels[:8],
            50,
            cfg,
            params={**PARAMS, "start_frac": 0.25},
            seed=0,
            metric="macro_f1",
            progress=False,
        ),
    )
    first = res.extras["window"]["first_step"]
    assert first > 0 and len(calls) == res.extras["score_updates"] > 1
    for j, (weights, grads) in enumerate(calls):
        step = first + j
        for name in weights:
            assert torch.equal(weights[name], seen["post"][step][name])  # post-step weights
            assert torch.equal(grads[name], seen["raw"][step][name])  # raw gradient of this step
        assert any(not torch.equal(weights[n], seen["post"][step - 1][n]) for n in weights)  # not the pre-step ones
        assert seen["norm"][step] > 1e-4  # so clipping scaled every gradient of this step


def test_run_weights_pruned_weights_are_zero_after_training(tiny, monkeypatch):
    """The weights SEVEN masks are held at zero in the model it fine-tunes (train() re-applies
    the very dict SEVEN mutates)."""
    from lotteryprune.model.training import train as real_train
    from lotteryprune.prune import seven

    seen = {}

    def spy(model, *args, weight_masks=None, **kwargs):
        out = real_train(model, *args, weight_masks=weight_masks, **kwargs)
        seen["params"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return out

    monkeypatch.setattr(seven, "train", spy)
    res = run_method("seven", _task(tiny, 50))
    kept_nonzero = []
    for name, mask in res.weight_masks.items():
        assert (seen["params"][name][~mask] == 0).all()
        kept_nonzero.append(seen["params"][name][mask] != 0)
    assert torch.cat(kept_nonzero).float().mean() > 0.99
    assert math.isclose(
        1 - float(torch.cat([m.flatten() for m in res.weight_masks.values()]).float().mean()), 0.5, abs_tol=1e-4
    )


def test_run_heads_exact_count_and_deterministic(tiny):
    res = run_method("seven_heads", _task(tiny, 50))
    assert res.unit == "heads" and int((~res.head_keep).sum()) == n_pruned(8, 50)
    assert np.array(res.extras["scores"]).shape == (2, 4)
    again = run_method("seven_heads", _task(tiny, 50))
    assert np.array_equal(res.head_keep, again.head_keep)
