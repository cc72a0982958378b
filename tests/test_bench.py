"""The benchmark compares pruned and unpruned in one process, with the allocator it sets up."""

import numpy as np

from lotteryprune import bench


def test_bench_reports_speedups_and_sizes(tiny_model_dir):
    keep = np.ones((3, 4), bool)
    keep[1] = False
    keep[0, :3] = False
    r = bench.compare(tiny_model_dir, keep, batch_size=2, seq_len=8, warmup=1, repeats=3)
    assert r["layers_kept"] == 2 and r["heads_kept"] == 5 and r["heads_per_layer"] == [1, 0, 4]
    assert len(r["pruned_ms"]) == len(r["unpruned_ms"]) == 3
    # the ratios are what the timings and the FLOP counts say, not just "above zero"
    assert r["measured_speedup"] == np.median(r["unpruned_ms"]) / np.median(r["pruned_ms"])
    assert r["flop_speedup"] == r["unpruned"]["flops"] / r["pruned"]["flops"]
    low, high = r["measured_speedup_ci"]
    assert low <= r["measured_speedup"] <= high
    assert r["realised_ci"] == [(x - 1) / (r["flop_speedup"] - 1) for x in (low, high)]
    # tiny:3x4 (hidden 32, 4 heads of 8, FFN 64) at seq 8: 8 heads x (8*8*32*8 + 4*8*8*8) / 2
    # per kept head and two full FFNs; the pruned model keeps 5 heads and 2 FFNs of 3
    h, d, ffn, s = 32, 8, 64, 8
    head = 8 * s * h * d + 4 * s * s * d
    layer_ffn = 4 * s * h * ffn
    top = 2 * h * h + 2 * h * 2
    assert r["unpruned"]["flops"] == 12 * head + 3 * layer_ffn + top
    assert r["pruned"]["flops"] == 5 * head + 2 * layer_ffn + top
    assert r["pruned"]["params"] < r["unpruned"]["params"] and not r["dense"]


def _tuned_in_subprocess(env_value):
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("LOTTERYPRUNE_MALLOC", None)
    if env_value is not None:
        env["LOTTERYPRUNE_MALLOC"] = env_value
    code = "from lotteryprune import runtime; print(runtime.keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_allocator_tuning_applies_on_glibc_and_can_be_turned_off():
    import platform

    if platform.libc_ver()[0] != "glibc":
        import pytest

        pytest.skip("mallopt is glibc's")
    assert _tuned_in_subprocess(None) == "True"
    assert _tuned_in_subprocess("default") == "False"


def test_speedup_interval_covers_the_true_ratio_and_narrows_with_less_noise():
    """Latencies drawn around 100 ms (unpruned) and 80 ms (pruned): the interval holds 1.25,
    and shrinks when the noise does."""
    rng = np.random.default_rng(0)
    noisy = bench.speedup_interval(
        100 * (1 + 0.08 * rng.standard_normal(24)), 80 * (1 + 0.08 * rng.standard_normal(24))
    )
    quiet = bench.speedup_interval(
        100 * (1 + 0.01 * rng.standard_normal(24)), 80 * (1 + 0.01 * rng.standard_normal(24))
    )
    assert noisy[0] < 1.25 < noisy[1] and quiet[0] < 1.25 < quiet[1]
    assert quiet[1] - quiet[0] < (noisy[1] - noisy[0]) / 3
