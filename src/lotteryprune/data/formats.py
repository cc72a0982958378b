"""Parse each raw format into the common schema: ``id`` (str, unique), ``text`` (str,
non-empty), ``label`` (0/1 for labelled data, null for extra text), ``source`` (str).

Every dropped row is counted by reason (empty text, bad label, duplicate id, bad encoding,
...) in the report written beside the output.
"""

from __future__ import annotations

import csv
import io
import lzma
import math
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


# --------------------------------------------------------------------------- what a file is

ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)

TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def file_kind(path: Path) -> str:
    """``zip``, ``tar`` (also compressed), ``parquet`` or ``plain``, from the bytes, not the name."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or zipfile.is_zipfile(path):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or tarfile.is_tarfile(path):
        return "tar"
    if head.startswith(b"PAR1"):
        return "parquet"
    return "plain"


def _open_zip(path: Path, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as err:
        raise DataError(f"{name}: not a readable zip file ({err})") from err


# --------------------------------------------------------------------------- VADER


def _vader_member(path: Path, member: str, name: str, *, plain_ok: bool) -> bytes:
    """A file of the VADER study archive: from the sdist, from the inner archive itself,
    or (``plain_ok``, the tweets) the file on its own."""
    kind = file_kind(path)
    if kind == "plain" and plain_ok:
        return path.read_bytes()
    if kind != "tar":
        wanted = f"the {member.rsplit('/', 1)[-1]} file, " if plain_ok else ""
        raise DataError(
            f"{name}: not a readable tar archive (a {kind} file); expected {wanted}the vaderSentiment sdist "
            f"or {VADER_INNER.rsplit('/', 1)[-1]}"
        )
    try:
        return _vader_member_unchecked(path, member, name)
    except TAR_ERRORS as err:
        raise DataError(f"{name}: truncated or corrupt archive ({err})") from err


def _vader_member_unchecked(path: Path, member: str, name: str) -> bytes:
    with tarfile.open(path, "r:*") as outer:
        names = outer.getnames()
        inner_name = next((n for n in names if n.endswith(VADER_INNER)), None)
        if inner_name is not None:
            inner_bytes = outer.extractfile(inner_name).read()
            inner = tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:*")
        elif member in names:
            inner = outer
        else:
            raise DataError(f"{name}: neither {VADER_INNER} nor {member} in the archive")
        try:
            return inner.extractfile(member).read()
        except KeyError as err:
            raise DataError(f"{name}: {member} missing from the VADER archive") from err


def _lines(raw: bytes) -> list[bytes]:
    """Lines ended by LF or CRLF (or CR, in a file that has no LF at all). A bare CR inside
    a line is text, not a line break (``bytes.splitlines`` would split there)."""
    if b"\n" not in raw:
        return raw.split(b"\r")
    return [line[:-1] if line.endswith(b"\r") else line for line in raw.split(b"\n")]


def _parse_rated_lines(raw: bytes, source: str, report: Report, *, labelled: bool) -> list[dict]:
    """VADER ``GroundTruth`` files: ``id<TAB>mean rating<TAB>text``, CRLF."""
    rows = []
    for lineno, line in enumerate(_lines(raw), start=1):
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
        if not math.isfinite(value):  # "nan", "inf": float() takes them, no label may come of them
            report.drop("bad label", where)
            continue
        label = None
        if labelled:
            if value == 0:
                report.drop("neutral rating (mean 0)", where)
                continue
            label = int(value > 0)
        rows.append(
            {"id": f"{source}-{raw_id.strip()}", "text": text, "label": label, "source": source, "_where": where}
        )
    return rows


# --------------------------------------------------------------------------- Sentiment140


def _read_sentiment140(path: Path, member: str | None, report: Report, name: str) -> list[dict]:
    """Stanford's zip, or its CSV on its own (Kaggle's copy, an unzipped download)."""
    kind = file_kind(path)
    if kind == "zip":
        archive = _open_zip(path, name)
        member = member or SENTIMENT140_MEMBER
        if member not in archive.namelist():
            raise DataError(f"{name}: {member} not in the zip (has {archive.namelist()[:5]}); set data.*.member")
        label = f"{name} (member {member})"

        def opener():
            return archive.open(member)
    elif kind == "plain":
        label = name

        def opener():
            return open(path, "rb")
    else:
        raise DataError(f"{name}: a {kind} file; sentiment140 is Stanford's zip or its CSV ({SENTIMENT140_MEMBER})")
    rows = []
    lineno = 0
    reader = None
    try:
        with opener() as fh:
            # latin-1 decodes any byte, so "bad encoding" cannot occur here; broken rows can.
            reader = csv.reader(io.TextIOWrapper(fh, encoding="latin-1", newline=""))
            for lineno, rec in enumerate(reader, start=1):
                report.read += 1
                where = f"row {lineno}"
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
                rows.append(
                    {
                        "id": tweet_id.strip(),
                        "text": text,
                        "label": int(polarity.strip() == "4"),
                        "source": "sentiment140",
                        "_where": where,
                    }
                )
    except csv.Error as err:
        line = f" (line {reader.line_num})" if reader is not None else ""
        raise DataError(
            f"{label}: row {lineno + 1}{line}: {err}; a quote left open swallows the rows after it"
        ) from err
    except ZIP_ERRORS as err:
        raise DataError(f"{label}: corrupt or truncated after row {lineno} ({err})") from err
    return rows


# --------------------------------------------------------------------------- Civil Comments


def _read_civil_comments(path: Path, member: str | None, report: Report, name: str) -> list[dict]:
    """The CC0 zip, its CSV on its own, or the parquet the hub: source writes."""
    kind = file_kind(path)
    csv_columns = {"usecols": lambda c: c in ("id", "comment_text", "text"), "dtype": str, "keep_default_na": False}
    label = name
    try:
        if kind == "zip":
            archive = _open_zip(path, name)
            names = archive.namelist()
            member = member or next((m for m in CIVIL_COMMENTS_MEMBERS if m in names), None)
            if member is None or member not in names:
                raise DataError(
                    f"{name}: none of {CIVIL_COMMENTS_MEMBERS} in the zip (has {names[:5]}); set data.*.member"
                )
            label = f"{name} (member {member})"
            with archive.open(member) as fh:
                frame = pd.read_csv(fh, **csv_columns)
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        elif kind == "plain":
            frame = pd.read_csv(path, **csv_columns)
        else:
            raise DataError(f"{name}: a {kind} file; civil_comments is the zip, its CSV, or a parquet file")
    except DataError:
        raise
    except (*ZIP_ERRORS, ValueError, UnicodeDecodeError, ImportError) as err:  # pandas' ParserError is a ValueError
        raise DataError(f"{label}: not readable as {kind} ({type(err).__name__}: {err})") from err
    column = "comment_text" if "comment_text" in frame.columns else "text"
    if column not in frame.columns:
        raise DataError(f"{label}: no text column (comment_text or text); columns are {list(frame.columns)}")
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


# --------------------------------------------------------------------------- entry point


def normalise(
    raw_path: str | Path,
    fmt: str,
    *,
    member: str | None = None,
    max_rows: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Read one raw source into the common schema; return (table, report).

    ``name`` is the source as the config wrote it (``data.<dataset>.source``): every error
    and the report name that, not the cached copy at ``raw_path``. ``max_rows`` keeps a
    seeded sample (stratified by label where there is one); the rows left out are counted
    in the report under "not sampled".
    """
    raw_path = Path(raw_path)
    name = name or str(raw_path)
    report = Report(file=name, format=fmt)
    if fmt == "vader_tweets":
        raw = _vader_member(raw_path, member or VADER_TWEETS, name, plain_ok=True)
        rows = _parse_rated_lines(raw, "vader-tweets", report, labelled=True)
    elif fmt == "vader_snippets":
        rows = []
        for source, inner in VADER_SNIPPETS.items():
            rows += _parse_rated_lines(
                _vader_member(raw_path, inner, name, plain_ok=False), source, report, labelled=False
            )
    elif fmt == "sentiment140":
        rows = _read_sentiment140(raw_path, member, report, name)
    elif fmt == "civil_comments":
        rows = _read_civil_comments(raw_path, member, report, name)
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
        raise DataError(
            f"{name}: no usable rows for format {fmt} (read {report.read}; dropped: {dict(report.dropped)})"
        )
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
