"""The data stage: each source format, bad inputs, checksums, split sizes and determinism."""

import csv
import io
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest

from lotteryprune import data
from lotteryprune.data import formats


def _vader_sdist(path, tweets: bytes, snippets: bytes = b"1\t0.5\tfine movie\r\n"):
    """A fake sdist with the nested VADER study archive, as vaderSentiment ships it."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        files = {formats.VADER_TWEETS: tweets}
        files.update({name: snippets for name in formats.VADER_SNIPPETS.values()})
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with tarfile.open(path, "w:gz") as tar:
        payload = inner.getvalue()
        info = tarfile.TarInfo("vaderSentiment-3.3.2/" + formats.VADER_INNER)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


TWEETS = (
    b"1\t2.5\tI love this\r\n"
    b"2\t-1.2\tI hate this\r\n"
    b"3\t0\tneutral one\r\n"
    b"4\t1.0\t   \r\n"
    b"5\tabc\tbad rating\r\n"
    b"2\t1.1\tduplicate id\r\n"
    b"6\t-0.5\tbroken \xff bytes\r\n"
    b"7 no tabs here\r\n"
    b"8\t0.7\tyay\r\n"
)


def test_vader_tweets_rows_kept_and_dropped_by_reason(tmp_path):
    frame, report = data.normalise(_vader_sdist(tmp_path / "v.tar.gz", TWEETS), "vader_tweets")
    assert list(frame.columns) == ["id", "text", "label", "source"]
    assert frame["id"].tolist() == ["vader-tweets-1", "vader-tweets-2", "vader-tweets-8"]
    assert frame["label"].tolist() == [1, 0, 1]
    assert report["dropped"] == {
        "neutral rating (mean 0)": 1,
        "empty text": 1,
        "bad label": 1,
        "duplicate id": 1,
        "bad encoding": 1,
        "malformed row": 1,
    }
    assert report["kept"] + sum(report["dropped"].values()) == report["read"] == 9


def test_vader_snippets_are_unlabelled_and_sampled(tmp_path):
    snippets = b"".join(b"%d\t0.5\tsnippet number %d\r\n" % (i, i) for i in range(20))
    path = _vader_sdist(tmp_path / "v.tar.gz", TWEETS, snippets)
    frame, report = data.normalise(path, "vader_snippets", max_rows=10, seed=1)
    assert len(frame) == 10 and frame["label"].isna().all()
    assert report["read"] == 60 and report["dropped"]["not sampled (max rows in config)"] == 50
    again, _ = data.normalise(path, "vader_snippets", max_rows=10, seed=1)
    assert frame.equals(again)


def _sentiment140_zip(path, rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow(row)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(formats.SENTIMENT140_MEMBER, buf.getvalue().encode("latin-1"))
    return path


def test_sentiment140_latin1_polarity_and_repeated_ids(tmp_path):
    rows = [
        ["0", "11", "d", "NO_QUERY", "u", "sad caf\xe9 day"],
        ["4", "12", "d", "NO_QUERY", "u", "happy"],
        ["4", "11", "d", "NO_QUERY", "u", "same id again"],
        ["2", "13", "d", "NO_QUERY", "u", "neutral label"],
        ["4", "14", "d"],
        ["0", "15", "d", "NO_QUERY", "u", ""],
    ]
    frame, report = data.normalise(_sentiment140_zip(tmp_path / "s.zip", rows), "sentiment140")
    assert frame["label"].tolist() == [0, 1] and frame["text"].iloc[0] == "sad caf\xe9 day"
    assert report["dropped"] == {"duplicate id": 1, "bad label": 1, "malformed row": 1, "empty text": 1}


def test_civil_comments_zip_and_parquet(tmp_path):
    with zipfile.ZipFile(tmp_path / "cc.zip", "w") as zf:
        zf.writestr("all_data.csv", "id,comment_text,toxicity\n1,hello there,0.1\n2,,0.0\n3,\"multi\nline\",0.5\n")
    frame, report = data.normalise(tmp_path / "cc.zip", "civil_comments")
    assert frame["text"].tolist() == ["hello there", "multi\nline"] and frame["label"].isna().all()
    assert report["dropped"] == {"empty text": 1}
    pd.DataFrame({"text": ["a", "b"]}).to_parquet(tmp_path / "cc.parquet")
    frame, _ = data.normalise(tmp_path / "cc.parquet", "civil_comments")
    assert len(frame) == 2


@pytest.mark.parametrize("fmt", ["vader_tweets", "sentiment140", "civil_comments"])
def test_file_that_is_not_what_it_claims_names_it(tmp_path, fmt):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"this is not an archive")
    with pytest.raises(data.DataError, match="bogus.bin"):
        data.normalise(bogus, fmt)


def test_truncated_archive_is_an_error(tmp_path):
    path = _vader_sdist(tmp_path / "v.tar.gz", TWEETS)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataError, match="v.tar.gz"):
        data.normalise(path, "vader_tweets")


def test_fetch_local_verifies_and_leaves_nothing_on_mismatch(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    good = data.sha256_of(src)
    record = data.fetch(str(src), tmp_path / "out" / "ok.bin", sha256=good, size=7)
    assert record["sha256"] == good and (tmp_path / "out" / "ok.bin").read_bytes() == b"payload"
    wrong = "0" * 64
    with pytest.raises(data.DataError) as err:
        data.fetch(str(src), tmp_path / "out" / "bad.bin", sha256=wrong)
    assert good in str(err.value) and wrong in str(err.value) and "bad.bin" in str(err.value)
    with pytest.raises(data.DataError, match="size 7 bytes, expected 8"):
        data.fetch(str(src), tmp_path / "out" / "bad.bin", size=8)
    assert not (tmp_path / "out" / "bad.bin").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.bin"]


def test_split_sizes_stratified_and_deterministic():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"t{i}" for i in range(1000)], "text": "x", "label": (rng.random(1000) < 0.3).astype(int), "source": "s"})
    frame["label"] = frame["label"].astype("Int64")
    fractions = {"train": 0.7, "valid": 0.15, "test": 0.15}
    a = data.split(frame, fractions, seed=5)
    b = data.split(frame, fractions, seed=5)
    c = data.split(frame, fractions, seed=6)
    assert a.equals(b) and not a["split"].equals(c["split"])
    sizes = a["split"].value_counts()
    assert sizes["train"] == 700 and sizes["valid"] == 150 and sizes["test"] == 150
    rates = a.groupby("split")["label"].mean()
    assert (rates - frame["label"].mean()).abs().max() < 0.01
    with pytest.raises(ValueError, match="data.split"):
        data.split(frame, {"train": 0.7, "valid": 0.2, "test": 0.2}, seed=0)
