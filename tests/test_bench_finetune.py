"""The benchmark compares pruned and unpruned in one process; fine-tuning runs both phases."""

import numpy as np
import pandas as pd

from lotteryprune import bench, finetune
from conftest import train_cfg
from lotteryprune.model.heads import layers_of


def test_bench_reports_speedups_and_sizes(tiny_model_dir):
    keep = np.ones((3, 4), bool)
    keep[1] = False
    keep[0, :3] = False
    r = bench.compare(tiny_model_dir, keep, batch_size=2, seq_len=8, warmup=1, repeats=3)
    assert r["layers_kept"] == 2 and r["heads_kept"] == 5 and r["heads_per_layer"] == [1, 0, 4]
    assert len(r["pruned_ms"]) == len(r["unpruned_ms"]) == 3
    # the ratios are what the timings and the FLOP counts say, not just "above zero"
    assert r["measured_speedup"] == np.median(r["unpruned_ms"]) / np.median(r["pruned_ms"])
    assert r["flop_speedup"] == r["unpruned"]["flops"] / r["pruned"]["flops"]
    # tiny:3x4 (hidden 32, 4 heads of 8, FFN 64) at seq 8: 8 heads x (8*8*32*8 + 4*8*8*8) / 2
    # per kept head and two full FFNs; the pruned model keeps 5 heads and 2 FFNs of 3
    h, d, ffn, s = 32, 8, 64, 8
    head = 8 * s * h * d + 4 * s * s * d
    layer_ffn = 4 * s * h * ffn
    top = 2 * h * h + 2 * h * 2
    assert r["unpruned"]["flops"] == 12 * head + 3 * layer_ffn + top
    assert r["pruned"]["flops"] == 5 * head + 2 * layer_ffn + top
    assert r["pruned"]["params"] < r["unpruned"]["params"] and not r["dense"]


def _split():
    texts = ["good fun", "bad news", "love it", "hate it", "so happy", "very sad"] * 4
    labels = [1, 0, 1, 0, 1, 0] * 4
    parts = (["train"] * 4 + ["valid", "test"]) * 4
    return pd.DataFrame({"id": [f"t{i}" for i in range(24)], "text": texts, "label": labels, "source": "s", "split": parts})


def test_augmented_set_uses_compressed_labels_not_true_ones():
    split = _split()
    extra = pd.DataFrame({"id": ["e1", "e2"], "text": ["meh", "wow"], "label": [None, None], "source": "x"})
    train_ids = split.loc[split["split"] == "train", "id"]
    labels = pd.concat([
        pd.DataFrame({"id": train_ids, "dataset": "labelled", "label": 1 - split.loc[split["split"] == "train", "label"]}),
        pd.DataFrame({"id": ["e1", "e2"], "dataset": "extra", "label": [0, 1]}),
    ])
    texts, y = finetune.augmented_set(split, extra, labels)
    assert len(texts) == len(train_ids) + 2
    assert y[: len(train_ids)] == (1 - split.loc[split["split"] == "train", "label"]).tolist()
    try:
        finetune.augmented_set(split, extra, labels.iloc[:-1])
    except ValueError as err:
        assert "e2" in str(err)
    else:
        raise AssertionError("missing labels must be an error")


def test_finetune_two_phases_on_pruned_model(tiny_model_dir):
    split = _split()
    keep = np.ones((3, 4), bool)
    keep[2] = False
    cfg = train_cfg(epochs=1, lr=1e-3, batch_size=4, max_length=16)
    texts = split.loc[split["split"] == "train", "text"].tolist()
    model, metrics, predictions = finetune.run(
        tiny_model_dir, split, head_keep=keep, weight_masks=None,
        augment=(texts, [1] * len(texts)), augment_cfg=cfg, train_cfg=cfg, device="cpu", progress=False,
    )
    assert metrics["layers"] == 2 and metrics["augment"]["samples"] == 16 and metrics["train"]["samples"] == 16
    assert len(layers_of(model)) == 2
    test = split[split["split"] == "test"]
    # the predictions file holds what the metrics were computed from, test row by test row
    assert predictions["id"].tolist() == test["id"].astype(str).tolist()
    assert predictions["label"].tolist() == test["label"].tolist()
    hits = (predictions["pred"] == predictions["label"]).mean()
    assert metrics["test"]["accuracy"] == hits and metrics["test"]["n"] == 4
    assert metrics["test"]["positive_rate"] == predictions["pred"].mean()
    assert ((predictions["p_positive"] > 0.5) == (predictions["pred"] == 1)).all()


def _tuned_in_subprocess(env_value):
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("LOTTERYPRUNE_MALLOC", None)
    if env_value is not None:
        env["LOTTERYPRUNE_MALLOC"] = env_value
    code = "from lotteryprune import runtime; print(runtime.keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_allocator_tuning_applies_on_glibc_and_can_be_turned_off():
    import platform

    if platform.libc_ver()[0] != "glibc":
        import pytest

        pytest.skip("mallopt is glibc's")
    assert _tuned_in_subprocess(None) == "True"
    assert _tuned_in_subprocess("default") == "False"
