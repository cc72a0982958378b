"""The stratified, seeded train/valid/test split of the labelled data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fetch import DataError


def split(frame: pd.DataFrame, fractions: dict, seed: int) -> pd.DataFrame:
    """Stratified train/valid/test split; adds a ``split`` column. Same seed, same split."""
    from sklearn.model_selection import train_test_split

    total = fractions["train"] + fractions["valid"] + fractions["test"]
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"config data.split: fractions sum to {total}, not 1")
    if frame["label"].isna().any():
        raise DataError("split: labelled table has rows without a label")
    idx = np.arange(len(frame))
    labels = frame["label"].to_numpy()
    train_idx, rest = train_test_split(idx, train_size=fractions["train"], stratify=labels, random_state=seed)
    valid_share = fractions["valid"] / (fractions["valid"] + fractions["test"])
    valid_idx, test_idx = train_test_split(rest, train_size=valid_share, stratify=labels[rest], random_state=seed)
    out = frame.copy()
    out["split"] = "train"
    out.loc[out.index[valid_idx], "split"] = "valid"
    out.loc[out.index[test_idx], "split"] = "test"
    return out
