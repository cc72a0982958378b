"""The benchmark compares pruned and unpruned in one process; fine-tuning runs both phases."""

import numpy as np
import pandas as pd

from lotteryprune import bench, finetune
from lotteryprune.model.training import TrainConfig
from lotteryprune.model.heads import layers_of


def test_bench_reports_speedups_and_sizes(tiny_model_dir):
    keep = np.ones((3, 4), bool)
    keep[1] = False
    keep[0, :3] = False
    r = bench.compare(tiny_model_dir, keep, batch_size=2, seq_len=8, warmup=1, repeats=3)
    assert r["layers_kept"] == 2 and r["heads_kept"] == 5
    assert r["pruned"]["params"] < r["unpruned"]["params"]
    assert r["flop_speedup"] > 1 and r["measured_speedup"] > 0
    assert len(r["latency_ms_pruned_all"]) == 3


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
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=4, max_length=16)
    texts = split.loc[split["split"] == "train", "text"].tolist()
    model, metrics = finetune.run(
        tiny_model_dir, split, head_keep=keep, weight_masks=None,
        augment=(texts, [1] * len(texts)), augment_cfg=cfg, train_cfg=cfg, progress=False,
    )
    assert metrics["layers"] == 2 and metrics["augment"]["samples"] == 16 and metrics["train"]["samples"] == 16
    assert 0 <= metrics["test"]["f1"] <= 1 and metrics["test"]["n"] == 4
    assert len(layers_of(model)) == 2


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
