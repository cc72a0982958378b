"""The paper's final step for a pruning result: augmented training, then the true labels.

Phase 1 (skipped for augmentation ``none``): train the pruned pretrained model on all
augmented data, i.e. the labelled train split plus the extra text, every text labelled by
one compression method's 0-shot label (no true label is used). Phase 2: fine-tune on the
true labels of the train split. The test split is evaluated once, at the end. The unpruned
model through the same recipe is the reference that "lossless" is measured against.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from .model.training import TrainConfig, evaluate, predict_logits, train
from .model.cost import count_params
from .model.heads import apply_weight_masks, layers_of, prune_heads
from .model.sources import load_classifier, load_tokenizer

log = logging.getLogger(__name__)


def augmented_set(split: pd.DataFrame, extra: pd.DataFrame, labels: pd.DataFrame) -> tuple[list[str], list[int]]:
    """Texts and 0-shot labels of the train split and the extra text (true labels unused)."""
    train = split[split["split"] == "train"][["id", "text"]].assign(dataset="labelled")
    pool = pd.concat([train, extra[["id", "text"]].assign(dataset="extra")], ignore_index=True)
    merged = pool.merge(labels[["id", "dataset", "label"]], on=["id", "dataset"], how="left", validate="one_to_one")
    missing = merged["label"].isna()
    if missing.any():
        raise ValueError(f"compression labels lack {int(missing.sum())} texts (first: {merged.loc[missing, 'id'].iloc[0]!r})")
    return merged["text"].tolist(), merged["label"].astype(int).tolist()


def run(
    model_dir: str,
    split: pd.DataFrame,
    *,
    head_keep: np.ndarray | None,
    weight_masks: dict | None,
    augment: tuple[list[str], list[int]] | None,
    augment_cfg: TrainConfig,
    train_cfg: TrainConfig,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """Return the fine-tuned model and its metrics (valid and test), with phase timings."""
    model = load_classifier(model_dir, seed=train_cfg.seed)
    if head_keep is not None and not np.asarray(head_keep).all():
        prune_heads(model, head_keep)
    apply_weight_masks(model, weight_masks)
    model.to(device)
    tokenizer = load_tokenizer(model_dir)
    result: dict = {"params": count_params(model), "layers": len(layers_of(model))}
    if augment is not None:
        texts, labels = augment
        result["augment"] = train(model, tokenizer, texts, labels, augment_cfg, weight_masks=weight_masks, progress=progress, desc="augmented")
        result["augment"]["positive_rate"] = float(np.mean(labels))
    train_rows = split[split["split"] == "train"]
    result["train"] = train(
        model, tokenizer, train_rows["text"].tolist(), train_rows["label"].astype(int).tolist(), train_cfg,
        weight_masks=weight_masks, progress=progress, desc="true labels",
    )
    for part in ("valid", "test"):
        rows = split[split["split"] == part]
        start = time.perf_counter()
        result[part] = evaluate(model, tokenizer, rows["text"].tolist(), rows["label"].astype(int).tolist(), max_length=train_cfg.max_length)
        result[part]["inference_seconds"] = time.perf_counter() - start
    result["train_seconds"] = result["train"]["seconds"] + result.get("augment", {}).get("seconds", 0.0)
    log.info("test %s", result["test"])
    return model, result


__all__ = ["augmented_set", "run", "predict_logits"]
