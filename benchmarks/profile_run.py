"""Where a run's time went: job minutes per rule and per stage, from Snakemake's benchmark files.

    .venv/bin/python benchmarks/profile_run.py [--results results] [--wall SECONDS]

Every rule writes ``results/benchmarks/<rule>/...tsv`` (its ``benchmark:`` directive); each
holds the job's wall time (``s``) and CPU time. This sums them per rule and per stage (the
rule file a rule lives in) and prints a Markdown table for docs/performance.md. With the
run's wall time (``--wall``), it also prints how well the cores were used.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def rule_stages() -> dict[str, str]:
    """rule name -> the stage (rules/<stage>.smk) it is defined in."""
    out = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name in re.findall(r"^rule (\w+):", smk.read_text(), re.MULTILINE):
            out[name] = smk.stem
    return out


def benchmark_dir_rule(path: Path, root: Path, stages: dict[str, str]) -> str:
    """The rule a benchmark file belongs to: its first directory under results/benchmarks."""
    first = path.relative_to(root).parts[0]
    aliases = {"bench": "bench_inference", "model": "pretrained_model", "report": None}
    if first in stages:
        return first
    if first == "report":
        return path.stem  # report/tables.tsv, report/figures.tsv
    if first == "finetune" and path.relative_to(root).parts[1] == "unpruned":
        return "finetune_reference"
    return aliases.get(first) or first


def profile(results: Path) -> pd.DataFrame:
    root = results / "benchmarks"
    stages = rule_stages()
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        frame = pd.read_csv(tsv, sep="\t")
        rule = benchmark_dir_rule(tsv, root, stages)
        rows.append(
            {
                "rule": rule,
                "stage": stages.get(rule, "?"),
                "seconds": float(frame["s"].iloc[-1]),
                "cpu_seconds": float(frame["cpu_time"].iloc[-1]) if "cpu_time" in frame else float("nan"),
            }
        )
    if not rows:
        raise SystemExit(f"{root}: no benchmark files (run the workflow first)")
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--wall", type=float, default=None, help="the run's wall time in seconds")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    jobs = profile(Path(args.results))
    total = jobs["seconds"].sum()
    by_rule = (
        jobs.groupby(["stage", "rule"])
        .agg(jobs=("seconds", "size"), minutes=("seconds", lambda s: s.sum() / 60), mean_s=("seconds", "mean"))
        .reset_index()
    )
    by_stage = (
        jobs.groupby("stage").agg(jobs=("seconds", "size"), minutes=("seconds", lambda s: s.sum() / 60)).reset_index()
    )
    print("| stage | rule | jobs | job-minutes | mean s per job | share |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in by_rule.sort_values("minutes", ascending=False).itertuples():
        print(
            f"| {row.stage} | {row.rule} | {row.jobs} | {row.minutes:.1f} | {row.mean_s:.0f} | {row.minutes * 60 / total:.0%} |"
        )
    print()
    print("| stage | jobs | job-minutes | share |")
    print("| --- | --- | --- | --- |")
    for row in by_stage.sort_values("minutes", ascending=False).itertuples():
        print(f"| {row.stage} | {row.jobs} | {row.minutes:.1f} | {row.minutes * 60 / total:.0%} |")
    print(f"\n{len(jobs)} jobs, {total / 60:.1f} job-minutes in all", end="")
    if args.wall:
        print(
            f"; wall {args.wall / 60:.1f} min on {args.cores} cores: {total / (args.wall * args.cores):.0%} of the cores busy"
        )
    else:
        print()


if __name__ == "__main__":
    main()
