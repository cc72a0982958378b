"""The compress stage: fit one method on the train split's scores, label every text, and
Table 2.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..metrics import classification_metrics
from ..zeroshot.emotions import Emotions
from .base import Fitted
from .codes import CODE_THRESHOLDS, fit_ae, fit_pca, fit_vae
from .lda import fit_lda
from .simple import fit_direct, fit_softmax, fit_unhappy

METHODS = ("direct", "unhappy", "softmax", "ae", "vae", "pca", "lda")


FITTERS = {
    "direct": fit_direct,
    "unhappy": fit_unhappy,
    "softmax": fit_softmax,
    "pca": fit_pca,
    "ae": fit_ae,
    "vae": fit_vae,
    "lda": fit_lda,
}

CODE_METHODS = ("pca", "ae", "vae")  # 1-D codes: their 0.5 boundary comes from compress.code_threshold


def label_free(frame: pd.DataFrame, emotions: Emotions) -> pd.DataFrame:
    """What a fitter may see: id, text and the scores (never a label)."""
    keep = ["id"] + (["text"] if "text" in frame.columns else []) + emotions.columns
    missing = [c for c in keep if c not in frame.columns]
    if missing:
        raise KeyError(f"score frame lacks columns {missing[:5]}")
    return frame[keep].reset_index(drop=True)


def fit(
    method: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    emotions: Emotions,
    params: dict | None = None,
    *,
    seed: int = 0,
    boundary: float = 0.5,
    code_threshold: str = "anchor",
) -> Fitted:
    """Fit one method on label-free train/valid score frames.

    ``boundary``: an emotion is present above it (lda); ``code_threshold``: how pca/ae/vae
    place the 0.5 boundary of their 1-D code (one of ``CODE_THRESHOLDS``).
    """
    if method not in FITTERS:
        raise ValueError(f"compress method {method!r}: expected one of {METHODS}")
    train, valid = label_free(train, emotions), label_free(valid, emotions)
    params = dict(params or {})
    if method == "lda":
        if "text" not in train.columns:
            raise KeyError("compress method 'lda' needs the text column")
        return fit_lda(train, valid, emotions, params, seed, boundary=boundary)
    if method in CODE_METHODS:
        if code_threshold not in CODE_THRESHOLDS:
            raise ValueError(f"compress.code_threshold: {code_threshold!r} is not one of {CODE_THRESHOLDS}")
        params["code_threshold"] = code_threshold
    return FITTERS[method](train, valid, emotions, params, seed)


def join_scores(texts: pd.DataFrame, scores: pd.DataFrame, *, name: str) -> pd.DataFrame:
    """Data-stage rows joined to their 0-shot scores on id; every text must have scores."""
    texts = texts.assign(id=texts["id"].astype(str))
    scores = scores.assign(id=scores["id"].astype(str))
    merged = texts.merge(scores, on="id", how="left", validate="one_to_one", suffixes=("", "_score"))
    missing = merged[scores.columns[1]].isna()
    if missing.any():
        raise ValueError(f"{name}: id {merged['id'][missing].iloc[0]!r} has no 0-shot scores")
    return merged


def compress(
    method: str, labelled: pd.DataFrame, extra: pd.DataFrame, emotions: Emotions, cfg: dict, *, seed: int
) -> tuple[pd.DataFrame, dict]:
    """Fit ``method`` on the train split's scores, label every text of both datasets.

    ``labelled``: split rows joined to scores (id, text, label, split, scores...);
    ``extra``: extra rows joined to scores. Returns (labels frame, metrics dict).
    """
    split = labelled["split"].to_numpy()
    t0 = time.perf_counter()
    fitted = fit(
        method,
        labelled[split == "train"],
        labelled[split == "valid"],
        emotions,
        cfg.get(method, {}),
        seed=seed,
        boundary=0.5 if cfg.get("boundary") is None else float(cfg["boundary"]),
        code_threshold=cfg.get("code_threshold") or "anchor",
    )
    fit_seconds = time.perf_counter() - t0
    frames = []
    for name, frame in (("labelled", labelled), ("extra", extra)):
        score = np.clip(np.asarray(fitted.predict(label_free(frame, emotions)), dtype=np.float64), 0.0, 1.0)
        frames.append(
            pd.DataFrame(
                {
                    "id": frame["id"].astype(str).to_numpy(),
                    "dataset": name,
                    "score": score.astype(np.float32),
                    "label": (score > 0.5).astype(np.int64),
                }
            )
        )
    labels = pd.concat(frames, ignore_index=True)
    pred = labels["label"].to_numpy()[: len(labelled)]
    truth = labelled["label"].to_numpy()
    metrics = {"method": method}
    for part in ("test", "valid", "train"):
        m = split == part
        metrics[part] = {
            **classification_metrics(truth[m].astype(int), pred[m]),
            "positive_rate": float(pred[m].mean()) if m.any() else None,
        }
    metrics.update(
        {
            "extra_positive_rate": float(labels["label"][len(labelled) :].mean()) if len(extra) else None,
            "n_fit": int((split == "train").sum()),
            "chosen": fitted.chosen,
            "fit_seconds": fit_seconds,
        }
    )
    return labels, metrics


def table2(labels_by_method: dict[str, pd.DataFrame], split: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, F1, MCC of each method on the test split, plus the majority-class reference."""
    split = split.assign(id=split["id"].astype(str))
    test = split[split["split"] == "test"][["id", "label"]]
    majority = int(split.loc[split["split"] == "train", "label"].mean() >= 0.5)
    rows = []
    for method, labels in labels_by_method.items():
        lab = labels[labels["dataset"] == "labelled"][["id", "label"]].rename(columns={"label": "pred"})
        m = test.merge(lab.assign(id=lab["id"].astype(str)), on="id", how="left")
        if m["pred"].isna().any():
            raise ValueError(f"compress/{method}: test id {m['id'][m['pred'].isna()].iloc[0]!r} has no label")
        met = classification_metrics(m["label"].astype(int), m["pred"].astype(int))
        rows.append(
            {
                "method": method,
                "accuracy": met["accuracy"],
                "f1": met["f1"],
                "mcc": met["mcc"],
                "n": met["n"],
                "positive_rate": float(m["pred"].mean()),
            }
        )
    met = classification_metrics(test["label"].astype(int), np.full(len(test), majority))
    rows.append(
        {
            "method": "majority",
            "accuracy": met["accuracy"],
            "f1": met["f1"],
            "mcc": met["mcc"],
            "n": met["n"],
            "positive_rate": float(majority),
        }
    )
    return pd.DataFrame(rows)
