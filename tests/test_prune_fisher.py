"""Kwon et al. (2022) as written here (lotteryprune.prune.fisher), step by step against
independent computations: Fisher gradients against finite differences and a one-text loop,
the official per-batch Fisher against per-sample gradients, the FLOPs search against brute
force, the rearrangement against a literal port of the official code, the least-squares
mask tuning against explicit ``torch.linalg.lstsq`` solutions, and the two methods end to end."""

import itertools

import numpy as np
import pytest
import torch

from conftest import prune_task
from lotteryprune.model.cost import UnitCosts
from lotteryprune.model.heads import gated, layers_of
from lotteryprune.model.sources import load_classifier, load_tokenizer
from lotteryprune.prune import fisher

TEXTS = [
    "what a great day",
    "i hate it",
    "so good and happy today",
    "bad sad day",
    "not good at all really",
    "love this",
]
LABELS = [1, 0, 1, 0, 0, 1]

PARAMS = {
    "finetune": True,
    "gradients": "per_sample",
    "batch_size": 4,
    "seq_len": 16,
    "rearrange": True,
    "tune": True,
    "teacher": "sqrt",
    "damp": 1.0,
    "solver": "lsmr",
}


def _model(model_dir, dtype=torch.float32):
    model = load_classifier(model_dir, seed=1, attn_implementation="eager").to(dtype).eval()
    with torch.no_grad():  # a classifier that is not nearly zero, so the gradients are not tiny
        model.classifier.weight.mul_(50)
    return model


def _loss(model, tok, texts, labels, heads, neurons):
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad(), gated(model, heads, neurons):
        logits = model(**batch).logits
    return torch.nn.functional.cross_entropy(logits.double(), torch.tensor(labels), reduction="sum")


def test_per_sample_gradients_against_finite_differences_and_a_one_text_loop(tiny_model_dir):
    model = _model(tiny_model_dir, torch.float64)
    tok = load_tokenizer(tiny_model_dir)
    hg, ng = fisher.mask_gradients(
        model, tok, TEXTS, LABELS, neurons=True, per_sample=True, batch_size=4, max_length=16
    )
    assert hg.shape == (6, 3, 4) and ng.shape == (6, 3, 64)
    ones_h, ones_n = torch.ones(3, 4, dtype=torch.float64), torch.ones(3, 64, dtype=torch.float64)
    eps = 1e-5
    rng = np.random.default_rng(0)
    for i in (0, 3, 5):  # central differences of one text's loss, a few heads and neurons
        for layer, h in [(0, 1), (2, 3)]:
            up, down = ones_h.clone(), ones_h.clone()
            up[layer, h] += eps
            down[layer, h] -= eps
            fd = (
                _loss(model, tok, TEXTS[i : i + 1], LABELS[i : i + 1], up, ones_n)
                - _loss(model, tok, TEXTS[i : i + 1], LABELS[i : i + 1], down, ones_n)
            ) / (2 * eps)
            assert float(hg[i, layer, h]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)
        for layer, j in [(1, int(rng.integers(64))), (2, int(rng.integers(64)))]:
            up, down = ones_n.clone(), ones_n.clone()
            up[layer, j] += eps
            down[layer, j] -= eps
            fd = (
                _loss(model, tok, TEXTS[i : i + 1], LABELS[i : i + 1], ones_h, up)
                - _loss(model, tok, TEXTS[i : i + 1], LABELS[i : i + 1], ones_h, down)
            ) / (2 * eps)
            assert float(ng[i, layer, j]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)
    # one backward pass per batch gives what one text at a time gives
    for i in range(6):
        one_h, one_n = fisher.mask_gradients(
            model, tok, TEXTS[i : i + 1], LABELS[i : i + 1], neurons=True, per_sample=True, batch_size=1, max_length=16
        )
        torch.testing.assert_close(hg[i], one_h[0].float(), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(ng[i], one_n[0].float(), atol=1e-6, rtol=1e-5)
    info = fisher.fisher_information(hg)
    np.testing.assert_allclose(info, (hg.double() ** 2).sum(0).numpy())


def test_per_batch_fisher_is_the_official_batch_mean(tiny_model_dir):
    model = _model(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir)
    hs, ns = fisher.mask_gradients(
        model, tok, TEXTS, LABELS, neurons=True, per_sample=True, batch_size=4, max_length=16
    )
    hb, nb = fisher.mask_gradients(
        model, tok, TEXTS, LABELS, neurons=True, per_sample=False, batch_size=4, max_length=16
    )
    assert hb.shape == (2, 3, 4)  # batches of 4 consecutive texts: [0..3], [4, 5]
    torch.testing.assert_close(hb[0], hs[:4].mean(0), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(hb[1], hs[4:].mean(0), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(nb[1], ns[4:].mean(0), atol=1e-6, rtol=1e-4)
    assert all(p.requires_grad for p in model.parameters())  # parameters given back


@pytest.mark.parametrize("seed", range(5))
def test_flops_search_is_the_best_mask_under_the_budget(seed):
    """Brute force over every head subset and every neuron subset of a small problem."""
    from transformers import BertConfig

    rng = np.random.default_rng(seed)
    config = BertConfig(hidden_size=8, num_attention_heads=2, num_hidden_layers=2, intermediate_size=3)
    costs = UnitCosts.of(config, 4)
    hi, ni = rng.random((2, 2)), rng.random((2, 3))
    for rate in (20, 45, 70, 95):
        budget = costs.budget(rate)
        heads, neurons, info = fisher.search_flops(hi, ni, costs, budget)
        assert costs.encoder(heads, neurons) <= budget and costs.removed_percent(heads, neurons) >= rate
        best = -1.0
        for hbits in itertools.product([0, 1], repeat=4):
            for nbits in itertools.product([0, 1], repeat=6):
                h, n = np.array(hbits, bool).reshape(2, 2), np.array(nbits, bool).reshape(2, 3)
                if costs.encoder(h, n) <= budget:
                    best = max(best, hi[h].sum() + ni[n].sum())
        assert hi[heads].sum() + ni[neurons].sum() == pytest.approx(best)
        assert info["heads"] == heads.sum() and info["neurons"] == neurons.sum()


def test_flops_search_never_exceeds_a_budget_below_all_heads():
    """The official code scores head counts that alone exceed the budget (and may return
    them); here they end the enumeration."""
    from transformers import BertConfig

    costs = UnitCosts.of(
        BertConfig(hidden_size=384, num_attention_heads=12, num_hidden_layers=6, intermediate_size=1536), 48
    )
    heads_only = 72 * costs.per_head / costs.full_encoder  # about 35% of the encoder
    rng = np.random.default_rng(0)
    hi = rng.random((6, 12)) * 100  # heads far more important than neurons
    ni = rng.random((6, 1536))
    rate = 100 * (1 - heads_only / 2)
    heads, neurons, _ = fisher.search_flops(hi, ni, costs, costs.budget(rate))
    assert costs.encoder(heads, neurons) <= costs.budget(rate)


def _official_greedy_rearrange(mask, grads):
    """prune/rearrange.py of the official code, line for line (torch, CPU)."""
    num_unpruned = int(mask.sum())
    num_pruned = mask.shape[0] - num_unpruned
    if num_unpruned == 0 or num_pruned == 0:
        return mask
    grads = grads.permute(1, 0).contiguous()
    grads_sq = grads.pow(2).sum(dim=1)
    _, indicies = grads_sq.sort(descending=False, stable=True)
    indicies = indicies.tolist()
    masked_indicies = indicies[:num_pruned]
    for index in indicies[num_pruned:]:
        masked_indicies.append(index)
        grad_vectors = grads[masked_indicies]
        grad_sum = grad_vectors.sum(dim=0)
        complement = grad_sum - grad_vectors
        grad_sum_length = complement.pow(2).sum(dim=1)
        removed = grad_sum_length.argmin()
        del masked_indicies[removed]
    new_mask = torch.ones_like(mask)
    new_mask[masked_indicies] = 0
    return new_mask


@pytest.mark.parametrize("seed", range(6))
def test_rearrangement_is_the_official_greedy_pass_and_never_worse(seed):
    rng = np.random.default_rng(seed)
    grads = torch.as_tensor(rng.normal(size=(7, 3, 20)) + rng.normal(size=(1, 3, 20)), dtype=torch.float64)
    keep = rng.random((3, 20)) < 0.4
    ours = fisher.rearrange(keep, grads)
    for i in range(3):
        official = (
            _official_greedy_rearrange(torch.as_tensor(keep[i], dtype=torch.float64), grads[:, i, :])
            .numpy()
            .astype(bool)
        )
        assert (ours[i] == official).all()
    assert (ours.sum(1) == keep.sum(1)).all()
    start = np.stack(
        [fisher.top_keep(fisher.fisher_information(grads[:, i, :])[None], int(keep[i].sum()))[0] for i in range(3)]
    )
    assert fisher.block_fisher_loss(ours, grads) <= fisher.block_fisher_loss(start, grads) + 1e-9


def test_least_squares_systems_and_solution_against_explicit_lstsq(tiny_model_dir):
    """Build A and b explicitly from one layer's captured inputs; the accumulated A^T A, A^T b
    and the damped solution must match, and with damp 0 the scales are lstsq(A, b)."""
    model = _model(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir)
    batches = [
        dict(tok(TEXTS[:4], padding=True, return_tensors="pt")),
        dict(tok(TEXTS[4:], padding=True, return_tensors="pt")),
    ]
    layer = layers_of(model)[1]
    heads = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1]], bool)
    neurons = np.random.default_rng(0).random((3, 64)) < 0.5
    ones_h, ones_n = torch.ones(3, 4), torch.ones(3, 64)
    g_h, g_n = torch.as_tensor(heads, dtype=torch.float32), torch.as_tensor(neurons, dtype=torch.float32)
    # attention block of layer 1
    targets = fisher._teacher_targets(model, layer, "mha", ones_h, ones_n, batches)
    captured = fisher._capture(model, layer.attention.output, g_h, g_n, batches)
    ata, atb, btb = fisher.mha_system(layer, captured, targets, heads[1])
    W, bias = layer.attention.output.dense.weight.detach().double(), layer.attention.output.dense.bias.detach().double()
    cols, rhs = [], []
    for (args, _, mask), target in zip(captured, targets):
        ctx, res = args[0][mask].double(), args[1][mask].double()
        block = []
        for h in np.flatnonzero(heads[1]):
            only = torch.zeros_like(ctx)
            only[:, h * 8 : (h + 1) * 8] = ctx[:, h * 8 : (h + 1) * 8]
            block.append((only @ W.t()).reshape(-1))
        block.append(torch.ones(ctx.shape[0] * 32, dtype=torch.float64))
        cols.append(torch.stack(block, 1))
        rhs.append((target[mask].double() - bias - res).reshape(-1))
    A, b = torch.cat(cols), torch.cat(rhs)
    torch.testing.assert_close(ata, A.t() @ A)
    torch.testing.assert_close(atb, A.t() @ b)
    torch.testing.assert_close(btb, b @ b)
    direct = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(fisher.solve_scales(ata, atb, 0.0), direct, atol=1e-6, rtol=1e-5)
    assert fisher.residual(ata, atb, btb, direct) == pytest.approx(float((A @ direct - b).pow(2).sum()), rel=1e-6)
    # the damped solution: argmin |M d - r|^2 + damp^2 |d|^2, M = A^T A, r = A^T b - M 1, solved directly
    M = A.t() @ A
    r = A.t() @ b - M @ torch.ones(M.shape[0], dtype=torch.float64)
    for damp in (1.0, 100.0):
        d = torch.linalg.solve(M.t() @ M + damp**2 * torch.eye(M.shape[0], dtype=torch.float64), M.t() @ r)
        torch.testing.assert_close(fisher.solve_scales(ata, atb, damp), d + 1, atol=1e-6, rtol=1e-5)
    # feed-forward block of layer 1, in the official Hadamard form, against explicit columns a_j(t) w_j
    targets = fisher._teacher_targets(model, layer, "ffn", ones_h, ones_n, batches)
    captured = fisher._capture(model, layer.output, g_h, g_n, batches)
    for cls_only in (False, True):
        ata, atb, btb = fisher.ffn_system(layer, captured, targets, neurons[1], cls_only=cls_only)
        W2, b2 = layer.output.dense.weight.detach().double(), layer.output.dense.bias.detach().double()
        idx = np.flatnonzero(neurons[1])
        cols, rhs = [], []
        for (args, _, mask), target in zip(captured, targets):
            if cls_only:
                mask = torch.zeros_like(mask)
                mask[:, 0] = True
            act, res = args[0][mask].double(), args[1][mask].double()
            cols.append(torch.stack([(act[:, j : j + 1] * W2[:, j]).reshape(-1) for j in idx], 1))
            rhs.append((target[mask].double() - b2 - res).reshape(-1))
        A, b = torch.cat(cols), torch.cat(rhs)
        torch.testing.assert_close(ata, A.t() @ A)
        torch.testing.assert_close(atb, A.t() @ b)
        torch.testing.assert_close(btb, b @ b)
        if not cls_only:
            direct = torch.linalg.lstsq(A, b.unsqueeze(1), driver="gelsd").solution.squeeze(1)
            got = fisher.solve_scales(ata, atb, 0.0)
            # same least-squares optimum (A may be rank deficient: compare the fits)
            assert float((A @ got - b).pow(2).sum()) == pytest.approx(float((A @ direct - b).pow(2).sum()), rel=1e-6)


def test_lsmr_solver_is_the_official_one():
    """solver lsmr: scipy's LSMR on the damped normal equations, with the official stopping
    rules; it reaches the exact damped minimiser on a well-conditioned system and fails (NaN,
    tuning stops) when the condition limit is hit."""
    rng = np.random.default_rng(0)
    A = torch.as_tensor(rng.normal(size=(200, 6)), dtype=torch.float64)
    b = torch.as_tensor(rng.normal(size=200), dtype=torch.float64)
    ata, atb = A.t() @ A, A.t() @ b
    torch.testing.assert_close(
        fisher.solve_scales_lsmr(ata, atb, 1.0), fisher.solve_scales(ata, atb, 1.0), atol=1e-4, rtol=1e-4
    )
    # a spread spectrum: LSMR hits its iteration cap (as many iterations as unknowns, istop 7)
    Q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    M = torch.as_tensor(Q @ np.diag(np.logspace(0, 3, 20)) @ Q.T, dtype=torch.float64)
    assert torch.isnan(fisher.solve_scales_lsmr(M, torch.as_tensor(rng.normal(size=20)), 0.0)).all()
    assert torch.isfinite(fisher.solve_scales(M, torch.as_tensor(rng.normal(size=20)), 0.0)).all()


def test_mask_tuning_reduces_every_layers_error(tiny_model_dir):
    model = _model(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir)
    batches = [dict(tok(TEXTS, padding=True, return_tensors="pt"))]
    rng = np.random.default_rng(3)
    heads, neurons = rng.random((3, 4)) < 0.6, rng.random((3, 64)) < 0.5
    heads[:, 0] = True
    head_scale, neuron_scale, report = fisher.tune_masks(
        model,
        batches,
        heads,
        neurons,
        np.ones((3, 4), bool),
        np.ones((3, 64), bool),
        damp=0.0,
        cls_last=False,
        solver="lstsq",
    )
    assert (head_scale[~heads] == 0).all() and (neuron_scale[~neurons] == 0).all()
    assert (head_scale[0][heads[0]] == 1).all()  # layer-0 heads are never tuned
    entries = [e[k] for e in report for k in ("mha", "ffn") if k in e]
    assert len(entries) == 5 and all(e["ok"] for e in entries)
    assert all(e["residual_after"] <= e["residual_before"] * (1 + 1e-9) for e in entries)
    assert any(e["residual_after"] < 0.999 * e["residual_before"] for e in entries)


def _task(d, texts, labels, rate, params=PARAMS):
    return prune_task((d, texts, labels), rate, params, valid=12, epochs=1, max_length=16)


@pytest.mark.parametrize("rate", [40, 75])
def test_fisher_meets_the_flops_budget_on_the_tiny_model(tiny_corpus, rate):
    d, texts, labels = tiny_corpus(24)
    result = fisher.run(_task(d, texts, labels, rate))
    costs = UnitCosts.of(load_classifier(d).config, 16)
    kept = costs.encoder(result.head_keep, result.neuron_keep)
    assert result.unit == "flops" and kept <= costs.budget(rate)
    assert result.achieved_rate() >= rate and result.achieved_rate() < rate + 100 * costs.per_head / costs.full_encoder
    assert result.flops == (kept, costs.full_encoder)
    x = result.extras
    assert set(x["retraining_free"]) >= {"unpruned", "binary", "tuned"}
    assert (
        x["rearrangement"]["block_fisher_loss_after"]["neurons"]
        <= x["rearrangement"]["block_fisher_loss_before"]["neurons"] + 1e-12
    )
    assert x["seconds"]["search_total"] > 0 and x["teacher"]["kind"] == "sqrt"
    assert x["teacher"]["flops_removed_percent"] < rate


def test_fisher_heads_prunes_the_gas_head_count(tiny_corpus):
    d, texts, labels = tiny_corpus(24)
    result = fisher.run_heads(_task(d, texts, labels, 50, {**PARAMS, "gradients": "per_batch", "teacher": "unpruned"}))
    assert result.unit == "heads" and result.neuron_keep is None
    assert (~result.head_keep).sum() == 4 and result.achieved_rate() == 50.0
    untuned = fisher.run_heads(_task(d, texts, labels, 50, {**PARAMS, "rearrange": False, "tune": False}))
    assert "tuned" not in untuned.extras["retraining_free"]


def test_unknown_or_missing_keys_are_named():
    with pytest.raises(KeyError, match="prune.fisher: unknown keys \\['dampp'\\]"):
        fisher.FisherParams.from_section({**PARAMS, "dampp": 1})
    with pytest.raises(KeyError, match="missing keys \\['damp'\\]"):
        fisher.FisherParams.from_section({k: v for k, v in PARAMS.items() if k != "damp"})
    with pytest.raises(ValueError, match="gradients"):
        fisher.FisherParams.from_section({**PARAMS, "gradients": "sample"})
