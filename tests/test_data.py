"""The data stage: each source format, bad inputs (each named as the config wrote it, with
the row), checksums, split sizes and determinism. Expected values are written out by
hand (row ids, labels, counts, hashes computed with ``sha256sum``), not recomputed with
the code under test."""

import csv
import io
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest

from lotteryprune import data
from lotteryprune.data import formats


def _tar_gz(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _vader_sdist(path, tweets: bytes, snippets: bytes = b"1\t0.5\tfine movie\r\n"):
    """A fake sdist with the nested VADER study archive, as vaderSentiment ships it."""
    files = {formats.VADER_TWEETS: tweets}
    files.update({name: snippets for name in formats.VADER_SNIPPETS.values()})
    inner = _tar_gz(path.with_name("inner.tar.gz"), files).read_bytes()
    return _tar_gz(path, {"vaderSentiment-3.3.2/" + formats.VADER_INNER: inner})


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
    assert report["kept"] == 3 and report["read"] == 9


def test_non_finite_ratings_are_bad_labels_not_negatives(tmp_path):
    tweets = b"1\tnan\tnot a number\r\n2\tinf\tinfinitely happy\r\n3\t-inf\tinfinitely sad\r\n4\t-0.3\tmeh\r\n"
    frame, report = data.normalise(_vader_sdist(tmp_path / "v.tar.gz", tweets), "vader_tweets")
    assert frame["id"].tolist() == ["vader-tweets-4"] and frame["label"].tolist() == [0]
    assert report["dropped"] == {"bad label": 3}


def test_bare_carriage_return_inside_a_text_does_not_split_the_row(tmp_path):
    tweets = b"1\t1.5\tfirst half\rsecond half\r\n2\t-2.0\tsad\r\n"
    frame, report = data.normalise(_vader_sdist(tmp_path / "v.tar.gz", tweets), "vader_tweets")
    assert frame["text"].tolist() == ["first half\rsecond half", "sad"]
    assert frame["label"].tolist() == [1, 0]
    assert report["read"] == 2 and report["dropped"] == {}


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_vader_tweets_file_on_its_own(tmp_path, ending):
    """The tweets file unpacked by hand (no sdist, no study archive) is read as well."""
    path = tmp_path / "tweets_GroundTruth.txt"
    path.write_bytes(ending.join([b"1\t2.5\tI love this", b"2\t-1.2\tI hate this", b"3\t0\tneutral", b""]))
    frame, report = data.normalise(path, "vader_tweets", name="/data/tweets_GroundTruth.txt")
    assert frame["id"].tolist() == ["vader-tweets-1", "vader-tweets-2"] and frame["label"].tolist() == [1, 0]
    assert report["file"] == "/data/tweets_GroundTruth.txt" and report["read"] == 3


def test_vader_inner_study_archive_on_its_own(tmp_path):
    files = {formats.VADER_TWEETS: b"1\t2.5\tI love this\r\n"}
    files.update({name: b"9\t0.1\tok\r\n" for name in formats.VADER_SNIPPETS.values()})
    path = _tar_gz(tmp_path / "hutto_ICWSM_2014.tar.gz", files)
    assert data.normalise(path, "vader_tweets")[0]["id"].tolist() == ["vader-tweets-1"]
    assert data.normalise(path, "vader_snippets")[0]["id"].tolist() == [
        "vader-movie-9",
        "vader-amazon-9",
        "vader-nyt-9",
    ]


def test_vader_snippets_are_unlabelled_and_sampled(tmp_path):
    snippets = b"".join(b"%d\t0.5\tsnippet number %d\r\n" % (i, i) for i in range(20))
    path = _vader_sdist(tmp_path / "v.tar.gz", TWEETS, snippets)
    frame, report = data.normalise(path, "vader_snippets", max_rows=10, seed=1)
    assert len(frame) == 10 and frame["label"].isna().all()
    assert report["read"] == 60 and report["dropped"]["not sampled (max rows in config)"] == 50
    again, _ = data.normalise(path, "vader_snippets", max_rows=10, seed=1)
    assert frame.equals(again)


S140_ROWS = [
    ["0", "11", "d", "NO_QUERY", "u", "sad caf\xe9 day"],
    ["4", "12", "d", "NO_QUERY", "u", "happy"],
    ["4", "11", "d", "NO_QUERY", "u", "same id again"],
    ["2", "13", "d", "NO_QUERY", "u", "neutral label"],
    ["4", "14", "d"],
    ["0", "15", "d", "NO_QUERY", "u", ""],
    ["4", "16", "d", "NO_QUERY", "u", "line one\rline two"],
]


def _sentiment140_csv(rows) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL).writerows(rows)  # Stanford's file quotes every field
    return buf.getvalue().encode("latin-1")


def _sentiment140_zip(path, rows=None, *, payload: bytes | None = None, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr(formats.SENTIMENT140_MEMBER, payload if payload is not None else _sentiment140_csv(rows))
    return path


def _check_s140(frame, report):
    assert frame["id"].tolist() == ["11", "12", "16"] and frame["label"].tolist() == [0, 1, 1]
    assert frame["text"].tolist() == ["sad caf\xe9 day", "happy", "line one\rline two"]
    assert report["read"] == 7
    assert report["dropped"] == {"duplicate id": 1, "bad label": 1, "malformed row": 1, "empty text": 1}


def test_sentiment140_zip_latin1_polarity_and_repeated_ids(tmp_path):
    _check_s140(*data.normalise(_sentiment140_zip(tmp_path / "s.zip", S140_ROWS), "sentiment140"))


def test_sentiment140_bare_csv(tmp_path):
    """Kaggle's copy and an unzipped download are the CSV itself."""
    path = tmp_path / "training.1600000.processed.noemoticon.csv"
    path.write_bytes(_sentiment140_csv(S140_ROWS))
    _check_s140(*data.normalise(path, "sentiment140", name="/data/kaggle.csv"))


def test_sentiment140_corrupt_zip_member_names_file_and_member(tmp_path):
    payload = _sentiment140_csv([["4", str(i), "d", "q", "u", f"tweet number {i}"] for i in range(3000)])
    path = _sentiment140_zip(tmp_path / "s.zip", payload=payload)
    blob = bytearray(path.read_bytes())
    start = blob.index(b"tweet number 2000")  # stored, not deflated: flip bytes of one row
    blob[start : start + 5] = b"XXXXX"
    path.write_bytes(bytes(blob))
    with pytest.raises(data.DataError) as err:
        data.normalise(path, "sentiment140", name="/data/trainingandtestdata.zip")
    message = str(err.value)
    assert message.startswith("/data/trainingandtestdata.zip (member training.1600000.processed.noemoticon.csv)")
    assert "CRC" in message and str(path) not in message


def test_sentiment140_deflate_stream_damage_names_file(tmp_path):
    payload = _sentiment140_csv([["0", str(i), "d", "q", "u", f"sad {i} " * (i % 7 + 1)] for i in range(4000)])
    path = _sentiment140_zip(tmp_path / "s.zip", payload=payload, compression=zipfile.ZIP_DEFLATED)
    blob = bytearray(path.read_bytes())
    blob[2000:2400] = bytes(400)  # inside the compressed stream
    path.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match=r"^my\.zip \(member training"):
        data.normalise(path, "sentiment140", name="my.zip")


def test_sentiment140_field_over_csv_limit_names_file_and_row(tmp_path):
    """An unclosed quote on row 3 swallows everything after it into one huge field."""
    good = b'"0","1","d","q","u","fine"\r\n"4","2","d","q","u","also fine"\r\n'
    broken = b'"4","3","d","q","u","never closed\r\n' + b"x" * (200 * 1024) + b"\r\n"
    path = tmp_path / "s.csv"
    path.write_bytes(good + broken)
    with pytest.raises(data.DataError) as err:
        data.normalise(path, "sentiment140", name="/data/s140.csv")
    message = str(err.value)
    assert message.startswith("/data/s140.csv: row 3 (line ") and "field larger than field limit" in message


def test_civil_comments_zip_csv_and_parquet(tmp_path):
    body = 'id,comment_text,toxicity\n1,hello there,0.1\n2,,0.0\n3,"multi\nline",0.5\n4,"cr\rinside",0.2\n'
    with zipfile.ZipFile(tmp_path / "cc.zip", "w") as zf:
        zf.writestr("all_data.csv", body)
    frame, report = data.normalise(tmp_path / "cc.zip", "civil_comments")
    assert frame["text"].tolist() == ["hello there", "multi\nline", "cr\rinside"] and frame["label"].isna().all()
    assert frame["id"].tolist() == ["cc-1", "cc-3", "cc-4"]
    assert report["dropped"] == {"empty text": 1}
    (tmp_path / "all_data.csv").write_text(body)
    assert data.normalise(tmp_path / "all_data.csv", "civil_comments")[0]["id"].tolist() == ["cc-1", "cc-3", "cc-4"]
    pd.DataFrame({"text": ["a", "b"]}).to_parquet(tmp_path / "cc.parquet")
    frame, _ = data.normalise(tmp_path / "cc.parquet", "civil_comments")
    assert frame["id"].tolist() == ["cc-0", "cc-1"]


def test_civil_comments_bad_bytes_and_corrupt_member_name_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "cc.zip", "w") as zf:
        zf.writestr("all_data.csv", b"id,comment_text\n1,fine\n2,caf\xe9 latin-1\n")
    with pytest.raises(data.DataError, match=r"^/data/cc\.zip \(member all_data\.csv\): not readable as zip"):
        data.normalise(tmp_path / "cc.zip", "civil_comments", name="/data/cc.zip")
    with zipfile.ZipFile(tmp_path / "cc.zip", "w") as zf:
        zf.writestr("all_data.csv", "id,comment_text\n" + "".join(f"{i},comment {i}\n" for i in range(500)))
    blob = bytearray((tmp_path / "cc.zip").read_bytes())
    at = blob.index(b"comment 250")
    blob[at : at + 7] = b"XXXXXXX"
    (tmp_path / "cc.zip").write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match=r"^/data/cc\.zip \(member all_data\.csv\): .*CRC"):
        data.normalise(tmp_path / "cc.zip", "civil_comments", name="/data/cc.zip")


@pytest.mark.parametrize("fmt", ["vader_tweets", "vader_snippets", "sentiment140", "civil_comments"])
def test_file_that_is_not_what_it_claims_is_named_as_the_config_wrote_it(tmp_path, fmt):
    """The cached copy (results/data/raw/...) is not a name the user ever gave."""
    raw = tmp_path / "results" / "data" / "raw" / "labelled.download"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"this is not an archive")
    with pytest.raises(data.DataError) as err:
        data.normalise(raw, fmt, name="/data/my.csv")
    assert str(err.value).startswith("/data/my.csv: ") and "labelled.download" not in str(err.value)


def test_gzip_that_is_no_tar_is_named(tmp_path):
    import gzip

    path = tmp_path / "v.tar.gz"
    path.write_bytes(gzip.compress(b"plain text, gzipped, no tar inside" * 30))
    with pytest.raises(data.DataError, match=r"^pypi:vaderSentiment==3\.3\.2: truncated or corrupt archive"):
        data.normalise(path, "vader_tweets", name="pypi:vaderSentiment==3.3.2")


def test_truncated_archive_is_an_error(tmp_path):
    path = _vader_sdist(tmp_path / "v.tar.gz", TWEETS)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataError, match="^pypi:x==1: truncated or corrupt archive"):
        data.normalise(path, "vader_tweets", name="pypi:x==1")


# sha256 of b"payload", from `printf payload | sha256sum`
PAYLOAD_SHA256 = "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"


def test_fetch_local_verifies_and_leaves_nothing_on_mismatch(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    record = data.fetch(str(src), tmp_path / "out" / "ok.bin", sha256=PAYLOAD_SHA256, size=7)
    assert (record["sha256"], record["size"], record["verified"]) == (PAYLOAD_SHA256, 7, True)
    assert (tmp_path / "out" / "ok.bin").read_bytes() == b"payload" and "warning" not in record
    wrong = "0" * 64
    with pytest.raises(data.DataError) as err:
        data.fetch(str(src), tmp_path / "out" / "bad.bin", sha256=wrong)
    assert str(err.value) == f"{src}: sha256 mismatch: got {PAYLOAD_SHA256}, expected {wrong}"
    with pytest.raises(data.DataError, match="size 7 bytes, expected 8"):
        data.fetch(str(src), tmp_path / "out" / "bad.bin", size=8)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.bin"]


def test_fetch_unverified_source_is_accepted_with_a_warning(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    record = data.fetch(str(src), tmp_path / "raw.download", sha256=None, size=None)
    assert record["verified"] is False and record["sha256"] == PAYLOAD_SHA256
    assert record["warning"].startswith(f"{src}: not verified") and PAYLOAD_SHA256 in record["warning"]


def test_fetch_missing_local_source_names_it(tmp_path):
    with pytest.raises(data.DataError, match="^/no/such/file.csv: local source file does not exist"):
        data.fetch("/no/such/file.csv", tmp_path / "raw.download")


def test_split_sizes_stratified_and_deterministic():
    # 300 positives, 700 negatives: 70/15/15 of each class is 210/45/45 and 490/105/105
    frame = pd.DataFrame(
        {"id": [f"t{i}" for i in range(1000)], "text": "x", "label": [1] * 300 + [0] * 700, "source": "s"}
    )
    frame = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    frame["label"] = frame["label"].astype("Int64")
    fractions = {"train": 0.7, "valid": 0.15, "test": 0.15}
    a = data.split(frame, fractions, seed=5)
    b = data.split(frame, fractions, seed=5)
    c = data.split(frame, fractions, seed=6)
    assert a.equals(b) and not a["split"].equals(c["split"])
    counts = a.groupby(["split", "label"]).size().to_dict()
    assert counts == {
        ("test", 0): 105,
        ("test", 1): 45,
        ("train", 0): 490,
        ("train", 1): 210,
        ("valid", 0): 105,
        ("valid", 1): 45,
    }
    assert np.array_equal(a.drop(columns="split").to_numpy(), frame.to_numpy())  # rows untouched, in order
    with pytest.raises(ValueError, match="data.split"):
        data.split(frame, {"train": 0.7, "valid": 0.2, "test": 0.2}, seed=0)
