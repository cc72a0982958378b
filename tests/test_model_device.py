"""Where model work runs: the device a job picks, the precision ``auto`` means there, and
the GA's parallel workers, one per GPU the job sees.

These machines have no GPU, so the CUDA side is tested with ``torch.cuda`` mocked: the
logic that places work (which device, which dtype, which worker on which GPU) runs as it
would on a GPU node, only the hardware answers are faked. Nothing may assume ``cuda:0``:
a job sees its own GPUs as ``cuda:0..n-1`` (SLURM sets CUDA_VISIBLE_DEVICES), and a GA
worker's GPU must be the one it computes on and its current device.

The tests at the bottom run only where CUDA is available, and run the same paths for real.
"""

from __future__ import annotations

import copy
import queue

import numpy as np
import pytest
import torch

from conftest import GA_PARAMS, train_cfg
from lotteryprune import runtime
from lotteryprune.model.device import inference_dtype, pick_device
from lotteryprune.model.training import attention_for_training
from lotteryprune.prune import ga
from lotteryprune.prune.task import PruneTask

HAS_CUDA = torch.cuda.is_available()


# --------------------------------------------------------------------------- fake hardware


class FakeCuda:
    """What ``torch.cuda`` answers on a node with GPUs of the given compute capabilities."""

    def __init__(self, monkeypatch, capabilities=((8, 0),), current: int = 0):
        self.capabilities = [tuple(c) for c in capabilities]
        self.current = current
        self.set_device_calls: list[str] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(self.capabilities))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.capabilities))
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_device_capability", self.capability)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)
        # emulated bf16 counts as support here: inference_dtype must not rely on it
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.setattr(torch.version, "hip", None)

    def index(self, device) -> int:
        device = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        assert device.type == "cuda", device
        index = self.current if device.index is None else device.index
        assert 0 <= index < len(self.capabilities), f"{device}: not a visible device"
        return index

    def capability(self, device=None):
        return self.capabilities[self.index(device if device is not None else self.current)]

    def set_device(self, device):
        self.current = self.index(device)
        self.set_device_calls.append(str(device))


def fake_cpu_bf16(monkeypatch, amx, avx512_bf16=False):
    def probe(value):
        def answer():
            if isinstance(value, type) and issubclass(value, Exception):
                raise value("probe missing")
            return value

        return answer

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", probe(amx), raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", probe(avx512_bf16), raising=False)


# --------------------------------------------------------------------------- pick_device


def test_auto_picks_cuda_when_the_job_has_a_gpu(monkeypatch):
    FakeCuda(monkeypatch, capabilities=[(8, 0)])
    assert pick_device("auto") == torch.device("cuda")
    assert runtime.device({"device": "auto"}) == "cuda"


def test_auto_picks_cpu_without_cuda(monkeypatch):
    FakeCuda(monkeypatch, capabilities=[])
    assert pick_device("auto") == torch.device("cpu")
    assert runtime.device({"device": "auto"}) == "cpu"


def test_cpu_stays_on_cpu_on_a_gpu_node(monkeypatch):
    FakeCuda(monkeypatch, capabilities=[(9, 0), (9, 0)])
    assert pick_device("cpu") == torch.device("cpu")
    assert runtime.device({"device": "cpu"}) == "cpu"


def test_the_picked_gpu_is_the_jobs_current_device_not_a_fixed_index(monkeypatch):
    """``cuda`` without an index: whatever GPU the job sees first (its current device);
    a fixed ``cuda:0`` would be wrong once a worker has made another GPU current."""
    FakeCuda(monkeypatch, capabilities=[(8, 0), (8, 0)])
    for preference in ("auto", "cuda"):
        picked = pick_device(preference)
        assert picked.type == "cuda" and picked.index is None


# --------------------------------------------------------------------------- inference_dtype


@pytest.mark.parametrize("preference, expected", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_an_explicit_dtype_is_used_on_any_device(monkeypatch, preference, expected, device):
    FakeCuda(monkeypatch, capabilities=[(7, 0), (7, 0)])
    assert inference_dtype(preference, device) == expected


def test_an_unknown_dtype_is_named():
    with pytest.raises(ValueError, match="float16"):
        inference_dtype("float16", "cpu")


def test_auto_is_bf16_on_the_gpu_asked_about_not_on_the_current_one(monkeypatch):
    """A job that sees an old GPU (cuda:0, Volta) and a new one (cuda:1, Ampere)."""
    cuda = FakeCuda(monkeypatch, capabilities=[(7, 0), (8, 0)], current=0)
    assert inference_dtype("auto", "cuda:1") == torch.bfloat16
    assert inference_dtype("auto", "cuda:0") == torch.float32
    assert inference_dtype("auto", torch.device("cuda", 1)) == torch.bfloat16
    # `cuda` alone is the current device
    assert inference_dtype("auto", "cuda") == torch.float32
    cuda.current = 1
    assert inference_dtype("auto", "cuda") == torch.bfloat16


@pytest.mark.parametrize(
    "capability, expected",
    [
        ((7, 0), torch.float32),
        ((7, 5), torch.float32),
        ((8, 0), torch.bfloat16),
        ((8, 6), torch.bfloat16),
        ((9, 0), torch.bfloat16),
    ],
)
def test_auto_on_cuda_is_bf16_only_where_it_is_native(monkeypatch, capability, expected):
    """V100/T4 emulate bf16 (torch.cuda.is_bf16_supported() says True there): float32."""
    FakeCuda(monkeypatch, capabilities=[capability])
    assert inference_dtype("auto", "cuda") == expected


def test_auto_on_rocm_is_bf16(monkeypatch):
    FakeCuda(monkeypatch, capabilities=[(0, 0)])
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert inference_dtype("auto", "cuda") == torch.bfloat16


@pytest.mark.parametrize(
    "amx, avx512_bf16, expected",
    [
        (True, False, torch.bfloat16),
        (False, True, torch.bfloat16),
        (False, False, torch.float32),
        (AttributeError, False, torch.float32),
        (RuntimeError, False, torch.float32),
    ],
)
def test_auto_on_cpu_follows_the_bf16_probes(monkeypatch, amx, avx512_bf16, expected):
    FakeCuda(monkeypatch, capabilities=[(9, 0)])  # a GPU elsewhere changes nothing for the CPU
    fake_cpu_bf16(monkeypatch, amx, avx512_bf16)
    assert inference_dtype("auto", "cpu") == expected


def test_attention_kernel_follows_the_device_type():
    assert attention_for_training("cpu") == "eager"
    assert attention_for_training("cuda") == "sdpa"
    assert attention_for_training("cuda:3") == "sdpa"


# --------------------------------------------------------------------------- GA workers


@pytest.mark.parametrize(
    "device, workers, gpus, expected",
    [
        ("cpu", 4, 0, None),  # CPU processes sharing the job's cores
        ("cpu", 4, 4, None),  # GPUs present but the job runs on CPU
        ("cuda", 1, 4, None),  # one worker: the job's device
        ("cuda", 4, 1, None),  # one GPU: every worker on it
        ("cuda", 4, 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
        ("cuda", 2, 4, ["cuda:0", "cuda:1"]),
        ("cuda", 4, 2, ["cuda:0", "cuda:1"]),  # never more workers than GPUs
        ("cuda", 8, 3, ["cuda:0", "cuda:1", "cuda:2"]),
    ],
)
def test_worker_devices(device, workers, gpus, expected):
    assert ga.worker_devices(device, workers, gpus) == expected


@pytest.mark.parametrize("workers, gpus", [(2, 2), (4, 4), (8, 3), (3, 8)])
def test_worker_devices_are_distinct_and_index_the_jobs_visible_gpus(workers, gpus):
    """``cuda:i`` counts the job's visible devices (CUDA_VISIBLE_DEVICES=5,7 gives cuda:0 and
    cuda:1), so every index is below the visible count and no GPU gets two workers."""
    devices = ga.worker_devices("cuda", workers, gpus)
    assert len(devices) == len(set(devices)) == min(workers, gpus)
    assert all(0 <= torch.device(d).index < gpus for d in devices)


class FakeContext:
    """multiprocessing's spawn context and concurrent.futures' ProcessPoolExecutor, in
    process: each worker's initializer runs on its own copy of the task (as a spawned worker
    unpickles one); map() scores every mask with ``score`` instead of training it."""

    def __init__(self, score):
        self.score = score
        self.pools: list[dict] = []

    def Queue(self):  # noqa: N802 (multiprocessing's name)
        return queue.Queue()

    def executor(self, max_workers, mp_context=None, initializer=None, initargs=()):
        assert mp_context is self
        record = {"processes": max_workers, "workers": [], "batches": []}
        for _ in range(max_workers):
            args = [copy.deepcopy(a) if isinstance(a, PruneTask) else a for a in initargs]
            initializer(*args)
            record["workers"].append({"device": ga._WORKER_TASK.device, "threads": args[1]})
        self.pools.append(record)
        score = self.score

        class Executor:
            def map(self, fn, masks):
                masks = list(masks)
                record["batches"].append(len(masks))
                return iter([score(m) for m in masks])

            def shutdown(self, wait=True, cancel_futures=False):
                record["shut down"] = True

        return Executor()


def _ga_task(model_dir, tmp_path, *, workers, device, threads) -> PruneTask:
    (tmp_path / "work").mkdir(parents=True, exist_ok=True)
    return PruneTask(
        model_dir=model_dir,
        train_texts=["good", "bad"],
        train_labels=[1, 0],
        valid_texts=["good", "bad"],
        valid_labels=[1, 0],
        rate=50,
        train_cfg=train_cfg(),
        params={**GA_PARAMS, "workers": workers},
        seed=0,
        metric="macro_f1",
        workdir=tmp_path / "work",
        device=device,
        threads=threads,
        progress=False,
    )


def _overlap(mask) -> float:
    """A fitness without training: agreement with a fixed target mask."""
    flat = np.asarray(mask, dtype=bool).ravel()
    target = np.arange(flat.size) % 2 == 0
    return float((flat == target).mean())


def _run_with_fake_pool(monkeypatch, task):
    import concurrent.futures

    ctx = FakeContext(_overlap)
    monkeypatch.setattr(ga, "worker_context", lambda score, device: ctx)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", ctx.executor)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process keeps its threads
    monkeypatch.setattr(ga, "_WORKER_TASK", None)
    result = ga.run(task)
    return ctx, result


def test_ga_puts_one_worker_on_each_gpu_of_the_job(monkeypatch, tiny_model_dir, tmp_path):
    """paper.yaml's prune.ga.workers: 4 on a job that sees 3 GPUs: 3 workers, one per GPU,
    each GPU its worker's current device; the job's CPUs shared between them."""
    cuda = FakeCuda(monkeypatch, capabilities=[(8, 0)] * 3)
    task = _ga_task(tiny_model_dir, tmp_path, workers=4, device=runtime.device({"device": "auto"}), threads=8)
    assert task.device == "cuda"
    ctx, result = _run_with_fake_pool(monkeypatch, task)
    (pool,) = ctx.pools
    assert pool["processes"] == 3
    assert sorted(w["device"] for w in pool["workers"]) == ["cuda:0", "cuda:1", "cuda:2"]
    assert sorted(cuda.set_device_calls) == ["cuda:0", "cuda:1", "cuda:2"]
    assert all(w["threads"] == 8 // 3 for w in pool["workers"])
    # a generation is scored in batches of at most one mask per worker
    assert max(pool["batches"]) <= 3
    assert result.head_keep.shape == (3, 4) and int((~result.head_keep).sum()) == 6
    assert pool["shut down"]
    assert task.device == "cuda"  # the parent's task is untouched


def test_ga_workers_share_the_only_gpu(monkeypatch, tiny_model_dir, tmp_path):
    cuda = FakeCuda(monkeypatch, capabilities=[(8, 0)])
    task = _ga_task(tiny_model_dir, tmp_path, workers=4, device="cuda", threads=8)
    ctx, _ = _run_with_fake_pool(monkeypatch, task)
    (pool,) = ctx.pools
    assert pool["processes"] == 4
    assert [w["device"] for w in pool["workers"]] == ["cuda"] * 4
    assert cuda.set_device_calls == []  # nothing to choose: the job's one GPU is current already
    assert all(w["threads"] == 2 for w in pool["workers"])


def test_ga_workers_on_cpu_split_the_jobs_threads(monkeypatch, tiny_model_dir, tmp_path):
    cuda = FakeCuda(monkeypatch, capabilities=[(8, 0)] * 4)  # GPUs the job was told not to use
    task = _ga_task(tiny_model_dir, tmp_path, workers=4, device="cpu", threads=2)
    ctx, _ = _run_with_fake_pool(monkeypatch, task)
    (pool,) = ctx.pools
    assert pool["processes"] == 4
    assert [w["device"] for w in pool["workers"]] == ["cpu"] * 4
    assert cuda.set_device_calls == []
    assert all(w["threads"] == 1 for w in pool["workers"])


def test_ga_result_does_not_depend_on_the_gpus(monkeypatch, tiny_model_dir, tmp_path):
    """Workers change where masks are scored, never which masks are searched."""
    results = []
    for i, gpus in enumerate([0, 1, 3]):
        with monkeypatch.context() as m:
            FakeCuda(m, capabilities=[(8, 0)] * gpus)
            task = _ga_task(
                tiny_model_dir, tmp_path / str(i), workers=4 if gpus else 1, device="cuda" if gpus else "cpu", threads=4
            )
            if gpus:
                _, result = _run_with_fake_pool(m, task)
            else:
                m.setattr(ga, "score_mask", lambda task, mask: {"macro_f1": _overlap(mask)})
                result = ga.run(task)
        results.append(result)
    for other in results[1:]:
        assert np.array_equal(other.head_keep, results[0].head_keep)
        assert other.extras["best_fitness"] == results[0].extras["best_fitness"]


RUNNER = """
import sys
__file__ = {rule_script!r}  # what Snakemake's preamble does: the rule's script, not this copy
from lotteryprune.model.training import TrainConfig
from lotteryprune.prune import ga
from lotteryprune.prune.task import PruneTask

train = TrainConfig(epochs=1, lr=1e-3, batch_size=4, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0,
                    max_length=16, seed=0, dtype="float32")
params = dict(population=2, generations=1, patience=1, drop_frac=0.1, elite_frac=0.1, crossover_rate=0.5,
              smoothing=0.7, workers=2)
task = PruneTask(model_dir={model_dir!r}, train_texts=["good day", "bad day"], train_labels=[1, 0],
                 valid_texts=["good day", "bad day"], valid_labels=[1, 0], rate=50, train_cfg=train, params=params,
                 seed=0, metric="accuracy", device="cpu", threads=2, progress=False)
result = ga.run(task)
print("pruned", int((~result.head_keep).sum()), "evaluations", result.extras["evaluations"])
"""


def test_ga_workers_start_under_a_snakemake_script(tmp_path, tiny_model_dir):
    """Snakemake's ``script:`` runs a copy of the rule's script whose ``__file__`` names the
    original; a spawned worker runs its parent's main file first, so without care each GA
    worker would run workflow/scripts/prune_run.py again (NameError: no ``snakemake``; the
    multiprocessing pool then restarted the worker forever and the job never ended)."""
    import subprocess
    import sys

    rule_script = tmp_path / "prune_run.py"
    rule_script.write_text("raise SystemExit('the rule script ran again in a GA worker')\n")
    runner = tmp_path / "tmp_snakemake_copy.prune_run.py"
    runner.write_text(RUNNER.format(rule_script=str(rule_script), model_dir=tiny_model_dir))
    proc = subprocess.run(
        [sys.executable, str(runner)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ran again" not in proc.stderr
    assert "pruned 6 evaluations 2" in proc.stdout


# --------------------------------------------------------------------------- on a real GPU


needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")


def _probe(_):
    """Run in a GA worker: the device its task was given and its current CUDA device."""
    return ga._WORKER_TASK.device, torch.cuda.current_device()


@needs_cuda
def test_gpu_auto_dtype_matches_the_hardware():
    expected = torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float32
    assert inference_dtype("auto", pick_device("auto")) == expected
    for i in range(torch.cuda.device_count()):
        native = torch.cuda.get_device_capability(i)[0] >= 8
        assert inference_dtype("auto", f"cuda:{i}") == (torch.bfloat16 if native else torch.float32)


@needs_cuda
def test_gpu_training_and_scoring_run_in_the_auto_precision(tiny_model_dir):
    """score_mask (the GA's fitness and every method's final score) on the job's GPU with
    dtype auto: bf16 autocast on Ampere and later."""
    from lotteryprune.prune.score import score_mask

    texts = ["i love this great day", "i hate this bad day"] * 8
    labels = [1, 0] * 8
    task = PruneTask(
        model_dir=tiny_model_dir,
        train_texts=texts,
        train_labels=labels,
        valid_texts=texts,
        valid_labels=labels,
        rate=50,
        train_cfg=train_cfg(dtype="auto", epochs=1),
        params={},
        seed=0,
        metric="macro_f1",
        device=runtime.device({"device": "auto"}),
        progress=False,
    )
    keep = np.ones((3, 4), dtype=bool)
    keep[0, :2] = False
    metrics = score_mask(task, keep)
    assert 0.0 <= metrics["macro_f1"] <= 1.0


@needs_cuda
def test_gpu_nsp_scores_agree_with_cpu(tiny_model_dir, tmp_path):
    """The paper's 0-shot scorer on the GPU in bf16 (auto) against float32 on the CPU."""
    from lotteryprune.zeroshot import ZeroShotConfig, make_scorer
    from lotteryprune.zeroshot.emotions import Emotions

    emotions = Emotions(("happy", "good"), ("sad", "bad"))
    texts = ["i love this day", "this is bad", "what a great time", "so sad today"]
    scores = {}
    for device, dtype in (("cpu", "float32"), ("cuda", "auto")):
        cfg = ZeroShotConfig(
            scorer="nsp", template="This example is {label}.", batch_size=8, chunk_size=64, max_length=32, dtype=dtype
        ).resolved(device)
        scores[device] = make_scorer(tiny_model_dir, emotions, cfg, device=device, progress=False).score_raw(texts)
    assert np.allclose(scores["cpu"], scores["cuda"], atol=2e-2)


@needs_cuda
@pytest.mark.skipif(HAS_CUDA and torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_gpu_workers_each_own_one_gpu(tiny_model_dir, tmp_path):
    """Spawned GA workers as ga.run starts them: each on its own GPU, which is current."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n = torch.cuda.device_count()
    gpus = ga.worker_devices("cuda", n, n)
    ctx = mp.get_context("spawn")
    devices = ctx.Queue()
    for d in gpus:
        devices.put(d)
    task = _ga_task(tiny_model_dir, tmp_path, workers=n, device="cuda", threads=1)
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=ga._worker_init, initargs=(task, 1, devices)) as pool:
        seen = set(pool.map(_probe, range(4 * n)))
    assert {d for d, _ in seen} <= set(gpus)
    assert all(torch.device(d).index == current for d, current in seen)


@needs_cuda
def test_gpu_ga_run_with_parallel_workers(tiny_model_dir, tmp_path):
    """The GA as the paper config runs it (workers > 1) on this machine's GPUs."""
    task = _ga_task(tiny_model_dir, tmp_path, workers=max(2, torch.cuda.device_count()), device="cuda", threads=2)
    result = ga.run(task)
    assert int((~result.head_keep).sum()) == 6
    assert result.extras["generations_run"] >= 1
