"""Does the GA beat chance? Validation F1 of the GA's best mask against random masks.

The issue's check: on the default config, the GA at 70% ends with validation F1 above the
mean of 10 random masks at the same rate with the same training budget. Every mask is
scored by the same recipe the prune rule uses (lotteryprune.prune.task.build_task +
lotteryprune.prune.score_mask: short training on the lottery sample, F1 on the validation
subset), so the only difference is the mask.

    .venv/bin/python benchmarks/ga_vs_random.py --rate 70 --sel random-5
    .venv/bin/python benchmarks/ga_vs_random.py --rate 70 --sel random-5 --no-ga --draws 1   # timing only

Reads results/model/pretrained, results/data/split.parquet, results/select/<sel>/ids.json,
the config (prune.train, prune.fitness_valid_size, seed) and
results/prune/ga/<sel>/<rate>/mask.safetensors. Prints a JSON summary (and writes it with --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from lotteryprune.model.heads import load_masks, n_pruned, random_keep_mask


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=70, help="prune rate in percent (as in prune.rates)")
    ap.add_argument("--sel", default="random-5", help="lottery sample, e.g. random-5 or kmeans-0.5")
    ap.add_argument("--results", default="results", help="the workflow's results directory")
    ap.add_argument("--config", nargs="+", default=["config/config.yaml"], help="config file(s), later ones override")
    ap.add_argument("--draws", type=int, default=10, help="random masks to score")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random masks (default: config seed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: config device)")
    ap.add_argument("--no-ga", action="store_true", help="score only the random masks")
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    args = ap.parse_args(argv)

    import pandas as pd
    import torch
    import yaml

    from lotteryprune import io, runtime
    from lotteryprune.prune import score_mask
    from lotteryprune.prune.task import build_task

    runtime.keep_freed_memory()  # as the workflow scripts do
    torch.set_num_threads(args.threads)
    config: dict = {}
    for path in args.config:
        config = deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    results = Path(args.results)
    model_dir = results / "model" / "pretrained"
    sample = io.read_json(results / "select" / args.sel / "ids.json")["ids"]
    device = args.device or runtime.device(config)
    task = build_task(
        pd.read_parquet(results / "data" / "split.parquet"), sample, config, args.rate, model_dir, "ga",
        workdir=None, device=device, threads=args.threads, progress=False,
    )
    from transformers import AutoConfig

    mcfg = AutoConfig.from_pretrained(str(model_dir))
    n_layers, n_heads = mcfg.num_hidden_layers, mcfg.num_attention_heads
    seed = config["seed"] if args.seed is None else args.seed
    rng = np.random.default_rng([seed, args.rate])
    summary: dict = {
        "rate": args.rate,
        "selection": args.sel,
        "lottery_size": len(task.train_texts),
        "valid_size": len(task.valid_texts),
        "train": task.train_cfg.to_dict(),
        "n_prune": n_pruned(n_layers * n_heads, task.rate),
        "device": device,
        "threads": args.threads,
    }
    scores, seconds = [], []
    for i in range(args.draws):
        mask = random_keep_mask(n_layers, n_heads, task.rate, rng)
        metrics = score_mask(task, mask)
        scores.append(metrics["f1"])
        seconds.append(metrics["seconds"])
        print(f"random mask {i + 1}/{args.draws}: F1 {metrics['f1']:.4f} ({metrics['seconds']:.1f} s)", file=sys.stderr)
    summary["random_f1"] = scores
    summary["random_mean"] = float(np.mean(scores)) if scores else None
    summary["random_std"] = float(np.std(scores, ddof=1)) if len(scores) > 1 else None
    summary["seconds_per_evaluation"] = float(np.mean(seconds)) if seconds else None
    if not args.no_ga:
        mask_path = results / "prune" / "ga" / args.sel / str(args.rate) / "mask.safetensors"
        head_keep, _ = load_masks(mask_path)
        start = time.perf_counter()
        summary["ga_f1"] = score_mask(task, head_keep)["f1"]
        summary["ga_seconds"] = time.perf_counter() - start
        summary["ga_mask"] = head_keep.astype(int).tolist()
        summary["ga_beats_random_mean"] = bool(summary["random_mean"] is not None and summary["ga_f1"] > summary["random_mean"])
        if summary["random_std"]:
            summary["ga_z"] = (summary["ga_f1"] - summary["random_mean"]) / summary["random_std"]
        prune_summary = mask_path.with_name("summary.json")
        if prune_summary.exists():  # the prune rule scored the same mask with the same recipe
            summary["prune_rule_valid_f1"] = io.read_json(prune_summary).get("valid", {}).get("f1")
    if args.out:
        io.write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
