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
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .metrics import classification_metrics
from .model.cost import count_params
from .model.heads import apply_weight_masks, as_masks, layers_of, prune_structure, save_pruned
from .model.sources import load_classifier, load_tokenizer
from .model.training import TrainConfig, attention_for_training, predict_logits, train

log = logging.getLogger(__name__)


def augmented_set(split: pd.DataFrame, extra: pd.DataFrame, labels: pd.DataFrame) -> tuple[list[str], list[int]]:
    """Texts and 0-shot labels of the train split and the extra text (true labels unused)."""
    train = split[split["split"] == "train"][["id", "text"]].assign(dataset="labelled")
    pool = pd.concat([train, extra[["id", "text"]].assign(dataset="extra")], ignore_index=True)
    merged = pool.merge(labels[["id", "dataset", "label"]], on=["id", "dataset"], how="left", validate="one_to_one")
    missing = merged["label"].isna()
    if missing.any():
        raise ValueError(
            f"compression labels lack {int(missing.sum())} texts (first: {merged.loc[missing, 'id'].iloc[0]!r})"
        )
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
    device: str,
    progress: bool = True,
    neuron_keep: np.ndarray | None = None,
) -> tuple[torch.nn.Module, dict, pd.DataFrame]:
    """Fine-tune one pruning result (heads, weights and, with ``neuron_keep``, feed-forward
    neurons); return the model, its metrics (test split, phase timings) and its test
    predictions (``id``, ``label``, ``pred``, ``p_positive``). The valid split is not
    evaluated: no table reads it (the searches use it), and it would cost each run a pass."""
    model = load_classifier(model_dir, seed=train_cfg.seed, attn_implementation=attention_for_training(device))
    prune_structure(model, head_keep, neuron_keep)
    apply_weight_masks(model, weight_masks)
    model.to(device)
    tokenizer = load_tokenizer(model_dir)
    result: dict = {"params": count_params(model), "layers": len(layers_of(model))}
    if augment is not None:
        texts, labels = augment
        result["augment"] = train(
            model, tokenizer, texts, labels, augment_cfg, weight_masks=weight_masks, progress=progress, desc="augmented"
        )
        result["augment"]["positive_rate"] = float(np.mean(labels))
    train_rows = split[split["split"] == "train"]
    result["train"] = train(
        model,
        tokenizer,
        train_rows["text"].tolist(),
        train_rows["label"].astype(int).tolist(),
        train_cfg,
        weight_masks=weight_masks,
        progress=progress,
        desc="true labels",
    )
    rows = split[split["split"] == "test"]
    start = time.perf_counter()
    logits = predict_logits(
        model, tokenizer, rows["text"].tolist(), max_length=train_cfg.max_length, dtype=train_cfg.dtype
    )
    seconds = time.perf_counter() - start
    labels = rows["label"].astype(int).to_numpy()
    pred = logits.argmax(1)
    result["test"] = {
        **classification_metrics(labels, pred),
        "positive_rate": float(pred.mean()),
        "inference_seconds": seconds,
    }
    p_positive = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)[:, 1].numpy()
    predictions = pd.DataFrame(
        {"id": rows["id"].astype(str).to_numpy(), "label": labels, "pred": pred.astype(int), "p_positive": p_positive}
    )
    result["train_seconds"] = result["train"]["seconds"] + result.get("augment", {}).get("seconds", 0.0)
    log.info("test %s", {k: v for k, v in result["test"].items()})
    return model, result, predictions


def run_cell(
    model_dir: str,
    split: pd.DataFrame,
    *,
    runs: list[tuple[int, int]],
    masks: dict[int, tuple] | None,
    augment: tuple[list[str], list[int]] | None,
    augment_section: dict,
    train_section: dict,
    max_length: int,
    dtype: str,
    device: str,
    save_dir: str | Path | None = None,
    tokenizer=None,
    progress: bool = True,
) -> tuple[list[dict], pd.DataFrame]:
    """Every run of one cell: (search seed, fine-tuning seed) pairs, the mask of each search
    seed (None: the unpruned reference), as (heads, weights[, neurons]) or
    :class:`lotteryprune.model.heads.Masks`. Returns the runs' metrics and their test
    predictions (one frame, with ``search_seed`` and ``finetune_seed`` columns). With
    ``save_dir``, each model is ``save_pretrained`` to ``<save_dir>/seed<search>-<finetune>``."""
    records, frames = [], []
    for search_seed, finetune_seed in runs:
        head_keep, weight_masks, neuron_keep = (None, None, None) if masks is None else as_masks(masks[search_seed])
        augment_cfg = TrainConfig.from_section(
            augment_section, name="finetune.augment", max_length=max_length, seed=finetune_seed, dtype=dtype
        )
        train_cfg = TrainConfig.from_section(
            train_section, name="finetune.train", max_length=max_length, seed=finetune_seed, dtype=dtype
        )
        model, metrics, predictions = run(
            model_dir,
            split,
            head_keep=head_keep,
            weight_masks=weight_masks,
            augment=augment,
            augment_cfg=augment_cfg,
            train_cfg=train_cfg,
            device=device,
            progress=progress,
            neuron_keep=neuron_keep,
        )
        if save_dir is not None:
            save_pruned(model, tokenizer, Path(save_dir) / f"seed{search_seed}-{finetune_seed}")
        records.append(
            {
                "search_seed": search_seed,
                "finetune_seed": finetune_seed,
                **metrics,
                "config": {"augment": augment_cfg.to_dict(), "train": train_cfg.to_dict()},
            }
        )
        frames.append(predictions.assign(search_seed=search_seed, finetune_seed=finetune_seed))
    preds = pd.concat(frames, ignore_index=True)[["search_seed", "finetune_seed", "id", "label", "pred", "p_positive"]]
    return records, preds


__all__ = ["augmented_set", "run", "run_cell"]
