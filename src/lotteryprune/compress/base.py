"""What every label compressor shares: the fitted-model record, the emotion matrix, and the
lists' own affect direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..zeroshot.emotions import Emotions


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclass
class Fitted:
    """A fitted compressor: ``predict(frame)`` -> P(positive) for each row of a score frame.

    ``chosen``: the fitted choices, written to metrics.json; ``parts``: the fitted objects
    themselves (threshold, PCA, network, LDA model), for inspection and tests, never written.
    """

    predict: Callable[[pd.DataFrame], np.ndarray]
    chosen: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict, repr=False)


def affect_index(frame: pd.DataFrame, emotions: Emotions) -> np.ndarray:
    """mean(positive-emotion scores) - mean(negative-emotion scores): the lists' own direction."""
    return frame[list(emotions.positive)].to_numpy(np.float64).mean(1) - frame[list(emotions.negative)].to_numpy(
        np.float64
    ).mean(1)


def emotion_matrix(frame: pd.DataFrame, emotions: Emotions) -> np.ndarray:
    missing = [c for c in emotions.emotion_columns if c not in frame.columns]
    if missing:
        raise KeyError(f"score frame lacks emotion columns {missing[:5]}")
    x = frame[emotions.emotion_columns].to_numpy(np.float64)
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
        raise ValueError(
            f"score frame row {row} (id {frame['id'].iloc[row] if 'id' in frame else row}) has a non-finite score"
        )
    return x
