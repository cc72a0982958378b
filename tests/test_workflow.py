"""The whole DAG on the tiny config, then what a user relies on: nothing to redo after a
complete run, a changed parameter reruns only what depends on it, a killed job resumes.

One complete run (module fixture) in a temporary copy of the workflow; the tiny config
uses a random 2x4 BERT and a few hundred real VADER tweets (fetched with pip).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import planned_jobs

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ["Snakefile", "rules", "workflow", "config", "envs", "profiles", "src"]

pytestmark = pytest.mark.workflow


def _copy_workflow(dest: Path) -> Path:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    # --configfile takes several files: it goes last, or it would swallow a target
    config = [] if "--configfile" in args else ["--configfile", "config/tiny.yaml"]
    cmd = [SNAKEMAKE, "--cores", "2", *args, *config]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def _overlay(workdir: Path, name: str, values: dict, *under: str) -> list[str]:
    """Extra config file on top of tiny.yaml (and the ``under`` overlays): what a user
    editing one parameter does."""
    (workdir / "config" / name).write_text(yaml.safe_dump(values))
    return ["--configfile", "config/tiny.yaml", *under, f"config/{name}"]


def _planned_rules(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count that a dry run would execute."""
    return planned_jobs(_snakemake(workdir, "-n", "--quiet=rules", *args).stdout)  # = : it takes several values


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    workdir = _copy_workflow(tmp_path_factory.mktemp("wf"))
    start = time.perf_counter()
    _snakemake(workdir, timeout=1500)
    print(f"tiny workflow wall time: {time.perf_counter() - start:.0f} s")
    return workdir


def test_tables_have_their_columns_and_rows_trace_to_files(completed):
    results = completed / "results"
    t5 = pd.read_csv(results / "table5.csv")
    assert {
        "source",
        "method",
        "augmentation",
        "unit",
        "model",
        "data",
        "metric",
        "lossless_rate",
        "within_rate",
        "reference_value",
        "runs",
        "test_n",
        "collapsed",
        "per_rate",
        "files",
    } <= set(t5.columns)
    assert set(t5["source"]) == {"measured", "reported"}
    config = yaml.safe_load((completed / "config" / "config.yaml").read_text())
    tiny = yaml.safe_load((completed / "config" / "tiny.yaml").read_text())
    assert set(t5.loc[t5["source"] == "measured", "method"]) == set(config["prune"]["methods"])
    for table in ("table4.csv", "table5.csv", "table6.csv"):
        frame = pd.read_csv(results / table)
        for files in frame["files"].dropna():
            for f in str(files).split(";"):
                assert (completed / f).is_file(), f"{table} names {f}, which does not exist"
    t2 = pd.read_csv(results / "table2.csv")
    assert {"method", "accuracy", "f1", "mcc"} <= set(t2.columns)
    assert "majority" in set(t2["method"])
    t6 = pd.read_csv(results / "table6.csv")
    assert len(t6) == len(config["select"]["selectors"]) * len(tiny["select"]["rates"])
    claims = pd.read_csv(results / "claims.csv")
    assert {"claim", "difference", "ci_low", "ci_high", "runs_a", "runs_b", "test_n", "verdict"} <= set(claims.columns)
    assert set(claims["verdict"]) <= {"held", "not held", "inconclusive", "not tested", "not held (collapsed runs)"}
    assert len(claims) >= 8
    # every measured cell ran every seed: the runs column says how many, per rate
    runs = len(tiny["prune"]["seeds"])
    measured = t5[t5["source"] == "measured"]
    assert (
        measured.loc[measured["method"] == "ga", "runs"]
        .str.split()
        .map(lambda r: {x.split(":")[1] for x in r})
        .eq({str(runs)})
        .all()
    )
    assert (
        measured.loc[measured["method"] == "random", "runs"].str.contains(f":{tiny['prune']['random']['draws']}").all()
    )
    for fig in ("fig7_f1_vs_rate", "fig8_time_vs_rate", "fig9_head_grids", "ga_fitness", "selection_umap"):
        assert (results / "figures" / f"{fig}.png").stat().st_size > 1000


def test_every_rule_wrote_a_log(completed):
    logs = list((completed / "results").rglob("*.log"))
    assert len(logs) >= 20
    assert all(p.stat().st_size > 0 for p in logs if "prune" in p.parts)


def test_complete_run_has_nothing_to_do(completed):
    assert _planned_rules(completed) == {}


def test_beyond_overlay_adds_only_its_methods_and_builds_the_frontier(completed):
    """config/beyond.yaml on a finished run: only fisher, fisher_heads and ga_ffn are pruned
    (and fine-tuned, benched), then results/frontier.csv places every method on one axis;
    ga_ffn opens from Fisher's search (init: fisher). The overlay's augmentations (here pca
    for two of its augmented methods, to keep the test short) add augmented series and the
    unpruned model fine-tuned with each, their reference."""
    small = {
        "prune": {"fisher": {"seq_len": 16}, "ga_ffn": {"seq_len": 16, "group_size": 16, "population": 3}},
        "finetune": {"methods": ["ga", "ga_ffn"], "augmentations": ["none", "pca"]},
    }
    args = ["results/frontier.csv", *_overlay(completed, "small_beyond.yaml", small, "config/beyond.yaml")]
    planned = _planned_rules(completed, *args)
    tiny = yaml.safe_load((completed / "config" / "tiny.yaml").read_text())
    beyond = yaml.safe_load((completed / "config" / "beyond.yaml").read_text())
    assert set(small["finetune"]["augmentations"]) < set(beyond["finetune"]["augmentations"])
    rates = len(tiny["prune"]["rates"])
    new_augs = set(small["finetune"]["augmentations"]) - set(tiny["finetune"]["augmentations"])
    assert planned.get("prune") == 3 * rates and planned.get("frontier") == 1, planned
    # fisher, fisher_heads, ga_ffn without augmentation; ga_ffn with each; ga with the new
    # ones except at the reference rate (Table 4 fine-tunes it there with every compression)
    augs = len(small["finetune"]["augmentations"]) - 1
    assert planned.get("finetune") == rates * (3 + augs) + (rates - 1) * len(new_augs), planned
    assert planned.get("finetune_reference") == len(new_augs), planned
    assert set(planned) <= {"prune", "finetune", "finetune_reference", "bench_inference", "frontier"}, planned
    _snakemake(completed, *args)
    results = completed / "results"
    points = pd.read_csv(results / "frontier.csv")
    assert {"unpruned", "ga", "fisher", "fisher_heads", "ga_ffn"} <= set(points["method"])
    assert (points.loc[points["method"] != "unpruned", "speedup"] > 0).all()
    series = points.groupby(["method", "augmentation"])["reference"].agg(set)
    assert series[("ga_ffn", "pca")] == {"unpruned/pca unpruned/none"} and series[("fisher", "none")] == {
        "unpruned/none"
    }
    assert ("fisher", "pca") not in series.index
    assert (results / "frontier_table.csv").is_file() and (results / "figures" / "frontier.png").stat().st_size > 1000
    selection = tiny["select"]["default"]
    for rate in tiny["prune"]["rates"]:
        summary = json.loads((results / "prune" / "ga_ffn" / selection / str(rate) / "summary.json").read_text())
        for run in summary["runs"]:
            x = run["extras"]
            assert x["init"] == "fisher" and x["best_fitness"] >= x["seed_fitness"]
            assert x["flops_removed_percent"] >= rate


def test_changed_compression_parameter_reruns_only_compression_and_downstream(completed):
    planned = _planned_rules(completed, *_overlay(completed, "c.yaml", {"compress": {"lda": {"passes": 3}}}))
    assert planned.get("compress") == 1 and "table2" in planned
    assert not {
        "download",
        "normalise",
        "split",
        "pretrained_model",
        "zeroshot",
        "embed",
        "select",
        "prune",
        "bench_inference",
    } & set(planned)


def test_changed_ga_parameter_reruns_only_ga_and_downstream(completed):
    overlay = _overlay(completed, "g.yaml", {"prune": {"ga": {"smoothing": 0.5}}})
    planned = _planned_rules(completed, *overlay)
    assert planned.get("prune", 0) >= 1
    assert not {"download", "normalise", "split", "zeroshot", "compress", "select", "embed", "table2"} & set(planned)
    # only GA jobs among the prune jobs
    out = _snakemake(completed, "-n", *overlay).stdout
    methods = {
        line.split("method=")[1].split(",")[0]
        for line in out.splitlines()
        if "wildcards:" in line and "method=" in line
    }
    assert methods == {"ga"}


def test_lint_and_format_are_clean(completed):
    proc = _snakemake(completed, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    proc = subprocess.run(
        [snakefmt, "--check", "Snakefile", "rules"], cwd=completed, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_report_bundles_tables_and_figures(completed):
    _snakemake(completed, "--report", "results/report.html")
    html = completed / "results" / "report.html"
    assert html.stat().st_size > 100_000


def _kill_when(
    workdir: Path, target: str, ready, timeout: float = 600, config: tuple[str, ...] = ("config/tiny.yaml",)
) -> bool:
    """Start snakemake on ``target``; SIGKILL its whole process group once ``ready()``.

    Returns True if the kill landed before the job finished.
    """
    cmd = [SNAKEMAKE, "--cores", "1", target, "--configfile", *config]
    log = workdir / f"kill-{Path(target).name}.log"  # why snakemake ended, when it ends before the kill
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                # a killed snakemake leaves its lock behind; a user runs --unlock first
                _snakemake(workdir, "--unlock")
                return not (workdir / target).exists()
            if proc.poll() is not None:
                print(f"snakemake ended (rc {proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
                return False
            time.sleep(0.02)
        raise AssertionError(f"{target}: never reached the kill point")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _stable(summary: dict) -> dict:
    """A GA summary without its wall-clock fields."""
    drop = {"seconds", "search_seconds", "train_seconds"}

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in drop}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(summary)


def test_killed_ga_job_resumes_to_the_same_result(completed):
    tiny = yaml.safe_load((completed / "config" / "tiny.yaml").read_text())
    rate = tiny["prune"]["rates"][-1]
    job = completed / "results" / "prune" / "ga" / tiny["select"]["default"] / str(rate)
    before = json.loads((job / "summary.json").read_text())
    mask_before = (job / "masks.safetensors").read_bytes()
    shutil.rmtree(job)
    checkpoints = lambda: list(job.glob("work/*/seed*/ga_checkpoint.json"))  # noqa: E731
    killed = _kill_when(completed, str((job / "masks.safetensors").relative_to(completed)), lambda: bool(checkpoints()))
    assert killed, "the GA job finished before it could be killed"
    assert checkpoints() and not (job / "summary.json").exists()
    _snakemake(completed, str((job / "summary.json").relative_to(completed)))
    after = json.loads((job / "summary.json").read_text())
    assert _stable(after) == _stable(before)
    assert (job / "masks.safetensors").read_bytes() == mask_before
    log = (job / "prune.log").read_text()
    assert "resum" in log.lower()


def test_killed_zeroshot_job_resumes_from_its_chunks(completed):
    target = completed / "results" / "zeroshot" / "raw" / "labelled.parquet"
    before = pd.read_parquet(target)
    target.unlink()
    workdir = completed / "results" / "zeroshot" / ".work" / "labelled"
    chunks = lambda: len(list(workdir.glob("*/chunk-*.parquet"))) >= 2  # noqa: E731
    killed = _kill_when(completed, "results/zeroshot/raw/labelled.parquet", chunks)
    assert killed, "the zeroshot job finished before it could be killed"
    assert not target.exists()
    kept = len(list(workdir.glob("*/chunk-*.parquet")))
    _snakemake(completed, "results/zeroshot/raw/labelled.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(target), before)

    info = json.loads((completed / "results" / "zeroshot" / "raw" / "labelled.json").read_text())
    assert kept >= 2 and info["chunks_reused"] >= 2


def test_killed_finetune_job_leaves_nothing_complete_and_saved_models_reload(completed):
    """With finetune.save_model, kill -9 the reference cell once its first model is saved:
    no metrics, predictions or models directory is left that looks complete; the rerun
    writes every run's model with save_pretrained, and each reloads to the predictions
    the job recorded for it."""

    import torch

    from lotteryprune.model.sources import load_classifier, load_tokenizer
    from lotteryprune.model.training import predict_logits

    # 4 seeds: after the first model is saved, 3 more runs train, a window wide enough to kill in
    overlay = _overlay(completed, "save.yaml", {"finetune": {"save_model": True, "seeds": [0, 1, 2, 3]}})
    # turning save_model on for cells that are done: the default target asks for their models
    # (Snakemake reruns a job for a missing output only when something asks for it)
    planned = _planned_rules(completed, *overlay)
    assert planned.get("finetune_reference") == 2 and planned.get("finetune", 0) >= 1
    cell = completed / "results" / "finetune" / "unpruned" / "none"
    target = str((cell / "models").relative_to(completed))
    staged = cell / "models.partial"
    killed = _kill_when(completed, target, lambda: staged.is_dir() and any(staged.iterdir()), config=tuple(overlay[1:]))
    assert killed, "the fine-tuning job finished before it could be killed"
    assert not (cell / "metrics.json").exists() and not (cell / "predictions.parquet").exists()
    assert not (cell / "models").exists()
    _snakemake(completed, target, *overlay)
    metrics = json.loads((cell / "metrics.json").read_text())
    predictions = pd.read_parquet(cell / "predictions.parquet")
    split = pd.read_parquet(completed / "results" / "data" / "split.parquet")
    test = split[split["split"] == "test"]
    saved = sorted(p for p in (cell / "models").iterdir() if not p.name.startswith("."))  # not .snakemake_timestamp
    assert [p.name for p in saved] == [f"seed{r['search_seed']}-{r['finetune_seed']}" for r in metrics["runs"]]
    torch.set_num_threads(1)
    for run, path in zip(metrics["runs"], saved):
        model = load_classifier(path)
        logits = predict_logits(
            model,
            load_tokenizer(path),
            test["text"].tolist(),
            max_length=run["config"]["train"]["max_length"],
            dtype=run["config"]["train"]["dtype"],
        )
        recorded = predictions[
            (predictions["search_seed"] == run["search_seed"]) & (predictions["finetune_seed"] == run["finetune_seed"])
        ]
        assert (logits.argmax(1) == recorded["pred"].to_numpy()).all()
