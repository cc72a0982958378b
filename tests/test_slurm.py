"""The workflow runs on Slurm through profiles/slurm, on a real single-node cluster.

tests/slurm/cluster.sh starts munged, slurmctld and slurmd on localhost (root, Debian's
slurm-wlm; tests/slurm/install.sh installs them). Three checks go through it: a
self-contained one-rule workflow (the Slurm machinery alone), a GPU rule's request as
profiles/slurm makes it, and a small target of the real pipeline. The node is GPU-shaped
(:data:`GPU_NODE`): it offers stand-in GPUs and the CPUs and memory the profile asks of a
GPU node, so a job asking ``--gpus=1`` is accepted and runs (on the CPU) and the test reads
what was allocated. tests/test_paper_config.py submits config/paper.yaml's GPU rules to it.
The profile's static checks at the top need no cluster.

Every subprocess has a timeout, and the cluster is stopped whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# The pipeline target submitted to Slurm: the data stage on config/tiny.yaml.
SLURM_TARGET = "results/data/split.parquet"
SLURM_CONFIG = "config/tiny.yaml"

# The rule names profiles/slurm may configure (the workflow's stages).
RULE_NAMES = {
    m.group(1)
    for smk in (ROOT / "rules").glob("*.smk")
    for m in re.finditer(r"^rule (\w+):", smk.read_text(), re.MULTILINE)
}

# Settings for this throwaway cluster only, given on the command line so the profile
# stays site-neutral: it has no accounting, so sacct (the plugin's default status
# command) would hang; squeue sees finished jobs for MinJobAge=600 s. Logs of
# successful jobs are kept so the test can read them.
LOCAL_CLUSTER_ARGS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]

# Repo paths a pipeline run in a scratch copy needs (outputs and caches stay behind).
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".snakemake",
    "results",
    "resources",
    "logs",
    "benchmarks",
    ".pytest_cache",
    "__pycache__",
    "*.egg-info",
    ".tmp",
)


def run(cmd, *, cwd, timeout, env=None) -> subprocess.CompletedProcess:
    """Run cmd with a hard timeout; on expiry kill its whole process group, then fail."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout}s: {' '.join(map(str, cmd))}\n{out[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)


def snakemake_env() -> dict[str, str]:
    env = dict(os.environ)
    # A profile from the caller's environment would change what is tested.
    env.pop("SNAKEMAKE_PROFILE", None)
    # conftest's stand-in for the suite's local runs; the cluster's config is at the default path.
    env.pop("SLURM_CONF", None)
    # slurm-wlm's tools live in /usr/sbin on Debian, often absent from a user PATH.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}:/usr/sbin:/usr/bin"
    return env


# ---------------------------------------------------------------------------
# Static checks of the profiles (no cluster needed).


def parse_profile(name: str) -> dict:
    from snakemake.profiles import ProfileConfigFileParser

    with open(ROOT / "profiles" / name / "config.yaml") as f:
        return dict(ProfileConfigFileParser().parse(f))


def test_default_profile_is_executor_neutral():
    prof = parse_profile("default")
    # profiles/default overrides --profile per key, so these would leak into Slurm runs.
    for key in (
        "executor",
        "cores",
        "jobs",
        "default-resources",
        "set-resources",
        "set-threads",
        "software-deployment-method",
        "use-conda",
    ):
        assert key not in prof, f"profiles/default sets {key!r}, which would override profiles/slurm"


def test_slurm_profile_resources(monkeypatch):
    monkeypatch.delenv("LOTTERYPRUNE_SLURM_PARTITION", raising=False)
    monkeypatch.delenv("LOTTERYPRUNE_SLURM_ACCOUNT", raising=False)
    prof = parse_profile("slurm")
    assert prof["executor"] == "slurm"
    assert not any(r.startswith(("slurm_partition=", "slurm_account=")) for r in prof["default-resources"]), (
        "site settings hard-coded"
    )
    # A default cpus_per_task would override every rule's threads.
    assert not any(r.startswith("cpus_per_task=") for r in prof["default-resources"])

    res: dict[str, dict[str, str]] = {}
    for item in prof["set-resources"]:
        rule, kv = item.split(":", 1)
        key, value = kv.split("=", 1)
        res.setdefault(rule, {})[key] = value
    assert set(res) <= RULE_NAMES, f"unknown rules in set-resources: {set(res) - RULE_NAMES}"
    for rule in ("zeroshot", "embed", "prune", "finetune", "bench_inference"):
        assert res[rule].get("gpu") == "1", f"{rule}: no GPU in profiles/slurm"
    for rule, r in res.items():
        assert {"mem_mb", "runtime", "cpus_per_task"} <= set(r), f"{rule}: {r}"

    # Threads and the CPUs asked of Slurm agree, so a job uses what it was given.
    threads = dict(item.split("=", 1) for item in prof.get("set-threads", []))
    for rule, r in res.items():
        assert threads.get(rule, "1") == r["cpus_per_task"], rule


def test_slurm_profile_site_from_environment(monkeypatch):
    monkeypatch.setenv("LOTTERYPRUNE_SLURM_PARTITION", "gpu-a100")
    monkeypatch.setenv("LOTTERYPRUNE_SLURM_ACCOUNT", "proj42")
    prof = parse_profile("slurm")
    assert "slurm_partition=gpu-a100" in prof["default-resources"]
    assert "slurm_account=proj42" in prof["default-resources"]


def profile_resources(prof: dict | None = None) -> dict[str, dict[str, str]]:
    """profiles/slurm's set-resources as {rule: {resource: value}}."""
    prof = prof if prof is not None else parse_profile("slurm")
    res: dict[str, dict[str, str]] = {}
    for item in prof["set-resources"]:
        rule, kv = item.split(":", 1)
        key, value = kv.split("=", 1)
        res.setdefault(rule, {})[key] = value
    return res


GPU_RULES = ("zeroshot", "embed", "prune", "finetune", "finetune_reference", "bench_inference")


class _Resources(dict):
    """A job's resources as the plugin reads them (``.get`` and attribute access)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


def sbatch_call(rule: str, resources: dict[str, str], threads: int) -> str:
    """The sbatch command snakemake-executor-plugin-slurm builds for a job of ``rule`` with
    these resources (its own functions, as its run_job calls them)."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    values = _Resources({k: (int(v) if v.lstrip("-").isdigit() else v.strip("'\"")) for k, v in resources.items()})
    job = SimpleNamespace(name=rule, resources=values, threads=threads, is_group=lambda: False)
    validate_slurm_extra(job)
    params = {
        "run_uuid": "uuid",
        "slurm_logfile": "log",
        "comment_str": f"rule_{rule}",
        "account": "",
        "partition": "",
        "workdir": ".",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_slurm_profile_gpu_rules_ask_for_a_gpu_as_the_plugin_expects(monkeypatch):
    """``gpu: 1`` is the plugin's own GPU resource: it becomes ``--gpus=1`` next to the
    rule's CPUs, memory and time; rules without it ask for no GPU. (``gres`` would be the
    other way, never with ``gpu``; --gres/--gpus inside slurm_extra are refused.)"""
    monkeypatch.delenv("LOTTERYPRUNE_SLURM_PARTITION", raising=False)
    monkeypatch.delenv("LOTTERYPRUNE_SLURM_ACCOUNT", raising=False)
    prof = parse_profile("slurm")
    threads = dict(item.split("=", 1) for item in prof.get("set-threads", []))
    for rule, r in profile_resources(prof).items():
        call = sbatch_call(rule, r, int(threads.get(rule, 1)))
        assert f"--cpus-per-task={r['cpus_per_task']}" in call, call
        assert f"--mem {r['mem_mb']}" in call and f"-t {r['runtime']}" in call, call
        if rule in GPU_RULES:
            assert not ("gpu" in r and "gres" in r), f"{rule}: gpu and gres are mutually exclusive"
            assert re.search(r"--gpus=1\b", call), f"{rule}: no GPU in {call}"
        else:
            assert "--gpus" not in call and "--gres" not in call, f"{rule}: {call}"


def test_slurm_profile_gpu_override_for_a_cpu_only_cluster():
    """docs/slurm.md's CPU-only override: gpu=0 submits no GPU request."""
    r = {**profile_resources()["prune"], "gpu": "0"}
    call = sbatch_call("prune", r, 8)
    assert "--gpus" not in call and "--gres" not in call and "--cpus-per-task=8" in call


# ---------------------------------------------------------------------------
# A real cluster.


def slurm_skip_reason() -> str | None:
    if not shutil.which("slurmctld", path=f"{os.environ.get('PATH', '')}:/usr/sbin"):
        return "slurmctld not installed (run tests/slurm/install.sh)"
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root"
    return None


def gpu_node() -> dict[str, str]:
    """cluster.sh settings for a node that can take any job profiles/slurm submits: two
    stand-in GPUs, and twice the largest per-rule CPUs and memory (so two GPU jobs fit at
    once), whatever this machine has; the jobs share its real cores."""
    res = profile_resources()
    cpus = max(int(r["cpus_per_task"]) for r in res.values())
    mem = max(int(r["mem_mb"]) for r in res.values())
    return {
        "LP_SLURM_GPUS": "2",
        "LP_SLURM_CPUS": str(max(os.cpu_count() or 1, 2 * cpus)),
        "LP_SLURM_MEM_MB": str(2 * mem),
    }


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node cluster with a GPU-shaped node (:func:`gpu_node`); yields the
    environment to run Slurm's tools and Snakemake with."""
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(reason)
    env = snakemake_env()
    started = run(["bash", str(CLUSTER), "start"], cwd=ROOT, timeout=120, env={**env, **gpu_node()})
    try:
        if started.returncode != 0:
            pytest.fail(f"cluster.sh start failed:\n{started.stdout}")
        yield env
    finally:
        run(["bash", str(CLUSTER), "stop"], cwd=ROOT, timeout=60, env=env)


def slurm_jobs(env) -> dict[str, tuple[str, str]]:
    """{job id: (state, comment)} for every job slurmctld still remembers."""
    out = run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%k"], cwd=ROOT, timeout=30, env=env)
    assert out.returncode == 0, out.stdout
    jobs = {}
    for line in out.stdout.splitlines():
        jobid, state, comment = line.split("|", 2)
        jobs[jobid] = (state, comment)
    return jobs


def slurm_job(jobid: str, env) -> dict[str, str]:
    """``scontrol show job``'s fields of a job slurmctld still remembers (MinJobAge)."""
    out = run(["scontrol", "show", "job", "-o", str(jobid)], cwd=ROOT, timeout=30, env=env)
    assert out.returncode == 0, out.stdout
    return dict(re.findall(r"(\w[\w:/]*)=(\S*)", out.stdout))


def minutes(time_limit: str) -> int:
    """Slurm's [days-]hours:minutes:seconds as minutes."""
    days, _, clock = time_limit.rpartition("-")
    h, m, _s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m


def assert_allocated_as_profile(jobid: str, rule: str, env) -> dict[str, str]:
    """The job got what profiles/slurm asks for ``rule``: its GPU (or none), CPUs, memory
    and time limit, as Slurm recorded them."""
    wanted = profile_resources()[rule]
    job = slurm_job(jobid, env)
    gpus = int(wanted.get("gpu", 0))
    tres = job.get("TresPerJob", "")
    if gpus:
        assert re.fullmatch(rf"(gres:)?gpu:{gpus}", tres), f"job {jobid} ({rule}): TresPerJob={tres!r}"
    else:
        assert "gpu" not in tres, f"job {jobid} ({rule}): TresPerJob={tres!r}"
    assert job["NumCPUs"] == wanted["cpus_per_task"], f"job {jobid} ({rule}): NumCPUs={job['NumCPUs']}"
    assert int(job["MinMemoryNode"].rstrip("M")) >= int(wanted["mem_mb"]), job["MinMemoryNode"]
    assert minutes(job["TimeLimit"]) == int(wanted["runtime"]), job["TimeLimit"]
    return job


def submitted_via_slurm(workdir: Path, rule: str, env) -> list[str]:
    """Slurm job ids that ran `rule`, checked against the plugin's logs and squeue."""
    logdir = workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}"
    logs = sorted(logdir.rglob("*.log")) if logdir.is_dir() else []
    assert logs, f"no Slurm log for rule {rule} under {logdir}"
    ids = [p.stem for p in logs]
    jobs = slurm_jobs(env)
    for jobid in ids:
        assert jobid in jobs, f"job {jobid} (rule {rule}) unknown to squeue: {jobs}"
        state, comment = jobs[jobid]
        assert state == "COMPLETED", f"job {jobid}: {state}"
        assert f"rule_{rule}" in comment, f"job {jobid}: comment {comment!r}"
    return ids


@pytest.mark.slurm
def test_slurm_runs_a_minimal_workflow(slurm_cluster, tmp_path):
    """The Slurm machinery alone: a one-rule workflow through profiles/slurm."""
    env = dict(slurm_cluster, LOTTERYPRUNE_SLURM_PARTITION="debug")  # the profile's env hook
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent("""\
        rule hello:
            output: "results/hello.txt"
            shell: "echo job=$SLURM_JOB_ID partition=$SLURM_JOB_PARTITION host=$(hostname) > {output}"
        """)
    )
    # The target goes before the options: after a list option such as
    # --default-resources it would be swallowed as one more value.
    proc = run(
        SNAKEMAKE + ["results/hello.txt", "--profile", "profiles/slurm", *LOCAL_CLUSTER_ARGS],
        cwd=tmp_path,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    text = (tmp_path / "results/hello.txt").read_text()
    m = re.search(r"job=(\d+) partition=debug ", text)
    assert m, f"not written inside a Slurm job on partition debug: {text!r}"
    assert submitted_via_slurm(tmp_path, "hello", env) == [m.group(1)]


@pytest.mark.slurm
def test_slurm_gpu_rule_gets_a_gpu(slurm_cluster, tmp_path):
    """A rule the profile gives a GPU (``zeroshot``: gpu 1, 8 CPUs, 32000 MB, 1440 min), in a
    one-rule workflow: Slurm allocates exactly that, and the job sees the GPU Slurm gave it
    (CUDA_VISIBLE_DEVICES, GPUs numbered from 0 inside the job)."""
    env = dict(slurm_cluster, LOTTERYPRUNE_SLURM_PARTITION="debug")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent("""\
        rule zeroshot:
            output: "results/gpu.txt"
            shell: "echo job=$SLURM_JOB_ID cuda=$CUDA_VISIBLE_DEVICES cpus=$SLURM_CPUS_PER_TASK > {output}"
        """)
    )
    proc = run(
        SNAKEMAKE + ["results/gpu.txt", "--profile", "profiles/slurm", *LOCAL_CLUSTER_ARGS],
        cwd=tmp_path,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    text = (tmp_path / "results/gpu.txt").read_text()
    m = re.search(r"job=(\d+) cuda=(\S+) cpus=(\d+)", text)
    assert m, f"no GPU visible in the job: {text!r}"
    assert m.group(2) in ("0", "1") and m.group(3) == profile_resources()["zeroshot"]["cpus_per_task"]
    (jobid,) = submitted_via_slurm(tmp_path, "zeroshot", env)
    assert jobid == m.group(1)
    assert_allocated_as_profile(jobid, "zeroshot", env)


@pytest.mark.slurm
def test_slurm_runs_pipeline_target(slurm_cluster, tmp_path):
    """A small target of the real pipeline, submitted job by job through Slurm."""
    missing = [p for p in ("Snakefile", "rules/data.smk", SLURM_CONFIG) if not (ROOT / p).exists()]
    if missing:
        pytest.skip(f"the data stage is not there yet (missing {', '.join(missing)})")
    # A scratch copy, so the run neither reuses nor touches the checkout's results/.
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=COPY_IGNORE, symlinks=True)
    proc = run(
        SNAKEMAKE + [SLURM_TARGET, "--profile", "profiles/slurm", "--configfile", SLURM_CONFIG, *LOCAL_CLUSTER_ARGS],
        cwd=work,
        timeout=480,
        env=slurm_cluster,
    )
    assert proc.returncode == 0, proc.stdout[-8000:]
    target = work / SLURM_TARGET
    assert target.is_file() and target.stat().st_size > 0, f"{SLURM_TARGET} not written"
    # The rule that writes the target ran as a Slurm job, not on the submit host.
    submitted_via_slurm(work, "split", slurm_cluster)
