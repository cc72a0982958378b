"""Final fine-tuning: augmented labels, then true labels, on the pruned model."""

import numpy as np
import pandas as pd

from conftest import train_cfg
from lotteryprune import finetune
from lotteryprune.model.heads import layers_of


def _split():
    texts = ["good fun", "bad news", "love it", "hate it", "so happy", "very sad"] * 4
    labels = [1, 0, 1, 0, 1, 0] * 4
    parts = (["train"] * 4 + ["valid", "test"]) * 4
    return pd.DataFrame(
        {"id": [f"t{i}" for i in range(24)], "text": texts, "label": labels, "source": "s", "split": parts}
    )


def test_augmented_set_uses_compressed_labels_not_true_ones():
    split = _split()
    extra = pd.DataFrame({"id": ["e1", "e2"], "text": ["meh", "wow"], "label": [None, None], "source": "x"})
    train_ids = split.loc[split["split"] == "train", "id"]
    labels = pd.concat(
        [
            pd.DataFrame(
                {"id": train_ids, "dataset": "labelled", "label": 1 - split.loc[split["split"] == "train", "label"]}
            ),
            pd.DataFrame({"id": ["e1", "e2"], "dataset": "extra", "label": [0, 1]}),
        ]
    )
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
        tiny_model_dir,
        split,
        head_keep=keep,
        weight_masks=None,
        augment=(texts, [1] * len(texts)),
        augment_cfg=cfg,
        train_cfg=cfg,
        device="cpu",
        progress=False,
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
