"""What config/paper.yaml costs, stage by stage, from measured per-unit rates.

    .venv/bin/python benchmarks/paper_cost.py [--measure] [--gpu-tflops 400]

Counts the work each stage of the paper config does (texts x hypotheses for the 0-shot
stage; GA evaluations x samples; fine-tuning samples; over every prune rate, method and
seed the config asks for) and prices it three ways:

* FLOPs, from the analytic forward FLOPs of bert-base at the measured mean token length
  (:func:`lotteryprune.model.cost.forward_flops`; a training sample costs 3 forward passes,
  a pruned model its own FLOPs);
* CPU days on this machine, from rates measured here on a bert-base-shaped model
  (``--measure`` times NSP scoring and training for a few seconds each; without it, the
  rates of the last measurement below are used);
* GPU hours, at an assumed sustained bf16 throughput (``--gpu-tflops``, default 400 TFLOP/s,
  about 40% of an H100's dense peak; no GPU was available to measure).

Prints a Markdown table for README.md.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import torch

from lotteryprune.config import load_config

ROOT = Path(__file__).resolve().parents[1]

# Measured here (2-core Xeon with AMX, torch 2.13, bf16 autocast), bert-base-shaped random
# model: benchmarks/zeroshot_bench.py (NSP pairs/s, batch 128) and --measure (training).
MEASURED = {"nsp_pairs_per_s": 271.7, "train_samples_per_s": None}

SENTIMENT140 = 1_600_000
CIVIL_COMMENTS = 1_804_874  # train split of civil_comments v1.2 (the hub's train split)
TWEET_TOKENS = 20.6  # mean tokens of a tweet with [CLS]/[SEP] (the default data's train split, MiniLM's tokenizer)
HYPOTHESIS_TOKENS = 7  # "This example is <label>. [SEP]"


def bert_base_flops(seq_len: float, keep_heads: float = 1.0) -> float:
    """Forward FLOPs of bert-base (12 x 12 heads) for one sequence, a share of heads kept."""
    from transformers import BertConfig, BertForSequenceClassification

    from lotteryprune.model.cost import forward_flops

    with torch.device("meta"):
        model = BertForSequenceClassification(BertConfig(num_labels=2))
    full = forward_flops(model, int(round(seq_len)))
    if keep_heads >= 1:
        return full
    cfg = model.config
    h, L, H = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads
    d, s = h // H, int(round(seq_len))
    heads = L * H * d * (8 * s * h + 4 * s * s)  # Q, K, V, output projection and attention of every head
    return full - (1 - keep_heads) * heads  # emptied layers (which also lose their FFN) ignored: an upper bound


def measure_training(seconds: float = 20.0) -> float:
    """Training samples/s of a bert-base-shaped model (bf16 autocast where native) on tweet-length inputs."""
    from transformers import BertConfig, BertForSequenceClassification

    from lotteryprune.model.device import inference_dtype

    model = BertForSequenceClassification(BertConfig(num_labels=2, attn_implementation="eager")).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    dtype = inference_dtype("auto", "cpu")
    batch = 32
    ids = torch.randint(1000, 30000, (batch, int(TWEET_TOKENS)))
    labels = torch.randint(0, 2, (batch,))
    done, start = 0, None
    for step in range(1000):
        if step == 2:
            start, done = time.perf_counter(), 0
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits.float(), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += batch
        if start is not None and time.perf_counter() - start > seconds:
            break
    return done / (time.perf_counter() - start)


def work(config: dict) -> list[dict]:
    """(stage, units, FLOPs) of everything the config runs."""
    n_train = SENTIMENT140 * config["data"]["split"]["train"]
    n_valid = SENTIMENT140 * config["data"]["split"]["valid"]
    n_test = SENTIMENT140 * config["data"]["split"]["test"]
    prune, finetune = config["prune"], config["finetune"]
    rates = prune["rates"]
    seeds = len(prune["seeds"])
    methods = prune["methods"]
    selections = [f"{s}-{r:g}" for s in config["select"]["selectors"] for r in config["select"]["rates"]]
    lottery = {sel: n_train * float(sel.split("-")[1]) / 100 for sel in selections}
    default_lottery = lottery[config["select"]["default"]]
    valid_fit = n_valid if prune["fitness_valid_size"] is None else prune["fitness_valid_size"]
    tweet = bert_base_flops(TWEET_TOKENS)
    pair = bert_base_flops(TWEET_TOKENS + HYPOTHESIS_TOKENS)
    rows = []

    pairs = (SENTIMENT140 + CIVIL_COMMENTS) * 42
    rows.append(
        {
            "stage": "zeroshot (NSP)",
            "units": f"{pairs / 1e6:.0f}M text-hypothesis pairs",
            "flops": pairs * pair,
            "pairs": pairs,
        }
    )

    ga = prune["ga"]
    evals = ga["population"] * ga["generations"]  # an upper bound: the plateau stops earlier
    epochs = prune["train"]["epochs"]

    def search_flops(lottery_size: float, rate: int) -> float:
        keep = 1 - rate / 100
        per_eval = lottery_size * epochs * 3 * bert_base_flops(TWEET_TOKENS, keep) + valid_fit * bert_base_flops(
            TWEET_TOKENS, keep
        )
        return evals * per_eval

    ga_cells = [(config["select"]["default"], r) for r in rates]
    ga_cells += [(sel, config["report"]["reference_rate"]) for sel in selections if sel != config["select"]["default"]]
    ga_flops = seeds * sum(search_flops(lottery[sel], r) for sel, r in ga_cells)
    rows.append(
        {
            "stage": f"GA search ({len(ga_cells)} cells x {seeds} seeds, <= {evals} evaluations each)",
            "units": f"{len(ga_cells) * seeds * evals / 1e3:.0f}k evaluations at most",
            "flops": ga_flops,
            "train_samples": ga_flops / (3 * tweet),
        }
    )

    others = [m for m in methods if m != "ga"]
    draws = prune["random"]["draws"]
    other_flops = 0.0
    for m in others:
        n = draws if m == "random" else seeds
        for r in rates:
            keep = 1 - r / 100
            # one pass of the shared short training + scoring; the search itself is at most one more training pass
            score = default_lottery * epochs * 3 * bert_base_flops(TWEET_TOKENS, keep) + valid_fit * bert_base_flops(
                TWEET_TOKENS, keep
            )
            search = 0 if m == "random" else default_lottery * epochs * 3 * tweet
            other_flops += n * (score + search)
    rows.append(
        {
            "stage": f"other methods ({len(others)} x {len(rates)} rates x seeds)",
            "units": "one search + scoring each",
            "flops": other_flops,
            "train_samples": other_flops / (3 * tweet),
        }
    )

    aug_samples = n_train + CIVIL_COMMENTS
    cells = []
    for m in methods:
        for aug in finetune["augmentations"] if m in finetune["methods"] else ["none"]:
            cells += [(m, r, aug) for r in rates]
    cells += [("ga", config["report"]["reference_rate"], a) for a in ["none"] + list(config["compress"]["methods"])]
    cells += [("ga-sel", config["report"]["reference_rate"], "none") for _ in selections[1:]]
    cells = list(dict.fromkeys(cells)) + [("unpruned", 0, a) for a in finetune["augmentations"]]
    ft_flops = 0.0
    runs = 0
    for m, r, aug in cells:
        n = draws if m == "random" else len(finetune["seeds"])
        runs += n
        keep = 1 - r / 100 if m not in ("magnitude", "seven") else 1.0
        per_sample = bert_base_flops(TWEET_TOKENS, keep)
        samples = finetune["train"]["epochs"] * n_train + (
            finetune["augment"]["epochs"] * aug_samples if aug != "none" else 0
        )
        ft_flops += n * (3 * samples + n_valid + n_test) * per_sample
    rows.append(
        {
            "stage": f"final fine-tuning ({len(cells)} cells, {runs} runs)",
            "units": f"{runs} runs",
            "flops": ft_flops,
            "train_samples": ft_flops / (3 * tweet),
        }
    )
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml"), str(ROOT / "config/paper.yaml")])
    ap.add_argument("--gpu-tflops", type=float, default=400.0)
    ap.add_argument("--measure", action="store_true", help="time bert-base-shaped training here (20 s)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rates = dict(MEASURED)
    if args.measure:
        rates["train_samples_per_s"] = measure_training()
    config = load_config(*args.config)
    rows = work(config)
    tweet = bert_base_flops(TWEET_TOKENS)
    train_rate = rates["train_samples_per_s"]  # None: not measured (--measure), no CPU column for training
    cpu_flops_train = None if train_rate is None else train_rate * 3 * tweet  # effective FLOP/s of training here
    cpu_flops_nsp = rates["nsp_pairs_per_s"] * bert_base_flops(TWEET_TOKENS + HYPOTHESIS_TOKENS)
    print(
        f"measured here: NSP {rates['nsp_pairs_per_s']:.0f} pairs/s, training "
        + ("not measured (--measure)" if train_rate is None else f"{train_rate:.1f} samples/s")
        + f" (bert-base shape, {args.threads} threads); GPU at {args.gpu_tflops:.0f} TFLOP/s sustained (assumed)\n"
    )
    print("| stage (paper config) | work | PFLOP | here, 2 CPU cores (days) | GPU-hours (assumed rate) |")
    print("| --- | --- | --- | --- | --- |")
    total = 0.0
    for row in rows:
        rate = cpu_flops_nsp if "pairs" in row else cpu_flops_train
        cpu = "-" if rate is None else f"{row['flops'] / rate / 86400:,.0f}"
        gpu = row["flops"] / (args.gpu_tflops * 1e12) / 3600
        total += gpu
        print(f"| {row['stage']} | {row['units']} | {row['flops'] / 1e15:,.0f} | {cpu} | {gpu:,.1f} |")
    print(f"| total | | | | {total:,.0f} |")
    jobs = re.search(r"^jobs:\s*(\d+)", (ROOT / "profiles/slurm/config.yaml").read_text(), re.MULTILINE)
    print(
        f"\nprofiles/slurm submits at most {jobs.group(1) if jobs else '?'} jobs at once; each model job asks for its GPU(s)."
    )
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
