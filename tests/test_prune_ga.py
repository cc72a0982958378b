"""The genetic head search: operators keep the prune count, the search finds a hidden target,
a killed search resumes to the uninterrupted result, and run(task) works on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lotteryprune.model.heads import n_pruned, random_flat_mask
from lotteryprune.model.sources import materialise
from lotteryprune.prune import ga

L, H, N_PRUNE = 4, 6, 12


def target_mask(seed: int = 12345) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = np.ones(L * H, dtype=bool)
    flat[rng.choice(L * H, size=N_PRUNE, replace=False)] = False
    return flat.reshape(L, H)


def overlap_fitness(target: np.ndarray):
    def fitness(mask: np.ndarray) -> float:
        return float((np.asarray(mask, bool) & target).sum() / target.sum())

    return fitness


PARAMS = {
    "population": 16,
    "generations": 40,
    "patience": 40,
    "drop_frac": 0.1,
    "elite_frac": 0.1,
    "crossover_rate": 0.5,
    "smoothing": 0.7,
    "workers": 1,
}


def strip_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_crossover_and_mutation_preserve_the_prune_count():
    rng = np.random.default_rng(0)
    for _ in range(500):
        total = int(rng.integers(2, 80))
        n_prune = int(rng.integers(0, total))
        a = random_flat_mask(total, n_prune, rng)
        b = random_flat_mask(total, n_prune, rng)
        child = ga.crossover(a, b, rng)
        assert (~child).sum() == n_prune
        assert (child[a & b]).all()  # heads both parents keep stay kept
        assert not child[~a & ~b].any()  # heads both parents prune stay pruned
        G = rng.random(total)
        mutant = ga.mutate(child, G, rng)
        assert (~mutant).sum() == n_prune
        if 0 < n_prune < total:
            assert (mutant != child).sum() == 2  # exactly one swap


def test_crossover_rejects_unequal_parents():
    with pytest.raises(ValueError, match="equal counts"):
        ga.crossover(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool), np.random.default_rng(0))


def test_mutation_follows_the_head_scores():
    rng = np.random.default_rng(0)
    mask = np.array([1, 1, 0, 0], bool)
    G = np.array([1.0, 0.0, 1.0, 0.0])  # head 1 should go, head 2 should come back
    outs = [ga.mutate(mask, G, rng) for _ in range(400)]
    share = np.mean([(o == np.array([1, 0, 1, 0], bool)).all() for o in outs])
    assert share > 0.8


def test_diversity():
    a = np.array([1, 1, 0, 0], bool)
    assert ga.diversity([a, a, a]) == 0.0
    assert ga.diversity([a, ~a]) == 1.0


def test_search_finds_a_hidden_target_and_never_changes_the_prune_count():
    target = target_mask()
    result = ga.search(L, H, N_PRUNE, overlap_fitness(target), PARAMS, seed=3)
    assert result.best_fitness == 1.0
    assert (result.best_mask == target).all()
    assert result.best_mask.shape == (L, H)
    for generation in result.populations:
        assert len(generation) == PARAMS["population"]
        for key in generation:
            assert key.count("0") == N_PRUNE
    # the best never gets worse, and the cache spares repeated masks
    best = [h["best_ever"] for h in result.history]
    assert best == sorted(best)
    assert result.evaluations == sum(h["evaluated"] for h in result.history)
    assert result.evaluations < PARAMS["population"] * result.generations_run
    # G concentrates on the target's heads
    assert result.G[target].mean() > result.G[~target].mean() + 0.3
    assert result.G.sum() == pytest.approx(L * H - N_PRUNE)


def test_search_beats_random_masks():
    target = target_mask(7)
    fitness = overlap_fitness(target)
    rng = np.random.default_rng(0)
    random_best = max(fitness(random_flat_mask(L * H, N_PRUNE, rng).reshape(L, H)) for _ in range(60))
    result = ga.search(L, H, N_PRUNE, fitness, {**PARAMS, "generations": 8}, seed=0)
    assert result.evaluations <= 8 * PARAMS["population"]
    assert result.best_fitness > random_best


def test_plateau_stops_the_search():
    result = ga.search(L, H, N_PRUNE, lambda m: 0.5, {**PARAMS, "patience": 2}, seed=0)
    assert result.stopped == "plateau"
    assert result.generations_run == 3  # generation 0 sets the best, two more without gain
    capped = ga.search(L, H, N_PRUNE, overlap_fitness(target_mask()), {**PARAMS, "generations": 3}, seed=0)
    assert capped.stopped == "cap" and capped.generations_run == 3


def test_same_seed_same_result_and_evaluate_many_matches_serial():
    fitness = overlap_fitness(target_mask())
    params = {**PARAMS, "generations": 6, "workers": 3}
    a = ga.search(L, H, N_PRUNE, fitness, params, seed=5)
    calls = []

    def many(masks):
        calls.append(len(masks))
        return [fitness(m) for m in masks]

    b = ga.search(L, H, N_PRUNE, None, params, seed=5, evaluate_many=many)
    assert strip_seconds(a.history) == strip_seconds(b.history)
    assert a.populations == b.populations
    assert max(calls) <= 3


@pytest.mark.parametrize("how", ["between_generations", "inside_fitness"])
def test_resume_equals_uninterrupted(tmp_path, how):
    target = target_mask()
    fitness = overlap_fitness(target)
    params = {**PARAMS, "generations": 10}
    straight = ga.search(L, H, N_PRUNE, fitness, params, seed=11)

    ckpt = tmp_path / "ga.json"
    if how == "between_generations":
        with pytest.raises(ga.Interrupted):
            ga.search(L, H, N_PRUNE, fitness, params, seed=11, store=ga.CheckpointStore(ckpt), stop_after=4)
        assert json.loads(ckpt.read_text())["generation"] == 4
    else:
        calls = {"n": 0}

        def dying(mask):  # killed in the middle of a generation, after some evaluations
            calls["n"] += 1
            if calls["n"] > 3 * PARAMS["population"] + 5:
                raise KeyboardInterrupt
            return fitness(mask)

        with pytest.raises(KeyboardInterrupt):
            ga.search(L, H, N_PRUNE, dying, params, seed=11, store=ga.CheckpointStore(ckpt))
        assert ga.CheckpointStore(ckpt).journal.path.exists()  # the unfinished generation's evaluations

    evaluated = []

    def counting(mask):
        evaluated.append(ga.mask_key(mask))
        return fitness(mask)

    resumed = ga.search(L, H, N_PRUNE, counting, params, seed=11, store=ga.CheckpointStore(ckpt))
    assert strip_seconds(resumed.history) == strip_seconds(straight.history)
    assert resumed.populations == straight.populations
    assert (resumed.best_mask == straight.best_mask).all()
    assert resumed.best_fitness == straight.best_fitness
    assert np.allclose(resumed.G, straight.G)
    assert (resumed.evaluations, resumed.cache_hits, resumed.stopped) == (
        straight.evaluations,
        straight.cache_hits,
        straight.stopped,
    )
    assert len(evaluated) < straight.evaluations  # work before the kill was not redone
    # a finished checkpoint answers at once
    again = ga.search(
        L, H, N_PRUNE, lambda m: pytest.fail("re-evaluated"), params, seed=11, store=ga.CheckpointStore(ckpt)
    )
    assert (again.best_mask == straight.best_mask).all()


def test_a_checkpoint_of_another_search_is_not_resumed(tmp_path):
    ckpt = tmp_path / "ga.json"
    fitness = overlap_fitness(target_mask())
    ga.search(L, H, N_PRUNE, fitness, {**PARAMS, "generations": 2}, seed=1, store=ga.CheckpointStore(ckpt))
    other = ga.search(L, H, N_PRUNE, fitness, {**PARAMS, "generations": 2}, seed=2, store=ga.CheckpointStore(ckpt))
    fresh = ga.search(L, H, N_PRUNE, fitness, {**PARAMS, "generations": 2}, seed=2)
    assert other.populations == fresh.populations


def test_unknown_parameter_is_named():
    with pytest.raises(KeyError, match="populaton"):
        ga.search(L, H, N_PRUNE, lambda m: 0.0, {**PARAMS, "populaton": 5}, seed=0)
    missing = {k: v for k, v in PARAMS.items() if k != "smoothing"}
    with pytest.raises(KeyError, match="missing keys \\['smoothing'\\]"):
        ga.GAParams.from_section(missing)


def test_run_on_the_tiny_model(tmp_path):
    import torch

    from conftest import GA_PARAMS, train_cfg
    from lotteryprune.prune import PruneTask, run_method

    torch.set_num_threads(1)
    model_dir = tmp_path / "tiny"
    materialise("tiny:2x4", model_dir)
    texts = ["i love this day", "i hate this", "so good", "so bad and sad", "great day", "really bad day"] * 2
    labels = [1, 0, 1, 0, 1, 0] * 2
    task = PruneTask(
        model_dir=str(model_dir),
        train_texts=texts,
        train_labels=labels,
        valid_texts=texts[:6],
        valid_labels=labels[:6],
        rate=50,
        train_cfg=train_cfg(epochs=1, batch_size=4, max_length=16, seed=0),
        params=GA_PARAMS,
        seed=0,
        metric="macro_f1",
        workdir=tmp_path / "work",
        progress=False,
    )
    (tmp_path / "work").mkdir()
    result = run_method("ga", task)
    assert result.head_keep.shape == (2, 4)
    assert (~result.head_keep).sum() == n_pruned(8, 50) == 4
    assert result.achieved_rate() == 50.0
    assert len(result.history) == result.extras["generations_run"] == 2
    assert set(result.history[0]) >= {"generation", "best", "mean", "diversity", "evaluated", "seconds", "best_ever"}
    assert result.extras["stopped"] in {"plateau", "cap"}
    # the best fitness is the score of the returned mask, recomputed independently
    from lotteryprune.prune import score_mask

    assert result.extras["best_fitness"] == score_mask(task, result.head_keep)["macro_f1"]
    assert (tmp_path / "work" / "ga_checkpoint.json").exists()


def test_parallel_workers_match_serial(tmp_path):
    import torch

    from conftest import GA_PARAMS, train_cfg
    from lotteryprune.prune import PruneTask

    torch.set_num_threads(1)
    model_dir = tmp_path / "tiny"
    materialise("tiny:2x4", model_dir)
    texts = ["i love this day", "i hate this", "so good", "so bad and sad"] * 2
    labels = [1, 0, 1, 0] * 2

    def task(workers: int) -> PruneTask:
        return PruneTask(
            model_dir=str(model_dir),
            train_texts=texts,
            train_labels=labels,
            valid_texts=texts,
            valid_labels=labels,
            rate=25,
            train_cfg=train_cfg(epochs=1, batch_size=4, max_length=16, seed=0),
            params={**GA_PARAMS, "workers": workers},
            seed=1,
            metric="macro_f1",
            threads=2,
            progress=False,
        )

    serial, parallel = ga.run(task(1)), ga.run(task(2))
    assert (serial.head_keep == parallel.head_keep).all()
    assert strip_seconds(serial.history) == strip_seconds(parallel.history)


def _model_code_imported(_) -> bool:
    import sys

    return "transformers.modeling_utils" in sys.modules and "lotteryprune.prune.score" in sys.modules


def test_workers_start_with_the_model_code_imported():
    """On CPU where the platform has a fork server, workers fork from one that imported
    torch, transformers' model code and the scoring code once (a spawned worker would import
    them again, 3-4 s of CPU per worker per search); on CUDA and elsewhere they are spawned."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    for device in ("cuda", "cuda:1", "mps"):
        assert ga.worker_context(_model_code_imported, device).get_start_method() == "spawn"
    ctx = ga.worker_context(_model_code_imported, "cpu")
    if "forkserver" not in mp.get_all_start_methods():
        assert ctx.get_start_method() == "spawn"
        return
    assert ctx.get_start_method() == "forkserver"
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        assert list(pool.map(_model_code_imported, range(2))) == [True, True]


def test_ga_figures(tmp_path):
    from lotteryprune.report import figures

    hist = ga.search(L, H, N_PRUNE, overlap_fitness(target_mask()), {**PARAMS, "generations": 4}, seed=0).history
    out = figures.plot_fitness_history({30: hist, 70: hist[:2]}, tmp_path / "ga_fitness.png")
    assert [p.rsplit(".", 1)[1] for p in out] == ["png", "pdf"]
    masks = {70: target_mask(), 90: np.zeros((L, H), bool)}
    masks[90][1, 2] = True  # three layers keep nothing: drawn as dropped
    out = figures.plot_head_grids(masks, tmp_path / "figure9.png")
    for p in out:
        assert (tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 1000
    with pytest.raises(ValueError, match="shape"):
        figures.plot_head_grids({70: np.ones((2, 2), bool), 90: np.ones((3, 2), bool)}, tmp_path / "bad.png")
