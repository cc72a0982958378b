"""Where the default run's time goes, and what the speed work buys, as ratios measured in one run.

    .venv/bin/python benchmarks/speed.py                  # all three parts (about 6 minutes on 2 cores)
    .venv/bin/python benchmarks/speed.py --part train     # one part: train | ga | workers | inference
    .venv/bin/python benchmarks/speed.py --part quality   # fp32 vs auto macro-F1 on the default data (3 seeds, ~5 min)

Parts:

* ``train``: training samples/s of the default model on real tweets (the train split, length-
  grouped batches of 32, one thread, as a fine-tuning job runs): the previous recipe (fp32,
  fused-attention kernel, per-tensor AdamW) against fp32 and bf16 autocast with eager
  attention and fused AdamW.
* ``ga``: GA individuals per minute on the default lottery sample (population 6, 3
  generations, 70% of heads), before (every individual loaded with ``from_pretrained`` and
  trained, fp32) and after (the pretrained model copied from memory, identical individuals
  never trained twice, ``dtype: auto``).
* ``workers``: seconds per search of the GA's parallel worker pool (start, one generation,
  shut down), a cell's searches in a row: spawned workers against workers forked from a
  fork server that imported torch, transformers and the scoring code once.
* ``inference``: tokens/s of physically pruned models (random masks at 50/70/90% of heads)
  against the unpruned one, fp32 and bf16, interleaved in one process.
* ``quality``: test macro-F1 of the unpruned model fine-tuned with the default recipe in fp32
  and in ``dtype: auto``, over 3 seeds (the claim "same macro-F1" rests on this).

Needs results/data/split.parquet, results/select/random-5/ids.json and results/model/pretrained
(``snakemake --cores 2 results/select/random-5/ids.json``). Every figure is printed with the
ratio to its baseline measured in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

from lotteryprune import bench, finetune, io, runtime
from lotteryprune.config import load_config
from lotteryprune.model import sources, training
from lotteryprune.model.heads import n_pruned, random_keep_mask
from lotteryprune.model.training import TrainConfig, train
from lotteryprune.prune import ga
from lotteryprune.prune.score import score_mask
from lotteryprune.prune.task import build_task


def every_embedding_row():
    """Training with the whole word-embedding matrix in the optimiser (before the row training)."""
    return mock.patch.object(training, "_row_subset", lambda *a, **k: None)


@contextlib.contextmanager
def previous_recipe():
    """The training recipe before this change: sdpa attention, per-tensor AdamW, fp32, and a
    fresh from_pretrained for every model (no in-process copy)."""
    orig_adamw, orig_attn, orig_template = torch.optim.AdamW, finetune.attention_for_training, sources._template

    def adamw(*args, **kwargs):
        kwargs["fused"] = False
        return orig_adamw(*args, **kwargs)

    def fresh_template(*args, **kwargs):
        sources._TEMPLATES.clear()
        return orig_template(*args, **kwargs)

    torch.optim.AdamW = adamw
    import lotteryprune.prune.score as score

    saved = training.attention_for_training, score.attention_for_training
    training.attention_for_training = score.attention_for_training = finetune.attention_for_training = lambda device: (
        "sdpa"
    )
    sources._template = fresh_template
    try:
        with every_embedding_row():
            yield
    finally:
        torch.optim.AdamW = orig_adamw
        training.attention_for_training, score.attention_for_training = saved
        finetune.attention_for_training = orig_attn
        sources._template = orig_template


def part_train(results: Path, config: dict, samples: int) -> dict:
    split = pd.read_parquet(results / "data" / "split.parquet")
    rows = split[split["split"] == "train"].iloc[:samples]
    texts, labels = rows["text"].tolist(), rows["label"].astype(int).tolist()
    model_dir = results / "model" / "pretrained"
    out = {}
    section = dict(config["finetune"]["train"])
    for name, dtype, recipe in (
        ("previous (fp32, sdpa, per-tensor AdamW)", "float32", previous_recipe),
        ("fp32, eager attention, fused AdamW", "float32", contextlib.nullcontext),
        ("bf16 autocast, eager, fused, all rows", "bfloat16", every_embedding_row),
        ("bf16 autocast, eager, fused", "bfloat16", contextlib.nullcontext),
    ):
        cfg = TrainConfig.from_section(section, max_length=config["model"]["max_length"], seed=0, dtype=dtype)
        with recipe():
            attn = "sdpa" if recipe is previous_recipe else "eager"
            model = sources.load_classifier(model_dir, seed=0, attn_implementation=attn)
            stats = train(model, sources.load_tokenizer(model_dir), texts, labels, cfg, progress=False)
        out[name] = stats["samples_per_s"]
    base = out["previous (fp32, sdpa, per-tensor AdamW)"]
    print(f"\ntraining, {samples} real tweets, batch {section['batch_size']}, {torch.get_num_threads()} thread(s)")
    for name, sps in out.items():
        print(f"  {name:<42} {sps:7.1f} samples/s  {sps / base:5.2f}x")
    fp32 = out["fp32, eager attention, fused AdamW"]
    print(f"  bf16 / fp32 (same recipe): {out['bf16 autocast, eager, fused'] / fp32:.2f}x")
    rows = out["bf16 autocast, eager, fused"] / out["bf16 autocast, eager, fused, all rows"]
    print(f"  used word-embedding rows only / all rows in the optimiser (same weights): {rows:.2f}x")
    return out


def ga_task(results: Path, config: dict, params: dict, dtype: str, threads: int = 1):
    """The prune rule's task for the GA at 70% on the default lottery sample, search seed 0."""
    split = pd.read_parquet(results / "data" / "split.parquet")
    sample = io.read_json(results / "select" / config["select"]["default"] / "ids.json")["ids"]
    return build_task(
        split,
        sample,
        model_dir=results / "model" / "pretrained",
        rate=70,
        seed=0,
        params=params,
        train=config["prune"]["train"],
        valid_size=config["prune"]["fitness_valid_size"],
        metric=config["metric"],
        max_length=config["model"]["max_length"],
        dtype=dtype,
        threads=threads,
        progress=False,
    )


def part_ga(results: Path, config: dict, generations: int, population: int) -> dict:
    params = {**config["prune"]["ga"], "population": population, "generations": generations, "patience": generations}
    out = {}
    for name, previous, dtype in (
        ("before: from_pretrained per individual, no fitness cache, fp32", True, "float32"),
        ("after: in-memory copy, fitness cache, dtype auto", False, "auto"),
    ):
        task = ga_task(results, config, params, dtype)
        sources._TEMPLATES.clear()
        calls = []

        def fitness(mask, task=task, calls=calls):
            calls.append(1)
            return float(score_mask(task, mask)[task.metric])

        start = time.perf_counter()
        with previous_recipe() if previous else contextlib.nullcontext():
            result = ga.search(
                6, 12, n_pruned(72, 70), fitness, ga.GAParams.from_section(params), 0, reuse_fitness=not previous
            )
        seconds = time.perf_counter() - start
        individuals = population * result.generations_run
        out[name] = {
            "individuals_per_min": 60 * individuals / seconds,
            "trained": len(calls),
            "individuals": individuals,
            "seconds": seconds,
            "best": result.best_fitness,
        }
    base = next(iter(out.values()))["individuals_per_min"]
    print(
        f"\nGA at 70%, population {population}, {generations} generations, lottery sample {len(task.train_texts)}, 1 thread"
    )
    for name, r in out.items():
        print(
            f"  {name:<62} {r['individuals_per_min']:6.1f} individuals/min ({r['trained']} of {r['individuals']} trained)"
            f"  {r['individuals_per_min'] / base:5.2f}x"
        )
    return out


def part_workers(results: Path, config: dict, workers: int, searches: int) -> dict:
    """Seconds per search of the GA's worker pool (start ``workers`` processes, score one
    generation of ``workers`` masks, shut down), ``searches`` times in a row as the seeds of
    a cell run: spawned workers against workers forked from the preloaded fork server."""
    import multiprocessing as mp

    task = ga_task(results, config, config["prune"]["ga"], config["dtype"], threads=workers)
    rng = np.random.default_rng(0)
    masks = [random_keep_mask(6, 12, 70, rng) for _ in range(workers)]
    out = {}
    for name, context in (
        ("spawn (before)", lambda score, device: mp.get_context("spawn")),
        ("fork server (after)", ga.worker_context),
    ):
        seconds = []
        with mock.patch.object(ga, "worker_context", context):
            for _ in range(searches):
                start = time.perf_counter()
                with ga.worker_pool(task, workers, ga._worker_score) as (evaluate_many, _):
                    scores = evaluate_many(masks)
                seconds.append(time.perf_counter() - start)
        out[name] = {"seconds": seconds, "scores": scores}
    base = next(iter(out.values()))["seconds"]
    print(f"\nGA worker pool: {workers} workers, one generation of {workers} masks per search, {searches} searches")
    for name, r in out.items():
        first, rest = r["seconds"][0], r["seconds"][1:]
        later = f"later {np.mean(rest):5.1f} s ({np.mean(base[1:]) / np.mean(rest):4.2f}x)" if rest else ""
        print(f"  {name:<22} first {first:5.1f} s ({base[0] / first:4.2f}x)  {later}")
    a, b = (r["scores"] for r in out.values())
    print(f"  same scores: {a == b}")
    return out


def part_inference(results: Path, config: dict, repeats: int) -> dict:
    model_dir = results / "model" / "pretrained"
    b = config["bench"]
    rng = np.random.default_rng(0)
    masks = {rate: (random_keep_mask(6, 12, rate, rng), None) for rate in (50, 70, 90)}
    out = {}
    for dtype in ("float32", "bfloat16"):
        timed = bench.compare_masks(
            str(model_dir),
            masks,
            batch_size=b["batch_size"],
            seq_len=b["seq_len"],
            warmup=2,
            repeats=repeats,
            dtype=dtype,
            seed=0,
            device="cpu",
        )
        out[dtype] = timed
    tokens = b["batch_size"] * b["seq_len"]
    base = np.median([np.median(r["unpruned_ms"]) for r in out["float32"].values()])
    print(
        f"\ninference, batch {b['batch_size']} x {b['seq_len']} tokens, {torch.get_num_threads()} thread(s), median of {repeats}"
    )
    print(
        f"  {'model':<18} {'fp32 tokens/s':>14} {'bf16 tokens/s':>14} {'fp32 speed-up':>14} {'FLOP speed-up':>14} {'realised':>9}"
    )
    print(
        f"  {'unpruned':<18} {tokens / base * 1e3:14.0f} "
        f"{tokens / np.median([np.median(r['unpruned_ms']) for r in out['bfloat16'].values()]) * 1e3:14.0f}"
    )
    for rate in masks:
        f, h = out["float32"][rate], out["bfloat16"][rate]
        print(
            f"  {f'{rate}% heads pruned':<18} {tokens / np.median(f['pruned_ms']) * 1e3:14.0f} "
            f"{tokens / np.median(h['pruned_ms']) * 1e3:14.0f} {f['measured_speedup']:13.3f}x {f['flop_speedup']:13.3f}x "
            f"{f['realised']:9.2f}"
        )
    return {
        d: {r: {k: v for k, v in rec.items() if not k.endswith("_ms")} for r, rec in t.items()} for d, t in out.items()
    }


def part_quality(results: Path, config: dict, seeds: int) -> dict:
    split = pd.read_parquet(results / "data" / "split.parquet")
    out = {}
    for dtype in ("float32", "auto"):
        records, _ = finetune.run_cell(
            str(results / "model" / "pretrained"),
            split,
            runs=[(-1, s) for s in range(seeds)],
            masks=None,
            augment=None,
            augment_section=config["finetune"]["augment"],
            train_section=config["finetune"]["train"],
            max_length=config["model"]["max_length"],
            dtype=dtype,
            device="cpu",
            progress=False,
        )
        out[dtype] = {
            "macro_f1": [r["test"]["macro_f1"] for r in records],
            "seconds": [r["train_seconds"] for r in records],
        }
    print(f"\nunpruned model, default fine-tuning recipe, test macro-F1 over {seeds} seeds")
    for dtype, r in out.items():
        print(
            f"  {dtype:<8} macro-F1 {np.mean(r['macro_f1']):.4f} (per seed {', '.join(f'{x:.4f}' for x in r['macro_f1'])}),"
            f" training {np.mean(r['seconds']):.1f} s per run"
        )
    diff = np.mean(out["auto"]["macro_f1"]) - np.mean(out["float32"]["macro_f1"])
    print(
        f"  auto - fp32: {diff * 100:+.2f} points; training time ratio "
        f"{np.mean(out['float32']['seconds']) / np.mean(out['auto']['seconds']):.2f}x"
    )
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["train", "ga", "workers", "inference", "quality", "all"], default="all")
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", nargs="+", default=["config/config.yaml"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a pipeline job has 1)")
    ap.add_argument("--samples", type=int, default=1024, help="train: tweets to train on")
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--population", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="workers: GA worker processes")
    ap.add_argument("--searches", type=int, default=3, help="workers: searches in a row (a cell's seeds)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    runtime.keep_freed_memory()  # as every workflow job does
    torch.set_num_threads(args.threads)
    results, config = Path(args.results), load_config(*args.config)
    out = {}
    parts = ["train", "ga", "inference"] if args.part == "all" else [args.part]
    for part in parts:
        if part == "train":
            out["train"] = part_train(results, config, args.samples)
        elif part == "ga":
            out["ga"] = part_ga(results, config, args.generations, args.population)
        elif part == "workers":
            out["workers"] = part_workers(results, config, args.workers, args.searches)
        elif part == "inference":
            torch.set_num_threads(max(args.threads, 2))  # the bench rule has the whole machine
            out["inference"] = part_inference(results, config, args.repeats)
            torch.set_num_threads(args.threads)
        elif part == "quality":
            out["quality"] = part_quality(results, config, args.seeds)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
