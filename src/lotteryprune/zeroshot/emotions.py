"""The hypotheses of the 0-shot stage: 20 positive and 20 negative emotions, plus the direct
"positive"/"negative" labels, read from ``config/emotions.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Emotions:
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    direct_positive: str = "positive"
    direct_negative: str = "negative"

    @property
    def emotion_columns(self) -> list[str]:
        return list(self.positive) + list(self.negative)

    @property
    def columns(self) -> list[str]:
        """Output columns: the emotions, then the direct hypotheses ``positive``/``negative``."""
        return self.emotion_columns + ["positive", "negative"]

    @property
    def labels(self) -> list[str]:
        """The label word put into the template for each output column."""
        return self.emotion_columns + [self.direct_positive, self.direct_negative]


def load_emotions(path: str | Path) -> Emotions:
    """Read ``config/emotions.yaml``; errors name the file and the key."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys positive, negative, direct")
    lists = {}
    for key in ("positive", "negative"):
        words = data.get(key)
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError(f"{path}: key {key!r} must be a non-empty list of words")
        lists[key] = tuple(w.strip() for w in words)
    both = lists["positive"] + lists["negative"]
    dupes = sorted({w for w in both if both.count(w) > 1})
    if dupes:
        raise ValueError(f"{path}: words listed twice: {dupes}")
    reserved = {"positive", "negative", "id"} & set(both)
    if reserved:
        raise ValueError(f"{path}: emotion words may not be {sorted(reserved)} (reserved column names)")
    direct = data.get("direct") or {}
    if not isinstance(direct, dict):
        raise ValueError(f"{path}: key 'direct' must be a mapping with positive and negative")
    return Emotions(
        lists["positive"],
        lists["negative"],
        str(direct.get("positive", "positive")),
        str(direct.get("negative", "negative")),
    )


def hypothesis_sentences(emotions: Emotions, template: str) -> list[str]:
    return [template.format(label=label) for label in emotions.labels]
