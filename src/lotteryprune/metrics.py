"""Classification metrics, the same everywhere (fitness, tables, claims, table 2).

``metric`` in the config names which one a comparison uses: ``macro_f1`` (the default; a
model that answers one class for everything cannot score well), ``f1`` (the positive
class, as the paper reports on its balanced data), ``accuracy`` or ``mcc``. Every result
file keeps all of them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRICS = ("accuracy", "f1", "macro_f1", "mcc")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, pos_label=1, zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)) if len(np.unique(y_true)) > 1 else 0.0,
        "n": int(len(y_true)),
    }
