"""Resumable work is keyed by the contents of every input: a changed split, lottery sample
or model never resumes a stale search; a torn journal record is skipped."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from lotteryprune.prune import ga
from lotteryprune.resume import Journal, WorkDir, content_hash, job_key


def test_content_hash_is_the_sha256_of_the_bytes(tmp_path):
    f = tmp_path / "split.parquet"
    f.write_bytes(b"some bytes")
    assert content_hash(f) == hashlib.sha256(b"some bytes").hexdigest()
    d = tmp_path / "model"
    d.mkdir()
    (d / "a.json").write_bytes(b"A")
    (d / "b.bin").write_bytes(b"B")
    expected = hashlib.sha256(b"a.json\0A\1b.bin\0B\1").hexdigest()
    assert content_hash(d) == expected


def test_key_changes_with_any_input_content_or_param_not_with_mtime(tmp_path):
    split, sample = tmp_path / "split.parquet", tmp_path / "ids.json"
    split.write_text("rows v1")
    sample.write_text('{"ids": [1, 2]}')
    key = job_key({"split": split, "sample": sample}, {"rate": 70})
    import os

    os.utime(split, (0, 0))  # touched, same bytes: same key
    assert job_key({"split": split, "sample": sample}, {"rate": 70}) == key
    assert job_key({"split": split, "sample": sample}, {"rate": 90}) != key
    sample.write_text('{"ids": [1, 3]}')
    assert job_key({"split": split, "sample": sample}, {"rate": 70}) != key


def test_workdir_deletes_stale_siblings(tmp_path):
    old = WorkDir(tmp_path / "work", "a" * 16)
    (old / "checkpoint.json").write_text("{}")
    new = WorkDir(tmp_path / "work", "b" * 16)
    assert not old.path.exists() and new.path.is_dir()
    new.clear()
    assert not (tmp_path / "work").exists()


def test_torn_last_journal_line_is_skipped(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append({"mask": "1100", "fitness": 0.5})
    journal.append({"mask": "1010", "fitness": 0.7})
    with open(journal.path, "a") as fh:
        fh.write('{"mask": "0110", "fitn')  # killed mid-write
    assert [r["mask"] for r in journal] == ["1100", "1010"]
    store = ga.CheckpointStore(tmp_path / "ga_checkpoint.json")
    store.record("1100", 0.25)
    with open(store.journal.path, "a") as fh:
        fh.write('{"mask": "0011", "fitness": 0.')
    assert store.pending() == {"1100": 0.25}


def test_a_changed_lottery_sample_does_not_resume_the_old_search(tmp_path):
    """The prune cell keys its GA checkpoints by the input files' contents: kill a search,
    change the sample file, and the rerun starts afresh instead of resuming."""
    from lotteryprune.prune.cell import prune_cell

    split = pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(8)] + ["v0", "v1"],
            "text": ["good", "bad"] * 5,
            "label": [1, 0] * 5,
            "source": "s",
            "split": ["train"] * 8 + ["valid"] * 2,
        }
    )
    sample = tmp_path / "ids.json"
    sample.write_text(json.dumps({"ids": ["t0", "t1", "t2", "t3"]}))
    split_file = tmp_path / "split.parquet"
    split.to_parquet(split_file)
    calls = []

    def fake_run(name, task):  # records which work directory the search got
        calls.append(task.workdir)
        task.workdir.mkdir(parents=True, exist_ok=True)
        (task.workdir / "ga_checkpoint.json").write_text("{}")
        raise KeyboardInterrupt  # killed mid-search

    import lotteryprune.prune.cell as cell

    original = cell.run_method
    cell.run_method = fake_run
    args = dict(
        split=split,
        model_dir="m",
        rate=50,
        seeds=[0],
        params={},
        valid_size=None,
        metric="macro_f1",
        max_length=16,
        dtype="float32",
        workdir=tmp_path / "work",
        train={
            "epochs": 1,
            "lr": 1e-3,
            "batch_size": 4,
            "warmup_ratio": 0.1,
            "weight_decay": 0.0,
            "max_grad_norm": 1.0,
        },
    )
    try:
        for ids in (["t0", "t1", "t2", "t3"], ["t0", "t1", "t2", "t3"], ["t4", "t5", "t6", "t7"]):
            sample.write_text(json.dumps({"ids": ids}))
            try:
                prune_cell("ga", sample_ids=ids, inputs={"split": split_file, "sample": sample}, **args)
            except KeyboardInterrupt:
                pass
    finally:
        cell.run_method = original
    assert calls[0] == calls[1]  # same inputs: the rerun resumes in the same directory
    assert calls[2] != calls[0] and not calls[0].exists()  # new sample: another key, the stale one deleted
    assert np.all([c.name == "seed0" for c in calls])
