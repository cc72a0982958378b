"""Paired bootstrap over test examples, pooled over runs: the one way two results are compared.

Every fine-tuning run predicts the same test examples. A comparison of side A (one or more
runs: seeds, random draws) with side B resamples the *same* test examples for both sides,
and also resamples each side's runs, so the interval covers both the test sample and the
seed-to-seed variation. The statistic of a side is the mean over its (resampled) runs of
the metric computed on the resampled examples; the difference is A - B - margin.

Verdicts have three outcomes (:func:`verdict`): ``held`` when the whole interval lies on
the claim's side of zero, ``not held`` when it lies wholly on the other side, and
``inconclusive`` when it straddles zero.

Metrics are computed from confusion counts, so every resample costs a matrix product:
a resample is a vector of example weights (multinomial counts), and the counts of every
run under every resample are ``weights @ indicator``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METRICS = ("accuracy", "f1", "macro_f1", "mcc")


def metric_from_counts(tp, fp, fn, tn, metric: str) -> np.ndarray:
    """A metric from confusion counts (arrays of any shape, broadcast); 0 where undefined."""
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            out = (tp + tn) / (tp + fp + fn + tn)
        elif metric == "f1":
            out = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        elif metric == "macro_f1":
            # sklearn's zero_division=0: a class never predicted nor present scores 0
            # and, like sklearn, averages over the classes present in the labels or predictions
            has_pos, has_neg = (tp + fp + fn) > 0, (tn + fn + fp) > 0
            pos = np.where(has_pos, 2 * tp / (2 * tp + fp + fn), 0.0)
            neg = np.where(has_neg, 2 * tn / (2 * tn + fn + fp), 0.0)
            out = (pos + neg) / np.maximum(1, has_pos.astype(int) + has_neg.astype(int))
        elif metric == "mcc":
            den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
            out = (tp * tn - fp * fn) / den
        else:
            raise ValueError(f"metric {metric!r} is not one of {METRICS}")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def metric(y_true, y_pred, name: str) -> float:
    """One run's metric on all examples (the same numbers as sklearn's, by counts)."""
    y, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    return float(metric_from_counts((y & p).sum(), (~y & p).sum(), (y & ~p).sum(), (~y & ~p).sum(), name))


def _indicators(preds: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """tp, fp, fn, tn indicators [n, runs] of predictions [runs, n] against labels [n]."""
    p = np.asarray(preds, dtype=bool).T
    y = np.asarray(labels, dtype=bool)[:, None]
    return (p & y), (p & ~y), (~p & y), (~p & ~y)


def _resampled_scores(preds, labels, weights, name) -> np.ndarray:
    """Metric of every run under every example resample: [resamples, runs]."""
    tp, fp, fn, tn = (weights @ ind.astype(np.float64) for ind in _indicators(preds, labels))
    return metric_from_counts(tp, fp, fn, tn, name)


@dataclass
class Comparison:
    """A minus B (minus a margin), with its bootstrap interval and what it rests on."""

    difference: float  # on all test examples and all runs
    low: float
    high: float
    value_a: float
    value_b: float
    runs_a: int
    runs_b: int
    n: int
    resamples: int
    confidence: float
    margin: float

    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict()}


def verdict(low: float, high: float) -> str:
    """``held`` if the interval lies above zero, ``not held`` below, else ``inconclusive``."""
    if low > 0:
        return "held"
    if high < 0:
        return "not held"
    return "inconclusive"


def resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap example weights [resamples, n]: how often each example is drawn."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def side_values(
    preds: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    name: str,
    rng: np.random.Generator,
    *,
    resample_runs: bool = True,
) -> np.ndarray:
    """One side's statistic under every resample: the mean over its runs (themselves drawn
    with replacement when ``resample_runs``) of the metric on the resampled examples."""
    preds = np.atleast_2d(np.asarray(preds))
    scores = _resampled_scores(preds, labels, weights, name)  # [B, runs]
    if resample_runs and preds.shape[0] > 1:
        pick = rng.integers(0, preds.shape[0], size=scores.shape)
        scores = np.take_along_axis(scores, pick, axis=1)
    return scores.mean(1)


def paired_bootstrap(
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    labels: np.ndarray,
    name: str,
    *,
    margin: float = 0.0,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    resample_runs: bool = True,
) -> Comparison:
    """Compare runs A [runs_a, n] with runs B [runs_b, n] on the same test examples.

    The difference is mean-over-runs metric(A) - mean-over-runs metric(B) - ``margin``; its
    interval is the percentile interval over ``resamples`` paired resamples of the test
    examples (and of each side's runs)."""
    labels = np.asarray(labels)
    preds_a, preds_b = np.atleast_2d(preds_a), np.atleast_2d(preds_b)
    n = len(labels)
    if preds_a.shape[1] != n or preds_b.shape[1] != n:
        raise ValueError(f"predictions cover {preds_a.shape[1]} and {preds_b.shape[1]} examples, labels {n}")
    rng = np.random.default_rng(seed)
    weights = resample_weights(n, resamples, rng)
    a = side_values(preds_a, labels, weights, name, rng, resample_runs=resample_runs)
    b = side_values(preds_b, labels, weights, name, rng, resample_runs=resample_runs)
    diff = a - b - margin
    alpha = (1 - confidence) / 2
    value_a = float(np.mean([metric(labels, p, name) for p in preds_a]))
    value_b = float(np.mean([metric(labels, p, name) for p in preds_b]))
    return Comparison(
        difference=value_a - value_b - margin,
        low=float(np.quantile(diff, alpha)),
        high=float(np.quantile(diff, 1 - alpha)),
        value_a=value_a,
        value_b=value_b,
        runs_a=int(preds_a.shape[0]),
        runs_b=int(preds_b.shape[0]),
        n=n,
        resamples=resamples,
        confidence=confidence,
        margin=margin,
    )


def bootstrap_interval(
    preds: np.ndarray, labels: np.ndarray, name: str, *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean over runs of the metric, and its bootstrap interval (examples and runs resampled)."""
    preds = np.atleast_2d(preds)
    rng = np.random.default_rng(seed)
    weights = resample_weights(len(labels), resamples, rng)
    values = side_values(preds, labels, weights, name, rng)
    alpha = (1 - confidence) / 2
    mean = float(np.mean([metric(labels, p, name) for p in preds]))
    return mean, float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def rank_margin(
    target: np.ndarray,
    others: dict[str, np.ndarray],
    labels: np.ndarray,
    name: str,
    top: int,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """How far ``target`` is above the ``top``-th best of ``others`` (so > 0 means it ranks
    within the top ``top`` of all): the difference on all data and its bootstrap interval,
    every side resampled on the same examples."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    weights = resample_weights(len(labels), resamples, rng)
    t = side_values(target, labels, weights, name, rng)
    rest = np.stack([side_values(p, labels, weights, name, rng) for p in others.values()], 1)  # [B, k]
    kth = -np.sort(-rest, axis=1)[:, top - 1]
    diff = t - kth
    point_rest = sorted(
        (np.mean([metric(labels, p, name) for p in np.atleast_2d(v)]) for v in others.values()), reverse=True
    )
    point = float(np.mean([metric(labels, p, name) for p in np.atleast_2d(target)]) - point_rest[top - 1])
    alpha = (1 - confidence) / 2
    return point, float(np.quantile(diff, alpha)), float(np.quantile(diff, 1 - alpha))


def resampled_medians(base, pruned, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Medians of ``resamples`` bootstrap resamples of interleaved (unpruned, pruned) timing
    pairs, one index draw for both sides: the resampling behind every speed-up interval."""
    base, pruned = np.asarray(base), np.asarray(pruned)
    idx = rng.integers(0, len(base), size=(resamples, len(base)))
    return np.median(base[idx], axis=1), np.median(pruned[idx], axis=1)


def collapsed(preds: np.ndarray, threshold: float) -> bool:
    """A run that answers one class on at least ``threshold`` of the examples."""
    p = np.asarray(preds)
    share = p.mean() if len(p) else 0.0
    return bool(max(share, 1 - share) >= threshold)
