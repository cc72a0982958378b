"""Head gating and physical head removal for BERT-family encoders.

transformers 5 removed ``prune_heads`` and ignores ``head_mask``, so this module owns both:

* **gating** multiplies each head's context vector (the input of the attention output
  projection) by a per-head gate. Gates are a tensor, so gradients w.r.t. them score heads.
  A layer whose gates are all exactly zero is skipped entirely (feed-forward included),
  which is what physical removal does to an emptied layer.
* **removal** slices the query/key/value rows and the output-projection columns of the
  pruned heads, and deletes a layer that keeps no head. What was removed is recorded in
  ``config.lottery_pruning`` so :func:`lotteryprune.model.sources.load_classifier` can
  rebuild the shape on load.

Everything here works on BERT-family encoders (``model.base_model.encoder.layer[i]``
with ``attention.self.{query,key,value}`` and ``attention.output.dense``). Masks are
``[layers, heads]`` keep-masks (True = kept); prune rates are percents, as in the config.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

PRUNING_KEY = "lottery_pruning"

# --------------------------------------------------------------------------- layout


def layers_of(model) -> nn.ModuleList:
    return model.base_model.encoder.layer


def head_layout(model) -> tuple[int, int]:
    """(layers, heads per layer) of the *original* model (pruned models remember theirs)."""
    pruning = getattr(model.config, PRUNING_KEY, None)
    if pruning is not None:
        keep = np.asarray(pruning["keep_mask"])
        return keep.shape
    return model.config.num_hidden_layers, model.config.num_attention_heads


def heads_per_layer(model) -> list[int]:
    return [layer.attention.self.query.out_features // layer.attention.self.attention_head_size for layer in layers_of(model)]


def random_keep_mask(layers: int, heads: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A keep-mask with exactly ``n_pruned(layers * heads, rate)`` heads removed (``rate`` in percent)."""
    total = layers * heads
    flat = np.ones(total, dtype=bool)
    flat[rng.choice(total, size=n_pruned(total, rate), replace=False)] = False
    return flat.reshape(layers, heads)


def n_pruned(total: int, rate: float) -> int:
    """Units removed at a prune rate in percent, as in ``prune.rates``; always keeps one."""
    if not 0 <= rate < 100:
        raise ValueError(f"prune rate must be a percent in [0, 100), got {rate}")
    return min(int(round(rate / 100.0 * total)), total - 1)


# --------------------------------------------------------------------------- gating


@contextlib.contextmanager
def gated(model, gates: torch.Tensor) -> Iterator[torch.Tensor]:
    """Multiply each head's context by ``gates[layer, head]`` while the context is open.

    ``gates`` may require grad (head importance = |d loss / d gate|). Layers whose gates
    are all exactly zero are skipped, as physical removal drops them.
    """
    layers = layers_of(model)
    if gates.shape[0] != len(layers):
        raise ValueError(f"gates have {gates.shape[0]} layers, model has {len(layers)}")
    handles = []
    for i, layer in enumerate(layers):
        attn = layer.attention
        head_dim = attn.self.attention_head_size

        def pre_hook(module, args, i=i, head_dim=head_dim):
            (context,) = args
            scale = gates[i].to(context.dtype).repeat_interleave(head_dim)
            return (context * scale,)

        def skip_hook(module, args, kwargs, output, i=i):
            if bool((gates[i] == 0).all()):
                return args[0] if args else kwargs["hidden_states"]
            return output

        handles.append(attn.output.dense.register_forward_pre_hook(pre_hook))
        handles.append(layer.register_forward_hook(skip_hook, with_kwargs=True))
    try:
        yield gates
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------- removal


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    weight = linear.weight.detach().index_select(dim, index).clone()
    bias = linear.bias
    if bias is not None and dim == 0:
        bias = bias.detach().index_select(0, index).clone()
    elif bias is not None:
        bias = bias.detach().clone()
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new


def reshape_to(model, keep: np.ndarray) -> None:
    """Slice heads and drop emptied layers in place (weights sliced, or shape only on load)."""
    layers = layers_of(model)
    if keep.shape[0] != len(layers):
        raise ValueError(f"keep mask has {keep.shape[0]} layers, model has {len(layers)}")
    survivors = []
    for layer, row in zip(layers, keep):
        if not row.any():
            continue  # an emptied layer goes, feed-forward included
        self_attn = layer.attention.self
        d = self_attn.attention_head_size
        current = self_attn.query.out_features // d
        if len(row) != current:
            raise ValueError(f"keep-mask row has {len(row)} heads, layer has {current}")
        if not row.all():
            kept_heads = np.flatnonzero(row)
            index = torch.as_tensor(np.concatenate([np.arange(h * d, (h + 1) * d) for h in kept_heads]), dtype=torch.long)
            self_attn.query = _slice_linear(self_attn.query, index, 0)
            self_attn.key = _slice_linear(self_attn.key, index, 0)
            self_attn.value = _slice_linear(self_attn.value, index, 0)
            layer.attention.output.dense = _slice_linear(layer.attention.output.dense, index, 1)
            self_attn.num_attention_heads = len(kept_heads)
            self_attn.all_head_size = len(kept_heads) * d
        survivors.append(layer)
    model.base_model.encoder.layer = nn.ModuleList(survivors)
    for i, layer in enumerate(survivors):  # keep layer_idx consistent for caches/attention
        layer.attention.self.layer_idx = i


def prune_heads(model, keep_mask: np.ndarray):
    """Physically remove the heads where ``keep_mask`` is False (in place; returns model).

    ``keep_mask`` is [layers, heads] over the model's current (unpruned) layout.
    """
    keep = np.asarray(keep_mask, dtype=bool)
    if getattr(model.config, PRUNING_KEY, None) is not None:
        raise ValueError("model is already pruned; prune the original model with the combined mask")
    if keep.sum() == 0:
        raise ValueError("keep mask removes every head")
    reshape_to(model, keep)
    setattr(
        model.config,
        PRUNING_KEY,
        {"keep_mask": keep.astype(int).tolist(), "dropped_layers": [int(i) for i in np.flatnonzero(~keep.any(1))]},
    )
    model.config.num_hidden_layers = len(layers_of(model))
    return model


def save_pruned(model, tokenizer, directory: str | Path) -> None:
    """``save_pretrained`` plus the tokenizer; :func:`load_classifier` restores the shape."""
    directory = Path(directory)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)


# --------------------------------------------------------------------------- masks on disk


def save_masks(path: str | Path, head_keep: np.ndarray, weight_masks: dict[str, torch.Tensor] | None = None) -> None:
    """One safetensors file per pruning result: ``heads`` [L, H] and optional ``weight:<name>``."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    tensors = {"heads": torch.as_tensor(np.asarray(head_keep, dtype=np.uint8))}
    for name, mask in (weight_masks or {}).items():
        tensors[f"weight:{name}"] = mask.to(torch.uint8).contiguous().cpu()
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))


def load_masks(path: str | Path) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    heads = tensors.pop("heads").numpy().astype(bool)
    weights = {k.split(":", 1)[1]: v.bool() for k, v in tensors.items() if k.startswith("weight:")}
    return heads, weights


def save_mask_set(path: str | Path, masks: dict[int, tuple[np.ndarray, dict[str, torch.Tensor] | None]]) -> None:
    """Several masks in one safetensors file, one per search seed: ``seed<k>/heads`` and
    ``seed<k>/weight:<name>`` (written atomically)."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    tensors = {}
    for seed, (head_keep, weight_masks) in masks.items():
        tensors[f"seed{int(seed)}/heads"] = torch.as_tensor(np.asarray(head_keep, dtype=np.uint8))
        for name, mask in (weight_masks or {}).items():
            tensors[f"seed{int(seed)}/weight:{name}"] = mask.to(torch.uint8).contiguous().cpu()
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))


def load_mask_set(path: str | Path) -> dict[int, tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """search seed -> (head keep-mask, weight masks) of a file written by :func:`save_mask_set`."""
    from safetensors.torch import load_file

    out: dict[int, tuple[np.ndarray, dict]] = {}
    for key, tensor in sorted(load_file(str(path)).items()):
        seed_part, _, name = key.partition("/")
        seed = int(seed_part.removeprefix("seed"))
        heads, weights = out.get(seed, (None, {}))
        if name == "heads":
            heads = tensor.numpy().astype(bool)
        else:
            weights[name.split(":", 1)[1]] = tensor.bool()
        out[seed] = (heads, weights)
    return {seed: (heads, weights or None) for seed, (heads, weights) in out.items()}


@torch.no_grad()
def apply_weight_masks(model, weight_masks: dict[str, torch.Tensor] | None) -> None:
    """Zero the masked weights in place (called after every optimiser step as well)."""
    if not weight_masks:
        return
    params = dict(model.named_parameters())
    for name, mask in weight_masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))


def prunable_linears(model) -> dict[str, nn.Linear]:
    """Every Linear of the encoder (attention and feed-forward), not the pooler/classifier."""
    return {
        f"{name}.weight": module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ".encoder." in f".{name}." and "classifier" not in name
    }
