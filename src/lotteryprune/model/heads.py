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
* **feed-forward neurons** (issue #18): an optional ``[layers, intermediate]`` neuron
  keep-mask gates (or removes) rows of ``intermediate.dense`` and the matching columns of
  ``output.dense``. With an explicit neuron mask the attention and the feed-forward block
  of a layer are independent (as in Kwon et al. 2022): a layer is dropped only when it
  keeps no head *and* no neuron; a layer with no head keeps its feed-forward block (its
  attention block then adds only the output bias), a layer with no neuron keeps its
  attention (its feed-forward block adds only its output bias). Without a neuron mask the
  paper's rule holds: a layer with no head goes, feed-forward included.

Everything here works on BERT-family encoders (``model.base_model.encoder.layer[i]``
with ``attention.self.{query,key,value}`` and ``attention.output.dense``). Masks are
``[layers, heads]`` keep-masks (True = kept); prune rates are percents, as in the config.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

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


def saved_layout(model_dir) -> tuple[int, int]:
    """(layers, heads per layer) of a saved model, read from its config alone (no weights)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    return config.num_hidden_layers, config.num_attention_heads


def heads_per_layer(model) -> list[int]:
    return [
        layer.attention.self.query.out_features // layer.attention.self.attention_head_size
        for layer in layers_of(model)
    ]


def random_keep_mask(layers: int, heads: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A keep-mask with exactly ``n_pruned(layers * heads, rate)`` heads removed (``rate`` in percent)."""
    total = layers * heads
    return random_flat_mask(total, n_pruned(total, rate), rng).reshape(layers, heads)


def random_flat_mask(total: int, n_prune: int, rng: np.random.Generator) -> np.ndarray:
    """A flat keep-mask over ``total`` units with ``n_prune`` of them, drawn by ``rng``, removed."""
    flat = np.ones(total, dtype=bool)
    flat[rng.choice(total, size=n_prune, replace=False)] = False
    return flat


def n_pruned(total: int, rate: float) -> int:
    """Units removed at a prune rate in percent, as in ``prune.rates``; always keeps one."""
    if not 0 <= rate < 100:
        raise ValueError(f"prune rate must be a percent in [0, 100), got {rate}")
    return min(int(round(rate / 100.0 * total)), total - 1)


# --------------------------------------------------------------------------- gating


def _layer_gates(gates: torch.Tensor, i: int) -> torch.Tensor:
    """Layer ``i``'s gates: ``[units]`` of ``[layers, units]`` gates, or ``[batch, units]``
    of per-sample ``[batch, layers, units]`` gates."""
    return gates[i] if gates.dim() == 2 else gates[:, i]


def _broadcast(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample ``[batch, units]`` gates as ``[batch, 1, units]`` against ``[batch, seq, units]``."""
    return scale if scale.dim() == 1 else scale.unsqueeze(1)


@contextlib.contextmanager
def gated(model, gates: torch.Tensor, neuron_gates: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Multiply each head's context by ``gates[layer, head]`` while the context is open.

    ``gates`` may require grad (head importance = |d loss / d gate|). Without
    ``neuron_gates``, layers whose gates are all exactly zero are skipped, as physical
    removal drops them. ``neuron_gates`` ``[layers, intermediate]`` multiplies each
    feed-forward neuron's activation (the input of ``output.dense``); with it, a layer is
    skipped only when its head gates and its neuron gates are all zero (see the module
    docstring). Either may carry a leading batch dimension (``[batch, layers, units]``):
    one gate per sample, so one backward pass gives per-sample gradients.
    """
    layers = layers_of(model)
    if gates.shape[-2] != len(layers):
        raise ValueError(f"gates have {gates.shape[-2]} layers, model has {len(layers)}")
    if neuron_gates is not None and neuron_gates.shape[-2] != len(layers):
        raise ValueError(f"neuron gates have {neuron_gates.shape[-2]} layers, model has {len(layers)}")
    handles = []
    for i, layer in enumerate(layers):
        attn = layer.attention
        head_dim = attn.self.attention_head_size

        def pre_hook(module, args, i=i, head_dim=head_dim):
            (context,) = args
            scale = _layer_gates(gates, i).to(context.dtype).repeat_interleave(head_dim, dim=-1)
            return (context * _broadcast(scale, context),)

        def neuron_hook(module, args, i=i):
            (act,) = args
            scale = _layer_gates(neuron_gates, i).to(act.dtype)
            return (act * _broadcast(scale, act),)

        def skip_hook(module, args, kwargs, output, i=i):
            empty = bool((_layer_gates(gates, i) == 0).all())
            if empty and neuron_gates is not None:
                empty = bool((_layer_gates(neuron_gates, i) == 0).all())
            if empty:
                return args[0] if args else kwargs["hidden_states"]
            return output

        handles.append(attn.output.dense.register_forward_pre_hook(pre_hook))
        if neuron_gates is not None:
            handles.append(layer.output.dense.register_forward_pre_hook(neuron_hook))
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
    with warnings.catch_warnings():  # a layer left with no head or no neuron has a zero-size Linear
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = nn.Linear(
            weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype
        )
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new


def reshape_to(model, keep: np.ndarray, neuron_keep: np.ndarray | None = None) -> None:
    """Slice heads (and, with ``neuron_keep``, feed-forward neurons) and drop emptied layers
    in place (weights sliced, or shape only on load). See the module docstring for when a
    layer is dropped."""
    layers = layers_of(model)
    if keep.shape[0] != len(layers):
        raise ValueError(f"keep mask has {keep.shape[0]} layers, model has {len(layers)}")
    if neuron_keep is not None and neuron_keep.shape[0] != len(layers):
        raise ValueError(f"neuron keep mask has {neuron_keep.shape[0]} layers, model has {len(layers)}")
    survivors = []
    for i, (layer, row) in enumerate(zip(layers, keep)):
        neurons = None if neuron_keep is None else neuron_keep[i]
        if not row.any() and (neurons is None or not neurons.any()):
            continue  # an emptied layer goes, feed-forward included
        self_attn = layer.attention.self
        d = self_attn.attention_head_size
        current = self_attn.query.out_features // d
        if len(row) != current:
            raise ValueError(f"keep-mask row has {len(row)} heads, layer has {current}")
        if not row.all():
            kept_heads = np.flatnonzero(row)
            index = torch.as_tensor(
                np.concatenate([np.arange(h * d, (h + 1) * d) for h in kept_heads]) if len(kept_heads) else np.zeros(0),
                dtype=torch.long,
            )
            self_attn.query = _slice_linear(self_attn.query, index, 0)
            self_attn.key = _slice_linear(self_attn.key, index, 0)
            self_attn.value = _slice_linear(self_attn.value, index, 0)
            layer.attention.output.dense = _slice_linear(layer.attention.output.dense, index, 1)
            self_attn.num_attention_heads = len(kept_heads)
            self_attn.all_head_size = len(kept_heads) * d
        if neurons is not None:
            width = layer.intermediate.dense.out_features
            if len(neurons) != width:
                raise ValueError(f"neuron keep-mask row has {len(neurons)} neurons, layer has {width}")
            if not neurons.all():
                index = torch.as_tensor(np.flatnonzero(neurons), dtype=torch.long)
                layer.intermediate.dense = _slice_linear(layer.intermediate.dense, index, 0)
                layer.output.dense = _slice_linear(layer.output.dense, index, 1)
        survivors.append(layer)
    model.base_model.encoder.layer = nn.ModuleList(survivors)
    for i, layer in enumerate(survivors):  # keep layer_idx consistent for caches/attention
        layer.attention.self.layer_idx = i


def neuron_layout(model) -> tuple[int, int]:
    """(layers, feed-forward neurons per layer) of the *original* model."""
    layers, _ = head_layout(model)
    return layers, int(model.config.intermediate_size)


def encode_neuron_keep(neuron_keep: np.ndarray) -> list[str]:
    """A neuron keep-mask as one '0'/'1' string per layer (compact in config.json)."""
    return ["".join("1" if b else "0" for b in row) for row in np.asarray(neuron_keep, dtype=bool)]


def decode_neuron_keep(rows: list[str]) -> np.ndarray:
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


def prune_heads(model, keep_mask: np.ndarray, neuron_keep: np.ndarray | None = None):
    """Physically remove the heads where ``keep_mask`` is False (in place; returns model),
    and with ``neuron_keep`` ([layers, intermediate]) the feed-forward neurons where it is
    False.

    ``keep_mask`` is [layers, heads] over the model's current (unpruned) layout.
    """
    keep = np.asarray(keep_mask, dtype=bool)
    neurons = None if neuron_keep is None else np.asarray(neuron_keep, dtype=bool)
    if getattr(model.config, PRUNING_KEY, None) is not None:
        raise ValueError("model is already pruned; prune the original model with the combined mask")
    if keep.sum() == 0 and (neurons is None or neurons.sum() == 0):
        raise ValueError("keep mask removes every head" + ("" if neurons is None else " and every neuron"))
    reshape_to(model, keep, neurons)
    empty = ~keep.any(1) if neurons is None else ~(keep.any(1) | neurons.any(1))
    record = {"keep_mask": keep.astype(int).tolist(), "dropped_layers": [int(i) for i in np.flatnonzero(empty)]}
    if neurons is not None:
        record["neuron_keep"] = encode_neuron_keep(neurons)
    setattr(model.config, PRUNING_KEY, record)
    model.config.num_hidden_layers = len(layers_of(model))
    return model


def prune_structure(model, head_keep: np.ndarray | None, neuron_keep: np.ndarray | None = None):
    """:func:`prune_heads` when the masks remove anything (in place; returns model): the one
    call every stage makes with a pruning result (a head mask, optionally a neuron mask)."""
    if head_keep is None:
        if neuron_keep is None:
            return model
        head_keep = np.ones(head_layout(model), dtype=bool)
    head_keep = np.asarray(head_keep, dtype=bool)
    if head_keep.all() and (neuron_keep is None or np.asarray(neuron_keep, dtype=bool).all()):
        return model
    return prune_heads(model, head_keep, neuron_keep)


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


class Masks(NamedTuple):
    """One search seed's pruning result on disk: head keep-mask [L, H], weight masks
    (weight-level methods) and feed-forward neuron keep-mask [L, intermediate] (or None)."""

    heads: np.ndarray
    weights: dict[str, torch.Tensor] | None = None
    neurons: np.ndarray | None = None


def as_masks(entry) -> Masks:
    """A (heads, weights[, neurons]) tuple as :class:`Masks` (older 2-tuples included)."""
    if isinstance(entry, Masks):
        return entry
    return Masks(*entry)


def save_mask_set(path: str | Path, masks: dict, *, unit: str | None = None) -> None:
    """Several masks in one safetensors file, one per search seed: ``seed<k>/heads``,
    ``seed<k>/weight:<name>`` and ``seed<k>/neurons`` (written atomically). ``masks`` maps
    a seed to (head keep-mask, weight masks[, neuron keep-mask]); ``unit`` (what the rate
    counts: heads | weights | flops) goes into the file's metadata."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    tensors = {}
    for seed, entry in masks.items():
        head_keep, weight_masks, neuron_keep = as_masks(entry)
        tensors[f"seed{int(seed)}/heads"] = torch.as_tensor(np.asarray(head_keep, dtype=np.uint8))
        for name, mask in (weight_masks or {}).items():
            tensors[f"seed{int(seed)}/weight:{name}"] = mask.to(torch.uint8).contiguous().cpu()
        if neuron_keep is not None:
            tensors[f"seed{int(seed)}/neurons"] = torch.as_tensor(np.asarray(neuron_keep, dtype=np.uint8))
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"unit": unit} if unit else None)


def load_mask_set(path: str | Path) -> dict[int, Masks]:
    """search seed -> :class:`Masks` (heads, weights, neurons) of a file written by
    :func:`save_mask_set`."""
    from safetensors.torch import load_file

    out: dict[int, list] = {}
    for key, tensor in sorted(load_file(str(path)).items()):
        seed_part, _, name = key.partition("/")
        seed = int(seed_part.removeprefix("seed"))
        entry = out.setdefault(seed, [None, {}, None])
        if name == "heads":
            entry[0] = tensor.numpy().astype(bool)
        elif name == "neurons":
            entry[2] = tensor.numpy().astype(bool)
        else:
            entry[1][name.split(":", 1)[1]] = tensor.bool()
    return {seed: Masks(heads, weights or None, neurons) for seed, (heads, weights, neurons) in out.items()}


def mask_set_unit(path: str | Path) -> str:
    """What the rate of a mask file counts: the unit saved with it, else ``weights`` when
    it holds weight masks and ``heads`` otherwise (files written before units were saved)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        unit = (f.metadata() or {}).get("unit")
        if unit:
            return unit
        return "weights" if any("/weight:" in k for k in f.keys()) else "heads"


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
