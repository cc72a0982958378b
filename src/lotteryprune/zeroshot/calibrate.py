"""From raw scorer output to 0-shot scores in [0,1], with one calibration for every dataset.

The scorers' raw output (``results/zeroshot/raw/{dataset}.parquet``) is what the expensive,
resumable scoring writes. This step turns it into the scores every later stage reads
(``results/zeroshot/{dataset}.parquet``):

* ``nsp``: P(is next) is already a probability; nothing is fitted and the raw numbers are
  the scores, unchanged.
* ``similarity``: cosines, calibrated by :func:`.similarity.calibrate_cosines`. Its one
  fitted number (the scale) is fitted **once, on a reference set** (the labelled data's
  train split, texts only: no label is read) and applied to every dataset, so a score of
  0.7 means the same on the labelled texts and on the extra text. Fitting it per dataset
  would give each dataset its own sigmoid.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .config import SCORERS
from .similarity import calibrate_cosines, fit_cosine_scale


def fit_calibration(scorer: str, raw_reference: np.ndarray) -> dict:
    """What the calibration of ``scorer`` needs, fitted on the reference set's raw scores."""
    if scorer not in SCORERS:
        raise ValueError(f"zeroshot.scorer: {scorer!r} is not one of {SCORERS}")
    raw_reference = np.asarray(raw_reference, dtype=np.float64)
    if scorer == "nsp":
        return {"scorer": "nsp", "calibration": "none (P(is next) is a probability)"}
    return {
        "scorer": "similarity",
        "calibration": "sigmoid((cos - mean cos of the text over its hypotheses) / scale); "
        "scale = sd of those centred cosines pooled over the reference set",
        "scale": fit_cosine_scale(raw_reference),
        "reference_mean_cosine": float(raw_reference.mean()) if raw_reference.size else None,
    }


def apply_calibration(raw: np.ndarray, calibration: dict) -> np.ndarray:
    """Scores in [0,1] from raw scorer output and a fitted :func:`fit_calibration` record."""
    if calibration["scorer"] == "nsp":
        return np.asarray(raw, dtype=np.float32)
    return calibrate_cosines(raw, calibration["scale"])


def calibrate_datasets(
    scorer: str, raw: dict[str, pd.DataFrame], reference: str, reference_ids: Iterable[str], columns: list[str]
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Fit the calibration on the rows of ``raw[reference]`` whose id is in ``reference_ids``;
    apply it to every frame of ``raw`` (id + ``columns``). Returns the score frames and a record.
    """
    if reference not in raw:
        raise KeyError(f"calibration reference dataset {reference!r} is not among {sorted(raw)}")
    for name, frame in raw.items():
        missing = [c for c in ["id", *columns] if c not in frame.columns]
        if missing:
            raise KeyError(f"raw 0-shot scores of {name!r} lack columns {missing[:5]}")
    ref_frame = raw[reference]
    wanted = {str(i) for i in reference_ids}
    rows = ref_frame["id"].astype(str).isin(wanted).to_numpy()
    if not rows.any():
        raise ValueError(f"calibration: none of the {len(wanted)} reference ids is in the raw scores of {reference!r}")
    calibration = fit_calibration(scorer, ref_frame.loc[rows, columns].to_numpy(np.float64))
    calibration.update({"reference": reference, "reference_texts": int(rows.sum())})
    out, per_dataset = {}, {}
    for name, frame in raw.items():
        scores = apply_calibration(frame[columns].to_numpy(), calibration)
        scored = pd.DataFrame(scores, columns=columns)
        scored.insert(0, "id", frame["id"].astype(str).to_numpy())
        out[name] = scored
        per_dataset[name] = {
            "texts": len(scored),
            "mean_score": float(scores.mean()) if scores.size else None,
            "share_above_half": float((scores > 0.5).mean()) if scores.size else None,
        }
    return out, {**calibration, "datasets": per_dataset}
