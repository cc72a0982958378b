"""Parse each raw format into the common schema: ``id`` (str, unique), ``text`` (str,
non-empty), ``label`` (0/1 for labelled data, null for extra text), ``source`` (str).

Every dropped row is counted by reason (empty text, bad label, duplicate id, bad encoding,
...) in the report written beside the output.
"""

from __future__ import annotations

import csv
import io
import tarfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .fetch import DataError


VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"


VADER_TWEETS = "hutto_ICWSM_2014/tweets_GroundTruth.txt"


VADER_SNIPPETS = {
    "vader-movie": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "vader-amazon": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
    "vader-nyt": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
}


SENTIMENT140_MEMBER = "training.1600000.processed.noemoticon.csv"


CIVIL_COMMENTS_MEMBERS = ("all_data.csv", "train.csv")


@dataclass
class Report:
    """Rows read, kept and dropped (by reason), for the JSON written beside each output."""

    file: str
    format: str
    read: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def drop(self, reason: str, row: int | str) -> None:
        self.dropped[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(row)

    def to_dict(self, kept: int) -> dict:
        if kept + sum(self.dropped.values()) != self.read:
            raise AssertionError(f"{self.file}: kept {kept} + dropped {sum(self.dropped.values())} != read {self.read}")
        return {
            "file": self.file,
            "format": self.format,
            "read": self.read,
            "kept": kept,
            "dropped": dict(self.dropped),
            "example_rows": self.examples,
        }


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"{path}: not a readable tar archive ({err})") from err


def _vader_member(path: Path, member: str) -> bytes:
    """A file of the VADER study archive, from the sdist or from the inner archive itself."""
    try:
        return _vader_member_unchecked(path, member)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt archive ({err})") from err


def _vader_member_unchecked(path: Path, member: str) -> bytes:
    with _open_tar(path) as outer:
        names = outer.getnames()
        inner_name = next((n for n in names if n.endswith(VADER_INNER)), None)
        if inner_name is not None:
            inner_bytes = outer.extractfile(inner_name).read()
            inner = tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:*")
        elif member in names:
            inner = outer
        else:
            raise DataError(f"{path}: neither {VADER_INNER} nor {member} in the archive")
        try:
            return inner.extractfile(member).read()
        except KeyError as err:
            raise DataError(f"{path}: {member} missing from the VADER archive") from err


def _parse_rated_lines(raw: bytes, source: str, report: Report, *, labelled: bool) -> list[dict]:
    """VADER ``GroundTruth`` files: ``id<TAB>mean rating<TAB>text``, CRLF."""
    rows = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        report.read += 1
        where = f"{source}:{lineno}"
        try:
            text_line = line.decode("utf-8")
        except UnicodeDecodeError:
            report.drop("bad encoding", where)
            continue
        parts = text_line.split("\t", 2)
        if len(parts) != 3:
            report.drop("malformed row", where)
            continue
        raw_id, rating, text = parts
        text = text.strip()
        if not text:
            report.drop("empty text", where)
            continue
        try:
            value = float(rating)
        except ValueError:
            report.drop("bad label", where)
            continue
        label = None
        if labelled:
            if value == 0:
                report.drop("neutral rating (mean 0)", where)
                continue
            label = int(value > 0)
        rows.append({"id": f"{source}-{raw_id.strip()}", "text": text, "label": label, "source": source, "_where": where})
    return rows


def _read_sentiment140(path: Path, member: str | None, report: Report) -> list[dict]:
    member = member or SENTIMENT140_MEMBER
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise DataError(f"{path}: not a zip file ({err}); expected Stanford's trainingandtestdata.zip") from err
    if member not in archive.namelist():
        raise DataError(f"{path}: {member} not in the zip (has {archive.namelist()[:5]})")
    rows = []
    with archive.open(member) as fh:
        # latin-1 decodes any byte, so "bad encoding" cannot occur here; broken rows can.
        reader = csv.reader(io.TextIOWrapper(fh, encoding="latin-1", newline=""))
        for lineno, rec in enumerate(reader, start=1):
            report.read += 1
            where = f"{member}:{lineno}"
            if len(rec) != 6:
                report.drop("malformed row", where)
                continue
            polarity, tweet_id, _date, _query, _user, text = rec
            text = text.strip()
            if not text:
                report.drop("empty text", where)
                continue
            if polarity.strip() not in ("0", "4"):
                report.drop("bad label", where)
                continue
            rows.append({"id": tweet_id.strip(), "text": text, "label": int(polarity.strip() == "4"), "source": "sentiment140", "_where": where})
    return rows


def _read_civil_comments(path: Path, member: str | None, report: Report) -> list[dict]:
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
        member = member or next((m for m in CIVIL_COMMENTS_MEMBERS if m in names), None)
        if member is None or member not in names:
            raise DataError(f"{path}: none of {CIVIL_COMMENTS_MEMBERS} in the zip (has {names[:5]})")
        frame = pd.read_csv(archive.open(member), usecols=lambda c: c in ("id", "comment_text", "text"), dtype=str, keep_default_na=False)
    else:
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - any reader failure means the file is not what it claims
            raise DataError(f"{path}: neither a zip nor a parquet file ({err})") from err
    column = "comment_text" if "comment_text" in frame.columns else "text"
    if column not in frame.columns:
        raise DataError(f"{path}: no text column (comment_text or text); columns are {list(frame.columns)}")
    ids = frame["id"].astype(str) if "id" in frame.columns else pd.Series(range(len(frame))).astype(str)
    rows = []
    for i, (rid, text) in enumerate(zip(ids, frame[column].astype(str)), start=1):
        report.read += 1
        text = text.strip()
        if not text:
            report.drop("empty text", f"row {i}")
            continue
        rows.append({"id": f"cc-{rid}", "text": text, "label": None, "source": "civil_comments", "_where": f"row {i}"})
    return rows


def normalise(raw_path: str | Path, fmt: str, *, member: str | None = None, max_rows: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Read one raw source into the common schema; return (table, report).

    ``max_rows`` keeps a seeded sample (stratified by label where there is one); the rows
    left out are counted in the report under "not sampled".
    """
    raw_path = Path(raw_path)
    report = Report(file=str(raw_path), format=fmt)
    if fmt == "vader_tweets":
        rows = _parse_rated_lines(_vader_member(raw_path, member or VADER_TWEETS), "vader-tweets", report, labelled=True)
    elif fmt == "vader_snippets":
        rows = []
        for source, name in VADER_SNIPPETS.items():
            rows += _parse_rated_lines(_vader_member(raw_path, name), source, report, labelled=False)
    elif fmt == "sentiment140":
        rows = _read_sentiment140(raw_path, member, report)
    elif fmt == "civil_comments":
        rows = _read_civil_comments(raw_path, member, report)
    else:
        raise DataError(f"data format {fmt!r} unknown (config data.*.format)")
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row["id"] in seen:
            report.drop("duplicate id", row["_where"])
            continue
        seen.add(row["id"])
        unique.append(row)
    frame = pd.DataFrame(unique, columns=["id", "text", "label", "source", "_where"]).drop(columns="_where")
    frame["label"] = frame["label"].astype("Int64")
    if max_rows is not None and len(frame) > max_rows:
        keep = _sample(frame, max_rows, seed)
        for _ in range(len(frame) - len(keep)):
            report.dropped["not sampled (max rows in config)"] += 1
        frame = keep
    if frame.empty:
        raise DataError(f"{raw_path}: no usable rows (dropped: {dict(report.dropped)})")
    return frame.reset_index(drop=True), report.to_dict(len(frame))


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if frame["label"].notna().all():
        parts = []
        for _, group in frame.groupby("label", sort=True):
            take = int(round(n * len(group) / len(frame)))
            parts.append(group.iloc[np.sort(rng.choice(len(group), size=min(take, len(group)), replace=False))])
        return pd.concat(parts).sort_index()
    return frame.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))]
