"""Classification metrics, the same everywhere (fitness, tables, claims, table 2).

``metric`` in the config names which one a comparison uses: ``macro_f1`` (the default; a
model that answers one class for everything cannot score well), ``f1`` (the positive
class, as the paper reports on its balanced data), ``accuracy`` or ``mcc``. Every result
file keeps all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("accuracy", "f1", "macro_f1", "mcc")


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """Accuracy, positive-class F1, macro-F1 (over the labels in either argument) and MCC,
    as scikit-learn defines them (zero_division=0; MCC 0 when undefined), in numpy: every
    model job imports this, and scikit-learn's import costs a second of each job's start."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    labels = np.union1d(y_true, y_pred)
    confusion = np.array([[np.sum((y_true == a) & (y_pred == b)) for b in labels] for a in labels], dtype=float)
    tp = np.diag(confusion)
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    per_label = [_f1(tp[i], fp[i], fn[i]) for i in range(len(labels))]
    positive = np.flatnonzero(labels == 1)
    # MCC, the multiclass form (Gorodkin 2004), which is the binary formula for two labels
    n, t, p = confusion.sum(), confusion.sum(1), confusion.sum(0)
    cov_tp = tp.sum() * n - t @ p
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "f1": per_label[positive[0]] if positive.size else 0.0,
        "macro_f1": float(np.mean(per_label)) if per_label else 0.0,
        "mcc": float(cov_tp / denom) if denom > 0 and len(np.unique(y_true)) > 1 else 0.0,
        "n": int(len(y_true)),
    }
