"""config/paper.yaml itself, end to end at toy scale (issue #19).

The paper's configuration takes code paths the default never does: the NSP 0-shot scorer,
the Sentiment140 and Civil Comments formats, parallel GA workers, save_model, several
seeds, and every prune rate up to 95. This runs ``--configfile config/paper.yaml`` plus one
overlay, :data:`SCALE`, that changes only what this machine's scale or availability forces
(checked by :func:`test_the_overlay_changes_only_what_scale_forces`):

* sources: no hub and no Stanford/Google download here, so the test writes small files in
  the real formats (Stanford's zip with paper.yaml's ``member``, latin-1, quoted, no header;
  Civil Comments' zip with ``all_data.csv``) and gives their sha256 and size, so they are
  verified as the real ones would be;
* the model: a 4-layer x 4-head BERT with random weights and an NSP head
  (``BertForPreTraining``, ``save_pretrained`` by the test, ``model.source: path:``), and
  so ``model.revision: null`` (a revision is for hub models only); 16 heads, so every paper
  rate prunes a different number of heads and 95% keeps exactly one;
* sizes and generations: GA population 4 over 2 generations, MCAP's episodes and maps,
  LDA's topic counts, the benchmark's repeats, the bootstrap's resamples;
* seeds: 2 search seeds and 2 fine-tuning seeds instead of 3. A third seed adds a search
  to every pruning cell and a run to every fine-tuning cell, and takes no code path the
  second leaves untaken (two seeds already pool runs in the claims and pair the i-th mask
  with the i-th fine-tuning seed).

Everything else is paper.yaml's: the NSP scorer, ``prune.ga.workers: 4``,
``finetune.save_model: true``, every method and augmentation, the lottery selections,
``random.draws: 10``, the training recipes, the metric.

The DAG is planned as paper.yaml makes it, about 250 jobs, one per cell (9 methods x 10
rates, three augmentations for GA, Tables 4 and 6), and every cell of it is checked. The run
executes it at :data:`RUN_RATES` (a third overlay, for the run only): the reference 70 and
90, where the paper's GA claims lie (lossless up to 70%, within the allocation at 90%), and
95, which keeps one head. The other seven rates take no code path these three leave
untaken: the claims read at 50% (GA vs random, GA without augmentation) are computed as at
70% and 90% and are "not tested" here; the tiny workflow's run measures them. On 2 cores
each job costs 4-6 s of Python, torch and transformers start-up whatever its rate: all ten
rates made this one test 15 of the suite's 30 minutes, and 50% cost 20 jobs more (about a
tenth of the suite). The run's job count and wall time are printed.

The Slurm part submits the paper config's GPU rules (the NSP scorer and a GA cell at 95%)
through profiles/slurm to the local cluster of tests/test_slurm.py, whose node offers
stand-in GPUs: it checks that each got the GPU, CPUs, memory and time the profile asks
for and ran, not that CUDA was used (there is none here; tests/test_model_device.py covers the
placement logic with CUDA mocked, and runs it for real where a GPU exists).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import planned_jobs
from test_slurm import (  # the local Slurm cluster, its GPU-shaped node and its checks
    LOCAL_CLUSTER_ARGS,
    assert_allocated_as_profile,
    profile_resources,
    slurm_cluster,  # noqa: F401 (a fixture)
    submitted_via_slurm,
)

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ["Snakefile", "rules", "workflow", "config", "envs", "profiles"]
TARGETS = ["results/table5.csv", "results/claims.csv"]
# The rates the run executes (module docstring): the paper's claims' 70 and 90, and 95.
RUN_RATES = [70, 90, 95]

pytestmark = pytest.mark.workflow

# The toy model: 16 heads, so the ten paper rates prune 2, 3, 5, 6, 8, 10, 11, 13, 14, 15.
LAYERS, HEADS = 4, 4

# What the overlay may change, and why; anything else stays paper.yaml's.
ALLOWED = {
    "model.source": "no hub here: a local BERT with an NSP head",
    "model.revision": "a revision is for hub: models only (check_config)",
    "data.labelled.source": "no download here: a small file in Stanford's format",
    "data.labelled.sha256": "that file's",
    "data.labelled.size": "that file's",
    "data.extra.source": "no download here: a small file in Civil Comments' format",
    "data.extra.sha256": "that file's",
    "data.extra.size": "that file's",
    "prune.seeds": "cost: see the module docstring",
    "finetune.seeds": "cost: see the module docstring",
    "prune.ga.population": "size",
    "prune.ga.generations": "generations",
    "prune.mcap.episodes": "size",
    "prune.mcap.pattern_steps": "size",
    "prune.mcap.k": "size: instances per episode, of a 14-text lottery sample",
    "prune.mcap.seq_len": "size: the attention maps (texts here are short)",
    "compress.lda.num_topics": "size: topic counts for a few hundred texts",
    "compress.lda.passes": "size",
    "bench.warmup": "size",
    "bench.repeats": "size",
    "report.bootstrap.resamples": "size",
}


def scale_overlay(sources: dict) -> dict:
    """The overlay on config/paper.yaml: sources and model from the test, sizes shrunk."""
    return {
        "model": {"source": f"path:{sources['model']}", "revision": None},
        "data": {
            dataset: {"source": str(path), "sha256": _sha256(path), "size": path.stat().st_size}
            for dataset, path in (("labelled", sources["labelled"]), ("extra", sources["extra"]))
        },
        "prune": {
            "seeds": [0, 1],
            "ga": {"population": 4, "generations": 2},
            "mcap": {"episodes": 2, "pattern_steps": 2, "k": 8, "seq_len": 32},
        },
        "finetune": {"seeds": [0, 1]},
        "compress": {"lda": {"num_topics": [2, 4], "passes": 2}},
        "bench": {"warmup": 1, "repeats": 3},
        "report": {"bootstrap": {"resamples": 200}},
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _leaves(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


def _merged(*overlays: dict) -> dict:
    """The config as Snakemake builds it: config/config.yaml, then each overlay."""
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, overlay)
    return config


PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())


# --------------------------------------------------------------------------- the sources

POSITIVE = "love great good happy yes".split()
NEGATIVE = "hate bad sad not no".split()
FILLER = (
    "the a i you it we is was to of and in on this that my day today really very what all can get go time new one now"
).split()
N_TWEETS, N_COMMENTS = 400, 120


def sentiment140_zip(path: Path) -> dict:
    """Stanford's trainingandtestdata.zip in miniature: the training CSV (quoted, latin-1,
    no header: polarity 0/4, id, date, query, user, text; sorted by label) and the test
    CSV beside it. A few rows are broken as real files are; returns the drops expected."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_TWEETS):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(3, 10))) + list(
            rng.choice(POSITIVE if label else NEGATIVE, size=2)
        )
        rng.shuffle(words)
        text = " ".join(words) + (" caf\u00e9" if i % 50 == 0 else "")  # latin-1, not utf-8, in the file
        rows.append(
            ["4" if label else "0", str(1467810369 + i), "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", f"user{i}", text]
        )
    rows.sort(key=lambda r: r[0])
    broken = [
        ["2", "1999999001", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "neutral", "a neutral tweet"],  # bad label
        ["0", "1999999002", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "short"],  # malformed row
        ["4", "1999999003", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "empty", "   "],  # empty text
        rows[5],  # duplicate id
    ]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows + broken)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(PAPER["data"]["labelled"]["member"], buf.getvalue().encode("latin-1"))
        z.writestr(
            "testdata.manual.2009.06.14.csv", b'"4","3","Mon May 11 03:17:40 UTC 2009","kindle2","tpryan","ok"\r\n'
        )
    return {
        "read": N_TWEETS + len(broken),
        "kept": N_TWEETS,
        "dropped": {"bad label": 1, "malformed row": 1, "empty text": 1, "duplicate id": 1},
    }


def civil_comments_zip(path: Path) -> dict:
    """civil_comments_v1.2.zip in miniature: all_data.csv with the text in comment_text
    among other columns, a comment over several lines and an empty one."""
    rng = np.random.default_rng(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "comment_text", "split", "created_date", "toxicity", "severe_toxicity"])
    for i in range(N_COMMENTS):
        text = " ".join(rng.choice(FILLER + POSITIVE + NEGATIVE, size=rng.integers(4, 14)))
        if i == 3:
            text += "\nand a second line"
        writer.writerow([239575 + i, text, "train", "2015-09-29 10:50:41.987077+00", "0.0", "0.0"])
    writer.writerow([999999, "", "train", "2015-09-29 10:50:41.987077+00", "0.0", "0.0"])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("all_data.csv", buf.getvalue())
    return {"read": N_COMMENTS + 1, "kept": N_COMMENTS, "dropped": {"empty text": 1}}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The local sources and model, written once for the local and the Slurm run."""
    from safetensors import safe_open

    from lotteryprune.model.sources import tiny_bert

    d = tmp_path_factory.mktemp("paper-sources")
    out = {"labelled": d / "trainingandtestdata.zip", "extra": d / "civil_comments_v1.2.zip", "model": d / "bert"}
    out["labelled_report"] = sentiment140_zip(out["labelled"])
    out["extra_report"] = civil_comments_zip(out["extra"])
    tiny_bert(out["model"], layers=LAYERS, heads=HEADS, seed=0)  # BertForPreTraining.save_pretrained
    with safe_open(str(out["model"] / "model.safetensors"), "pt") as f:
        assert "cls.seq_relationship.weight" in set(f.keys()), "the model has no NSP head"
    return out


def _workdir(dest: Path, sources: dict) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "config" / "toy.yaml").write_text(yaml.safe_dump(scale_overlay(sources), sort_keys=False))
    (dest / "config" / "run-rates.yaml").write_text(yaml.safe_dump({"prune": {"rates": RUN_RATES}}))
    return dest


CONFIG_ARGS = ["--configfile", "config/paper.yaml", "config/toy.yaml"]  # last: it takes several files
RUN_ARGS = [*CONFIG_ARGS, "config/run-rates.yaml"]


def _snakemake(
    workdir: Path, *args: str, config: list[str] = RUN_ARGS, timeout: int = 3600
) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.run(
        [SNAKEMAKE, *args, *config], cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    return proc


def _planned(workdir: Path, config: list[str]) -> dict[str, int]:
    return planned_jobs(_snakemake(workdir, *TARGETS, "--cores", "2", "-n", "--quiet", "rules", config=config).stdout)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, sources):
    """The paper grid as planned (every rate), then the run at RUN_RATES."""
    workdir = _workdir(tmp_path_factory.mktemp("paper"), sources)
    planned = _planned(workdir, CONFIG_ARGS)
    run = _planned(workdir, RUN_ARGS)
    start = time.perf_counter()
    _snakemake(workdir, *TARGETS, "--cores", "2")
    seconds = time.perf_counter() - start
    print(
        f"\npaper config at toy scale: {sum(planned.values())} jobs planned, {sum(run.values())} run "
        f"(rates {RUN_RATES}) in {seconds:.0f} s wall ({run})"
    )
    return workdir, planned


def _heads_pruned(rate: int) -> int:
    return min(round(rate / 100 * LAYERS * HEADS), LAYERS * HEADS - 1)


# --------------------------------------------------------------------------- what is run


def test_the_overlay_changes_only_what_scale_forces(tmp_path):
    fake = {"labelled": tmp_path / "a.zip", "extra": tmp_path / "b.zip", "model": tmp_path / "bert"}
    for name in ("labelled", "extra"):
        fake[name].write_bytes(b"x")
    overlay = scale_overlay(fake)
    assert set(_leaves(overlay)) <= set(ALLOWED), set(_leaves(overlay)) - set(ALLOWED)
    paper, toy = _merged(PAPER), _merged(PAPER, overlay)
    changed = {k for k, v in _leaves(toy).items() if _leaves(paper).get(k, object()) != v}
    assert changed <= set(ALLOWED), changed - set(ALLOWED)
    # what the issue names, as paper.yaml has it
    for key in (
        "zeroshot.scorer",
        "zeroshot.dtype",
        "prune.ga.workers",
        "finetune.save_model",
        "prune.rates",
        "prune.methods",
        "finetune.methods",
        "finetune.augmentations",
        "select.selectors",
        "select.rates",
        "select.default",
        "compress.methods",
        "data.labelled.format",
        "data.labelled.member",
        "data.extra.format",
        "data.extra.member",
        "prune.random.draws",
        "prune.train.lr",
        "finetune.train.epochs",
        "metric",
        "dtype",
        "device",
        "model.max_length",
        "prune.fitness_valid_size",
        "data.max_labelled",
        "data.max_extra",
    ):
        assert _leaves(toy)[key] == _leaves(paper)[key], key
    assert toy["zeroshot"]["scorer"] == "nsp" and toy["prune"]["ga"]["workers"] > 1
    assert toy["finetune"]["save_model"] is True and 95 in toy["prune"]["rates"]
    assert len(toy["prune"]["seeds"]) > 1 and len(toy["finetune"]["seeds"]) > 1
    # the toy model's 16 heads give every paper rate its own head count; 95% keeps one
    assert len({_heads_pruned(r) for r in PAPER["prune"]["rates"]}) == len(PAPER["prune"]["rates"])
    assert _heads_pruned(95) == LAYERS * HEADS - 1
    # the run's rates are paper rates, and hold every rate a claim reads
    assert set(RUN_RATES) <= set(PAPER["prune"]["rates"])
    from lotteryprune.report.tables import REPORTED

    ga_claim = next(c for c in REPORTED if c["method"].startswith("ga "))
    assert {PAPER["report"]["reference_rate"], ga_claim["lossless_rate"], ga_claim["within_rate"]} <= set(RUN_RATES)
    assert max(PAPER["prune"]["rates"]) in RUN_RATES
    # and the result is a valid config
    from snakemake.utils import validate

    from lotteryprune.config import check_config

    validate(toy, str(ROOT / "config" / "schema.yaml"))
    check_config(toy)


def test_every_cell_of_the_paper_grid_was_planned(paper_run):
    _, planned = paper_run
    rates, methods = PAPER["prune"]["rates"], PAPER["prune"]["methods"]
    selections = len(PAPER["select"]["selectors"]) * len(PAPER["select"]["rates"])
    augmented = len(PAPER["finetune"]["augmentations"])
    compressors = len(PAPER["compress"]["methods"])
    assert planned["prune"] == len(methods) * len(rates) + selections - 1
    # figure 7's cells, Table 4's other compressors (GA at 70%), Table 6's other selections
    assert (
        planned["finetune"]
        == (len(methods) - 1 + augmented) * len(rates) + (compressors + 1 - augmented) + selections - 1
    )
    assert planned["finetune_reference"] == augmented
    assert planned["bench_inference"] == len(methods)
    assert planned["zeroshot"] == 2 and planned["compress"] == compressors


# --------------------------------------------------------------------------- what came out


def test_tables_and_claims_cover_every_method_rate_and_seed(paper_run):
    workdir, _ = paper_run
    results = workdir / "results"
    toy = yaml.safe_load((workdir / "config" / "toy.yaml").read_text())
    t5 = pd.read_csv(results / "table5.csv")
    measured = t5[t5["source"] == "measured"]
    assert set(measured["method"]) == set(PAPER["prune"]["methods"])
    # every augmentation at every rate; Table 4's other compressions (GA at 70%) add rows of their own
    assert set(measured.loc[measured["method"] == "ga", "augmentation"]) >= set(PAPER["finetune"]["augmentations"])
    assert set(measured["data"]) == {"sentiment140"}
    for _, row in measured.iterrows():
        counts = dict(item.replace("%", "").split(":") for item in str(row["runs"]).split())  # "10%:2 20%:2 ..."
        table4_only = row["augmentation"] not in PAPER["finetune"]["augmentations"]
        expected_rates = [PAPER["report"]["reference_rate"]] if table4_only else RUN_RATES
        assert sorted(int(r) for r in counts) == sorted(expected_rates), (row["method"], row["augmentation"])
        runs = PAPER["prune"]["random"]["draws"] if row["method"] == "random" else len(toy["prune"]["seeds"])
        assert set(counts.values()) == {str(runs)}, (row["method"], row["runs"])
    for table in ("table4.csv", "table5.csv", "table6.csv"):
        for files in pd.read_csv(results / table)["files"].dropna():
            for f in str(files).split(";"):
                assert (workdir / f).is_file(), f"{table} names {f}, which does not exist"
    t4 = pd.read_csv(results / "table4.csv")
    assert len(t4) >= len(PAPER["compress"]["methods"]) + 1
    t6 = pd.read_csv(results / "table6.csv")
    assert len(t6) == len(PAPER["select"]["selectors"]) * len(PAPER["select"]["rates"])
    claims = pd.read_csv(results / "claims.csv")
    assert len(claims) >= 8
    assert set(claims["verdict"]) <= {"held", "not held", "inconclusive", "not tested", "not held (collapsed runs)"}
    for _, claim in claims.iterrows():  # a claim at a rate the run measured is decided on its runs
        rates = {r for r in PAPER["prune"]["rates"] if f"at {r}%" in claim["claim"]}
        if rates and rates <= set(RUN_RATES):
            assert claim["verdict"] != "not tested" and claim["runs_a"] > 0, claim["claim"]


def test_sources_were_verified_and_parsed_in_their_formats(paper_run, sources):
    workdir, _ = paper_run
    data = workdir / "results" / "data"
    for dataset in ("labelled", "extra"):
        provenance = yaml.safe_load((data / "raw" / f"{dataset}.provenance.json").read_text())
        assert provenance["verified"] is True and provenance["sha256"] == _sha256(sources[dataset])
        report = yaml.safe_load((data / f"{dataset}.report.json").read_text())
        expected = sources[f"{dataset}_report"]
        assert report["format"] == PAPER["data"][dataset]["format"]
        assert (report["read"], report["kept"], report["dropped"]) == (
            expected["read"],
            expected["kept"],
            expected["dropped"],
        )
    labelled = pd.read_parquet(data / "labelled.parquet")
    assert set(labelled["label"]) == {0, 1} and set(labelled["source"]) == {"sentiment140"}
    assert labelled["text"].str.contains("caf\u00e9").any()  # latin-1 read as latin-1
    extra = pd.read_parquet(data / "extra.parquet")
    assert extra["label"].isna().all() and extra["text"].str.contains("\n").any()


def test_zero_shot_scores_came_from_the_nsp_head(paper_run):
    from lotteryprune.model.device import inference_dtype

    workdir, _ = paper_run
    for dataset in ("labelled", "extra"):
        info = yaml.safe_load((workdir / "results" / "zeroshot" / "raw" / f"{dataset}.json").read_text())
        assert info["config"]["zeroshot"]["scorer"] == "nsp"
        assert info["device"] == "cpu"
        assert info["dtype"] == str(inference_dtype(PAPER["zeroshot"]["dtype"], "cpu")).removeprefix("torch.")
        scores = pd.read_parquet(workdir / "results" / "zeroshot" / f"{dataset}.parquet")
        values = scores.drop(columns=[c for c in scores.columns if not pd.api.types.is_float_dtype(scores[c])])
        assert values.shape[1] == 42 and ((values >= 0) & (values <= 1)).all().all()


def test_ga_ran_its_parallel_workers_at_every_run_rate(paper_run):
    from lotteryprune.model.heads import load_mask_set

    workdir, _ = paper_run
    toy = yaml.safe_load((workdir / "config" / "toy.yaml").read_text())
    workers = PAPER["prune"]["ga"]["workers"]
    for rate in RUN_RATES:
        cell = workdir / "results" / "prune" / "ga" / PAPER["select"]["default"] / str(rate)
        assert f"{workers} worker(s)" in (cell / "prune.log").read_text()
        masks = load_mask_set(cell / "masks.safetensors")
        assert sorted(masks) == toy["prune"]["seeds"]
        expected = _heads_pruned(rate)
        for seed, entry in masks.items():
            keep = np.asarray(entry[0], dtype=bool)
            assert int((~keep).sum()) == expected, (rate, seed)


def test_saved_models_reload_and_give_the_recorded_predictions(paper_run):
    """finetune.save_model: every run of a cell saved; the 95% GA model, reloaded with
    load_classifier, keeps one head and predicts the test split as the run recorded."""
    from lotteryprune.model.heads import layers_of
    from lotteryprune.model.sources import load_classifier, load_tokenizer
    from lotteryprune.model.training import predict_logits

    workdir, _ = paper_run
    toy = yaml.safe_load((workdir / "config" / "toy.yaml").read_text())
    cell = workdir / "results" / "finetune" / "ga" / PAPER["select"]["default"] / "95" / "none"
    pairs = [f"seed{s}-{f}" for s, f in zip(toy["prune"]["seeds"], toy["finetune"]["seeds"])]
    # (Snakemake keeps a .snakemake_timestamp in a directory output)
    assert sorted(p.name for p in (cell / "models").iterdir() if not p.name.startswith(".")) == sorted(pairs)
    predictions = pd.read_parquet(cell / "predictions.parquet")
    split = pd.read_parquet(workdir / "results" / "data" / "split.parquet")
    test = split[split["split"] == "test"]
    search_seed, finetune_seed = toy["prune"]["seeds"][0], toy["finetune"]["seeds"][0]
    model_dir = cell / "models" / f"seed{search_seed}-{finetune_seed}"
    model = load_classifier(model_dir)
    assert len(layers_of(model)) == 1  # the layers left without a head are gone
    assert layers_of(model)[0].attention.self.query.out_features == model.config.hidden_size // HEADS  # one head
    logits = predict_logits(
        model,
        load_tokenizer(model_dir),
        test["text"].tolist(),
        max_length=PAPER["model"]["max_length"],
        dtype=_merged(PAPER)["dtype"],
    )
    run = predictions[(predictions["search_seed"] == search_seed) & (predictions["finetune_seed"] == finetune_seed)]
    assert run["id"].tolist() == test["id"].astype(str).tolist()
    assert np.array_equal(logits.argmax(1), run["pred"].to_numpy())


# --------------------------------------------------------------------------- on Slurm

# The paper config's GPU rules, submitted through profiles/slurm: the NSP scorer and a GA
# cell (4 workers) at 95%, with what they need (data, model, lottery sample) before them.
SLURM_TARGETS = [
    "results/zeroshot/raw/labelled.parquet",
    f"results/prune/ga/{PAPER['select']['default']}/95/masks.safetensors",
]


@pytest.mark.slurm
def test_paper_config_gpu_rules_on_slurm(slurm_cluster, tmp_path, sources):  # noqa: F811 (the fixture)
    """``snakemake --profile profiles/slurm --configfile config/paper.yaml`` (plus the toy
    overlay) on the GPU-shaped node of tests/test_slurm.py: every job a Slurm job, the GPU
    rules allocated the GPU, CPUs, memory and time profiles/slurm gives them."""
    workdir = _workdir(tmp_path / "repo", sources)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *SLURM_TARGETS,
            "--profile",
            "profiles/slurm",
            *LOCAL_CLUSTER_ARGS,
            *CONFIG_ARGS,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env={**slurm_cluster, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    for target in SLURM_TARGETS:
        assert (workdir / target).stat().st_size > 0, target
    resources = profile_resources()
    for rule in ("zeroshot", "prune"):
        assert int(resources[rule].get("gpu", 0)) == 1, f"profiles/slurm gives {rule} no GPU"
        for jobid in submitted_via_slurm(workdir, rule, slurm_cluster):
            assert_allocated_as_profile(jobid, rule, slurm_cluster)
    for rule in ("download", "normalise", "split", "pretrained_model", "select"):
        for jobid in submitted_via_slurm(workdir, rule, slurm_cluster):
            assert_allocated_as_profile(jobid, rule, slurm_cluster)  # and no GPU
    cell = workdir / Path(SLURM_TARGETS[1]).parent
    assert f"{PAPER['prune']['ga']['workers']} worker(s)" in (cell / "prune.log").read_text()
    info = yaml.safe_load((workdir / "results/zeroshot/raw/labelled.json").read_text())
    assert info["config"]["zeroshot"]["scorer"] == "nsp"
