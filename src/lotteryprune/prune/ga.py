"""The paper's genetic head search (section 3.2, Algorithm 1).

An individual is a keep-mask over all heads with exactly ``n_prune`` heads removed; every
operator below preserves that count. Fitness is the validation F1 of the physically pruned
pretrained model after short training on the lottery sample (:func:`score_mask`).

One generation:

1. evaluate the population (fitness cache keyed by mask: a mask is never trained twice);
2. update the best-ever individual, and the global head-score vector
   ``G <- s * G + (1 - s) * sum_e w_e m_e`` over this generation's elites, with
   ``w_e = f_e / sum_e f_e`` (so ``G`` stays in [0, 1] and sums to the kept-head count);
3. stop at a plateau (``patience`` generations without a better best) or at the cap;
4. drop the worst ``drop_frac``; replace each survivor by a count-preserving crossover
   child with probability ``crossover_rate``; add ``elite_frac`` global elites (copies of
   the best masks ever evaluated); refill to the population size with crossover children;
5. mutate every individual once: swap one kept and one pruned head, the kept head drawn
   with probability favouring low ``G``, the pruned head favouring high ``G``.

:func:`search` is the loop alone (any fitness function), seeded through one
``np.random.Generator``; its state goes to a :class:`CheckpointStore` after every
generation, so a killed search resumes to the same result as an uninterrupted one, and
fitness values of an unfinished generation are journalled one by one, so a kill costs at
most one evaluation. The store lives in a work directory keyed by the contents of every
input the search reads (:mod:`lotteryprune.resume`). :func:`run` wraps the search with
:func:`score_mask` (fitness = the config's ``metric`` on the validation subset) and
optional parallel workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..io import write_json
from ..model.heads import n_pruned, random_flat_mask, saved_layout
from ..resume import Journal
from .score import score_mask
from .task import PruneResult, PruneTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GAParams:
    """``prune.ga`` (Algorithm 1's hyperparameters, the paper's Table 3)."""

    population: int
    generations: int
    patience: int  # generations without a better best before stopping
    drop_frac: float  # worst fraction dropped each generation
    elite_frac: float  # global elites added each generation
    crossover_rate: float
    smoothing: float  # G <- smoothing * G + (1 - smoothing) * elite update
    workers: int  # individuals evaluated in parallel (processes, or one per GPU)

    @classmethod
    def from_section(cls, section: dict) -> GAParams:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(section) - set(names))
        if unknown:
            raise KeyError(f"config prune.ga: unknown keys {unknown}; known: {names}")
        missing = [n for n in names if n not in section]
        if missing:
            raise KeyError(f"config prune.ga: missing keys {missing}")
        params = cls(**{n: section[n] for n in names})
        if params.population < 2:
            raise ValueError(f"config prune.ga.population must be at least 2, got {params.population}")
        return params

    def search_params(self) -> dict:
        """What the search's result depends on (``workers`` never changes it)."""
        return {k: v for k, v in asdict(self).items() if k != "workers"}


# keeps every head drawable by a mutation even when G has saturated at 0 or 1
MUTATION_FLOOR = 0.05
CHECKPOINT_VERSION = 1
IMPROVEMENT_TOL = 1e-12


# --------------------------------------------------------------------------- masks


def mask_key(mask: np.ndarray) -> str:
    """Cache key of a mask: its flattened bits as a '0'/'1' string (readable in JSON)."""
    return "".join("1" if b else "0" for b in np.asarray(mask, dtype=bool).ravel())


def key_mask(key: str, shape: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(key.encode(), dtype=np.uint8).reshape(shape) == ord("1")


def crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Count-preserving ("counter") crossover of two flat keep-masks with equal kept counts.

    The child keeps every head both parents keep, then fills the remaining kept slots at
    random from heads exactly one parent keeps (the union always has enough).
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n_keep = int(a.sum())
    if int(b.sum()) != n_keep:
        raise ValueError(f"parents keep {n_keep} and {int(b.sum())} heads; crossover needs equal counts")
    child = a & b
    either = np.flatnonzero(a ^ b)
    need = n_keep - int(child.sum())
    if need:
        child[rng.choice(either, size=need, replace=False)] = True
    return child


def mutate(mask: np.ndarray, G: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap one kept and one pruned head, guided by the global head scores ``G``.

    The kept head to remove is drawn with probability ~ (1 - G) + floor, the pruned head to
    restore with probability ~ G + floor. A mask with nothing kept or nothing pruned is
    returned unchanged.
    """
    mask = np.asarray(mask, dtype=bool).copy()
    kept, pruned = np.flatnonzero(mask), np.flatnonzero(~mask)
    if len(kept) == 0 or len(pruned) == 0:
        return mask
    p_out = (1.0 - G[kept]) + MUTATION_FLOOR
    p_in = G[pruned] + MUTATION_FLOOR
    out = rng.choice(kept, p=p_out / p_out.sum())
    inn = rng.choice(pruned, p=p_in / p_in.sum())
    mask[out], mask[inn] = False, True
    return mask


def diversity(masks: Sequence[np.ndarray]) -> float:
    """Mean pairwise Hamming distance between masks, divided by the number of heads."""
    X = np.asarray(masks, dtype=np.float64).reshape(len(masks), -1)
    n, total = X.shape
    if n < 2:
        return 0.0
    ones = X.sum(0)  # pairs that differ at a head: ones * zeros
    return float((ones * (n - ones)).sum() / (n * (n - 1) / 2) / total)


def _count(frac: float, population: int) -> int:
    """Individuals a fraction stands for: at least one when the fraction is positive."""
    return 0 if frac <= 0 else max(1, int(round(frac * population)))


# --------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    best_mask: np.ndarray  # [layers, heads] bool
    best_fitness: float
    history: list[dict]
    G: np.ndarray  # [layers, heads]
    evaluations: int  # distinct masks evaluated
    cache_hits: int
    generations_run: int
    stopped: str  # "plateau" | "cap"
    populations: list[list[str]] = field(default_factory=list)  # mask keys of every generation
    scores: dict[str, float] = field(default_factory=dict)  # fitness of every mask key evaluated


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` (tests): the search stopped as if the job was killed."""


def _signature(n_layers: int, n_heads: int, n_prune: int, params: GAParams, seed: int) -> dict:
    return {
        "version": CHECKPOINT_VERSION,
        "shape": [n_layers, n_heads],
        "n_prune": n_prune,
        "params": params.search_params(),
        "seed": seed,
    }


class CheckpointStore:
    """Where a search keeps its state: ``<path>`` (JSON, written atomically after every
    generation) and ``<path>.journal`` (the fitness of each individual of the unfinished
    generation, one line each, so a kill loses at most one evaluation)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.journal = Journal(self.path.with_name(self.path.name + ".journal"))

    def load(self, signature: dict) -> dict | None:
        """The saved state of this very search, or None (none, or another search's)."""
        if not self.path.exists():
            return None
        state = json.loads(self.path.read_text())
        if state.get("signature") != signature:
            log.warning("%s: checkpoint is for another search (%s); starting afresh", self.path, state.get("signature"))
            return None
        return state

    def pending(self) -> dict[str, float]:
        """Fitness values journalled in the unfinished generation."""
        out = {}
        for record in self.journal:
            try:
                out[record["mask"]] = float(record["fitness"])
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def record(self, key: str, fitness: float) -> None:
        self.journal.append({"mask": key, "fitness": float(fitness)})

    def save(self, state: dict) -> None:
        write_json(self.path, state)
        self.journal.reset()

    def reset(self) -> None:
        self.journal.reset()


@dataclass(frozen=True)
class Operators:
    """What an individual is, for :func:`evolve`: a flat bool genome drawn by ``random``,
    recombined by ``crossover``, changed by ``mutate`` (guided by the global scores ``G``),
    and the invariant every operator keeps (``check`` says what is wrong, or None).
    ``initial_G`` is where every global score starts. :func:`count_operators` are the
    paper's (a fixed prune count); :mod:`lotteryprune.prune.ga_ffn` has a FLOP budget."""

    random: Callable[[np.random.Generator], np.ndarray]
    crossover: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
    mutate: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
    check: Callable[[np.ndarray], str | None]
    initial_G: float


def count_operators(total: int, n_prune: int) -> Operators:
    """The paper's operators: keep-masks over ``total`` heads with exactly ``n_prune`` zeros."""

    def check(m: np.ndarray) -> str | None:
        pruned = int((~m).sum())
        return None if pruned == n_prune else f"an individual prunes {pruned} heads, not {n_prune}"

    return Operators(
        random=lambda rng: random_flat_mask(total, n_prune, rng),
        crossover=crossover,
        mutate=mutate,
        check=check,
        initial_G=(total - n_prune) / total,
    )


def search(
    n_layers: int,
    n_heads: int,
    n_prune: int,
    fitness_fn: Callable[[np.ndarray], float] | None,
    params: GAParams,
    seed: int,
    store: CheckpointStore | None = None,
    evaluate_many: Callable[[list[np.ndarray]], list[float]] | None = None,
    *,
    progress: bool = False,
    stop_after: int | None = None,
    reuse_fitness: bool = True,
) -> SearchResult:
    """Genetic search for the keep-mask ([n_layers, n_heads]) with the highest fitness.

    ``fitness_fn(mask) -> float`` scores one mask; ``evaluate_many(masks) -> fitnesses``, when
    given, scores several at once (parallel workers; called with at most ``workers`` masks
    so each result is journalled soon). With a ``store``, the state after every generation
    is saved there and a matching saved state is resumed from. ``stop_after=k`` raises
    :class:`Interrupted` once generation ``k`` is saved. ``reuse_fitness=False`` trains
    every individual even when its mask was scored before (benchmarks/speed.py measures
    what the fitness cache saves); the search is otherwise the same.
    """
    if not isinstance(params, GAParams):
        params = GAParams.from_section(params)
    total = n_layers * n_heads
    if not 0 <= n_prune < total:
        raise ValueError(f"n_prune must be in [0, {total}), got {n_prune}")
    return evolve(
        (n_layers, n_heads),
        count_operators(total, n_prune),
        _signature(n_layers, n_heads, n_prune, params, seed),
        fitness_fn,
        params,
        seed,
        store,
        evaluate_many,
        progress=progress,
        stop_after=stop_after,
        reuse_fitness=reuse_fitness,
    )


def evolve(
    shape: tuple[int, int],
    ops: Operators,
    signature: dict,
    fitness_fn: Callable[[np.ndarray], float] | None,
    params: GAParams,
    seed: int,
    store: CheckpointStore | None = None,
    evaluate_many: Callable[[list[np.ndarray]], list[float]] | None = None,
    *,
    progress: bool = False,
    stop_after: int | None = None,
    reuse_fitness: bool = True,
    initial: Sequence[np.ndarray] = (),
) -> SearchResult:
    """The generation loop of :func:`search` for any genome (``ops``) of ``shape``; a saved
    state is resumed only when its ``signature`` matches. ``initial``: individuals that
    open the first generation (a seeded search; the rest are ``ops.random``); they must
    keep ``ops``' invariant, and the signature should say what they are."""
    if not isinstance(params, GAParams):
        params = GAParams.from_section(params)
    total = int(np.prod(shape))
    if fitness_fn is None and evaluate_many is None:
        raise ValueError("give fitness_fn or evaluate_many")
    P = params.population
    n_drop, n_elite = _count(params.drop_frac, P), _count(params.elite_frac, P)
    n_drop = min(n_drop, P - 1)
    chunk = max(1, params.workers)

    state = store.load(signature) if store is not None else None
    rng = np.random.default_rng(seed)
    if state is None:
        if len(initial) > P:
            raise ValueError(f"{len(initial)} initial individuals for a population of {P}")
        population = [np.asarray(m, dtype=bool).ravel().copy() for m in initial]
        population += [ops.random(rng) for _ in range(P - len(population))]
        cache: dict[str, float] = {}
        G = np.full(total, ops.initial_G)
        best_key, best_fit = None, -math.inf
        history: list[dict] = []
        populations: list[list[str]] = []
        generation, since_best, stopped = 0, 0, None
        hits_total = 0
        if store is not None:
            store.reset()
    else:
        log.info("%s: resuming at generation %d", store.path, state["generation"])
        rng.bit_generator.state = state["rng"]
        population = [key_mask(k, shape).ravel() for k in state["population"]]
        cache = {k: float(v) for k, v in state["cache"].items()}
        G = np.asarray(state["G"], dtype=np.float64)
        best_key, best_fit = state["best_key"], (state["best_fitness"] if state["best_key"] is not None else -math.inf)
        history, populations = state["history"], state["populations"]
        generation, since_best, stopped = state["generation"], state["since_best"], state["stopped"]
        hits_total = state["cache_hits"]
    pending = store.pending() if store is not None else {}

    def evaluate(masks: list[np.ndarray]) -> tuple[list[float], int, int]:
        """Fitness of each mask: cached, journalled, or computed now (each distinct mask once)."""
        keys = [mask_key(m) for m in masks]
        if not reuse_fitness:
            for k in keys:  # score every individual again; the last score of a mask counts
                cache.pop(k, None)
                if evaluate_many is not None:
                    pending[k] = float(evaluate_many([key_mask(k, shape)])[0])
                else:
                    pending[k] = float(fitness_fn(key_mask(k, shape)))
        fresh = [k for k in dict.fromkeys(keys) if k not in cache]
        hits = len(keys) - len(fresh)
        todo = [k for k in fresh if k not in pending]
        bar = tqdm(total=len(todo), desc=f"generation {generation}", disable=not progress, leave=False)
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            part_masks = [key_mask(k, shape) for k in part]
            values = evaluate_many(part_masks) if evaluate_many is not None else [fitness_fn(m) for m in part_masks]
            for k, v in zip(part, values):
                pending[k] = float(v)
                if store is not None:
                    store.record(k, v)
            bar.update(len(part))
        bar.close()
        for k in fresh:
            cache[k] = pending.pop(k)
        return [cache[k] for k in keys], len(fresh), hits

    while stopped is None:
        t0 = time.perf_counter()
        for m in population:  # the invariant every operator keeps
            problem = ops.check(m)
            if problem is not None:
                raise AssertionError(f"generation {generation}: {problem}")
        fitness, n_new, hits = evaluate(population)
        hits_total += hits
        f = np.asarray(fitness)
        order = np.argsort(-f, kind="stable")
        if f[order[0]] > best_fit + IMPROVEMENT_TOL:
            best_key, best_fit, since_best = mask_key(population[order[0]]), float(f[order[0]]), 0
        else:
            since_best += 1

        # G from this generation's elites, weighted by normalised fitness
        elites = order[: max(1, n_elite)]
        fe = np.clip(f[elites], 0.0, None)
        w = fe / fe.sum() if fe.sum() > 0 else np.full(len(elites), 1.0 / len(elites))
        update = (w[:, None] * np.asarray([population[i] for i in elites], dtype=np.float64)).sum(0)
        G = params.smoothing * G + (1.0 - params.smoothing) * update

        populations.append([mask_key(m) for m in population])
        history.append(
            {
                "generation": generation,
                "best": float(f[order[0]]),
                "mean": float(f.mean()),
                "worst": float(f[order[-1]]),
                "diversity": diversity(population),
                "evaluated": n_new,
                "cache_hits": hits,
                "seconds": time.perf_counter() - t0,
                "best_ever": best_fit,
            }
        )
        log.info(
            "generation %d: best %.4f mean %.4f best-ever %.4f diversity %.3f (%d new, %d cached)",
            generation,
            f[order[0]],
            f.mean(),
            best_fit,
            history[-1]["diversity"],
            n_new,
            hits,
        )
        if since_best >= params.patience:
            stopped = "plateau"
        elif generation + 1 >= params.generations:
            stopped = "cap"
        else:
            population = _next_generation(
                population, order, cache, G, P, n_drop, n_elite, params.crossover_rate, rng, ops
            )
        generation += 1
        if store is not None:
            store.save(
                {
                    "signature": signature,
                    "generation": generation,
                    "population": [mask_key(m) for m in population],
                    "cache": cache,
                    "G": G.tolist(),
                    "best_key": best_key,
                    "best_fitness": best_fit if best_key is not None else None,
                    "since_best": since_best,
                    "stopped": stopped,
                    "history": history,
                    "populations": populations,
                    "cache_hits": hits_total,
                    "rng": rng.bit_generator.state,
                }
            )
        if stop_after is not None and generation >= stop_after and stopped is None:
            raise Interrupted(f"stopped after generation {generation - 1}")

    return SearchResult(
        best_mask=key_mask(best_key, shape).copy(),
        best_fitness=best_fit,
        history=history,
        G=G.reshape(shape),
        evaluations=len(cache),
        cache_hits=hits_total,
        generations_run=generation,
        stopped=stopped,
        populations=populations,
        scores=dict(cache),
    )


def _next_generation(
    population, order, cache, G, P, n_drop, n_elite, crossover_rate, rng, ops: Operators
) -> list[np.ndarray]:
    survivors = [population[i] for i in order[: len(order) - n_drop]]
    nxt = []
    for i, ind in enumerate(survivors):
        if len(survivors) > 1 and rng.random() < crossover_rate:
            j = int(rng.integers(len(survivors) - 1))
            partner = survivors[j + (j >= i)]  # any survivor but itself
            nxt.append(ops.crossover(ind, partner, rng))
        else:
            nxt.append(ind.copy())
    # global elites: the best masks ever evaluated (ties broken by key, for determinism)
    ranked = sorted(cache.items(), key=lambda kv: (-kv[1], kv[0]))
    shape = (1, len(G))
    nxt += [key_mask(k, shape).ravel().copy() for k, _ in ranked[:n_elite]]
    while len(nxt) < P:
        a, b = rng.choice(len(survivors), size=2, replace=len(survivors) < 2)
        nxt.append(ops.crossover(survivors[a], survivors[b], rng))
    nxt = nxt[:P]
    return [ops.mutate(m, G, rng) for m in nxt]


# --------------------------------------------------------------------------- the method


_WORKER_TASK: PruneTask | None = None


def _worker_init(task: PruneTask, threads: int, devices) -> None:
    import torch

    from ..runtime import keep_freed_memory

    global _WORKER_TASK
    keep_freed_memory()  # a new worker starts with glibc's defaults again
    torch.set_num_threads(threads)
    if devices is not None:  # one CUDA device per worker
        task.device = devices.get()
        # its GPU is also the current device, so nothing in the worker (a CUDA context,
        # torch.cuda calls without a device) lands on the job's first GPU
        torch.cuda.set_device(task.device)
    _WORKER_TASK = task


@contextlib.contextmanager
def _main_file_hidden():
    """Start worker processes without the parent's ``__main__`` file.

    A new worker (spawned, or forked from the fork server) first runs the parent's main file
    (as ``__mp_main__``) unless the main module was imported by name. Under Snakemake's
    ``script:`` that file is the rule's script (``workflow/scripts/prune_run.py``, which
    Snakemake names as ``__file__``): run again in a worker it has no ``snakemake`` object
    and fails, or with one would rerun the whole job.
    Workers need nothing from it (the task and the functions they run are importable), so the
    path is hidden while they start.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(getattr(main, "__spec__", None), "name", None):
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _worker_score(mask: np.ndarray) -> float:
    return float(score_mask(_WORKER_TASK, mask)[_WORKER_TASK.metric])


def worker_devices(device: str, workers: int, cuda_devices: int) -> list[str] | None:
    """The device of each parallel worker: one visible GPU each when the job runs on CUDA
    and sees several (``cuda:0..n-1`` index the job's own visible devices, e.g. what SLURM
    put in CUDA_VISIBLE_DEVICES), else None (every worker on ``device``, e.g. CPU
    processes sharing the job's cores). Never more workers than GPUs."""
    if not str(device).startswith("cuda") or cuda_devices < 2 or workers < 2:
        return None
    return [f"cuda:{i}" for i in range(min(workers, cuda_devices))]


def worker_context(score: Callable, device: str = "cpu"):
    """How workers start. On CPU, where the platform has a fork server (Linux, macOS): forked
    from one that imported torch, transformers' model code and ``score``'s module once.
    Otherwise spawned.

    A spawned worker imports them itself: 3-4 s of CPU each, paid again by every search
    (every seed of every cell), which is most of a search at toy scale. The fork server is
    started once per job process, by its first pool; like spawned workers, its children do
    not inherit the parent's state (threads, the job's open files). Workers on CUDA are
    spawned: a process forked after anything initialised CUDA cannot use it, their start-up
    is small beside their GPU work, and no GPU here could test the fork server's imports;
    so are workers on any other accelerator."""
    import multiprocessing as mp

    if str(device) != "cpu" or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["lotteryprune.prune.score", "transformers.modeling_utils", score.__module__])
    return ctx


@contextlib.contextmanager
def worker_pool(task: PruneTask, workers: int, score: Callable):
    """``(evaluate_many, workers)`` for a search: ``evaluate_many(items)`` scores items in
    ``workers`` processes (:func:`worker_context`), each running ``score(item)`` (a
    module-level function reading :data:`_WORKER_TASK`), or is None with fewer than 2
    workers. On CUDA with several visible GPUs each worker owns one
    (:func:`worker_devices`; then ``workers`` is their number); otherwise the workers split
    the job's threads. Used by ``ga`` and ``ga_ffn``."""
    if workers < 2:
        yield None, 1
        return
    from concurrent.futures import ProcessPoolExecutor

    import torch

    ctx = worker_context(score, task.device)
    devices = None
    gpus = worker_devices(task.device, workers, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if gpus is not None:
        workers = len(gpus)
        devices = ctx.Queue()
        for d in gpus:
            devices.put(d)
    threads = max(1, int(task.threads) // workers)
    # a worker that dies (killed, out of memory) fails the job (BrokenProcessPool);
    # multiprocessing.Pool would start another and wait for its result forever
    executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(task, threads, devices))

    def evaluate_many(items: list) -> list[float]:
        with _main_file_hidden():  # workers start on the first items submitted
            return list(executor.map(score, items))

    try:
        yield evaluate_many, workers
    finally:
        executor.shutdown(cancel_futures=True)


def run(task: PruneTask) -> PruneResult:
    """The GA as a pruning method: fitness = the config's ``metric`` on the validation
    subset after the shared short training (:func:`score_mask`)."""
    params = GAParams.from_section(task.params)
    n_layers, n_heads = saved_layout(task.model_dir)
    n_prune = n_pruned(n_layers * n_heads, task.rate)
    store = CheckpointStore(Path(task.workdir) / "ga_checkpoint.json") if task.workdir is not None else None

    def fitness(mask: np.ndarray) -> float:
        return float(score_mask(task, mask)[task.metric])

    with worker_pool(task, params.workers, _worker_score) as (evaluate_many, workers):
        params = replace(params, workers=workers)  # a generation goes to the pool in chunks of this size
        log.info(
            "GA: %dx%d heads, prune %d, %s, %d worker(s), fitness %s",
            n_layers,
            n_heads,
            n_prune,
            params,
            workers,
            task.metric,
        )
        result = search(
            n_layers,
            n_heads,
            n_prune,
            fitness,
            params,
            task.seed,
            store,
            evaluate_many=evaluate_many,
            progress=task.progress,
        )
    return PruneResult(
        head_keep=result.best_mask,
        unit="heads",
        history=result.history,
        extras={
            "best_fitness": result.best_fitness,
            "fitness_metric": task.metric,
            "G": result.G.tolist(),
            "evaluations": result.evaluations,
            "cache_hits": result.cache_hits,
            "generations_run": result.generations_run,
            "stopped": result.stopped,
            "n_prune": n_prune,
        },
    )
