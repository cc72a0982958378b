"""The genetic lottery search over heads and feed-forward neuron groups together, under a
FLOPs budget (issue #18; the paper's future work: "prune beyond the transformer heads to
improve inference speed ... adapted to transformer nodes to prune the feed-forward layers").

A genome is one bit per head (``L x H``) followed by one bit per neuron group (``L x G``):
each layer's ``intermediate_size`` neurons are cut into ``G = ceil(intermediate /
group_size)`` blocks so the genome stays short (MiniLM, group_size 64: 72 + 144 genes
instead of 72 + 9,216). ``grouping: activation`` ranks each layer's neurons by a label-free
score of the pretrained model on the lottery sample (mean |activation| x the L2 norm of the
neuron's output weights, one forward pass, no training) and cuts the ranking into blocks,
so a block holds neurons of similar weight; ``grouping: fisher`` ranks them by Kwon et al.'s
Fisher importance (below); ``grouping: index`` cuts them in index order.

``init: fisher`` seeds the search: the first generation holds, next to random individuals,
the genome that Kwon et al.'s search (:func:`lotteryprune.prune.fisher.search_flops`) picks
at the genome's granularity: the pretrained model trained on the lottery sample, the
diagonal Fisher of every head and neuron mask on that sample (a group's importance is the
sum over its neurons), and for every head count n the top n heads plus the most important
groups that still fit the budget, keeping the n of the largest total importance (then
filled, so it is full). Fisher's rearrangement and mask tuning are not part of the seed:
the GA moves whole groups, and every mask is fine-tuned from the pretrained weights anyway.
``init: random`` is the paper's random first generation.

``rearrange: true`` (ours; the default config's choice, docs/methods.md) applies Kwon et
al.'s mask rearrangement (:func:`lotteryprune.prune.fisher.rearrange_masks`) to the GA's
best mask: within each layer, with the GA's counts of heads and neurons kept, the official
greedy pass picks *which* heads and neurons, minimising the block-diagonal Fisher loss of
the model the seed's Fisher was taken on. The GA decides how the budget is spread over
layers and unit types; the rearrangement works per neuron, below the genome's granularity.
FLOPs are unchanged (they depend on the counts only).

The rate is the percent of the encoder's forward FLOPs removed at ``seq_len`` (``unit:
flops``, :class:`lotteryprune.model.cost.UnitCosts`): every individual's FLOPs are at most
the budget, and it is *full*: no pruned gene would still fit. The paper's count-preserving
operators become budget-preserving ones:

* a random individual spends a random share of the budget on random heads, then fills it
  with random groups (then with whatever still fits);
* crossover keeps every gene both parents keep, then adds genes exactly one parent keeps,
  in random order, while they fit, then fills;
* mutation adds one pruned gene (drawn favouring high global score G), removes kept genes
  (favouring low G) until the budget holds again, then fills (favouring high G).

Everything else is the paper's GA (:func:`lotteryprune.prune.ga.evolve`: fitness cache,
elites, G update, plateau stop, per-generation checkpoints) and the shared fitness
(:func:`lotteryprune.prune.score.score_mask` with the neuron mask: the physically pruned
pretrained model after short training on the lottery sample).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..model.batching import collate, encode, length_sorted_batches
from ..model.cost import UnitCosts
from ..model.heads import layers_of
from . import ga
from .score import score_mask
from .task import PruneResult, PruneTask

log = logging.getLogger(__name__)

OWN_KEYS = ("group_size", "grouping", "seq_len", "init", "rearrange")
GROUPINGS = ("activation", "fisher", "index")
INITS = ("random", "fisher")
SIGNATURE_VERSION = 2


@dataclass(frozen=True)
class Genome:
    """What the bits of a genome mean: heads, then neuron groups (``groups[l][g]`` = the
    neuron indices of group g of layer l), and what each gene costs."""

    layers: int
    heads: int
    neurons: int
    groups: tuple[tuple[np.ndarray, ...], ...]
    costs: UnitCosts

    @property
    def n_heads(self) -> int:
        return self.layers * self.heads

    @property
    def length(self) -> int:
        return self.n_heads + sum(len(g) for g in self.groups)

    def gene_values(self, head_values: np.ndarray, neuron_values: np.ndarray) -> np.ndarray:
        """Per-gene totals of per-head [L, H] and per-neuron [L, F] values: each head's own,
        then each group's sum over its neurons (heads first, then every layer's groups)."""
        head_values, neuron_values = np.asarray(head_values, np.float64), np.asarray(neuron_values, np.float64)
        if head_values.shape != (self.layers, self.heads) or neuron_values.shape != (self.layers, self.neurons):
            raise ValueError(
                f"importance of {head_values.shape} heads and {neuron_values.shape} neurons for a genome of "
                f"{(self.layers, self.heads)} heads and {(self.layers, self.neurons)} neurons"
            )
        groups = [neuron_values[layer, idx].sum() for layer, gs in enumerate(self.groups) for idx in gs]
        return np.concatenate([head_values.ravel(), np.asarray(groups, dtype=np.float64)])

    @property
    def gene_cost(self) -> np.ndarray:
        """FLOPs each gene adds when kept (heads first, then every layer's groups)."""
        L, H, F = self.layers, self.heads, self.neurons
        return self.gene_values(np.full((L, H), self.costs.per_head), np.full((L, F), self.costs.per_neuron))

    def decode(self, genome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(head keep-mask [L, H], neuron keep-mask [L, intermediate]) of a genome."""
        genome = np.asarray(genome, dtype=bool).ravel()
        heads = genome[: self.n_heads].reshape(self.layers, self.heads)
        neurons = np.zeros((self.layers, self.neurons), dtype=bool)
        pos = self.n_heads
        for layer, groups in enumerate(self.groups):
            for idx in groups:
                if genome[pos]:
                    neurons[layer, idx] = True
                pos += 1
        return heads, neurons

    def flops(self, genome: np.ndarray) -> float:
        """Encoder FLOPs of the genome's model (= ``costs.encoder`` of the decoded masks)."""
        return float(self.gene_cost @ np.asarray(genome, dtype=np.float64).ravel())

    def digest(self) -> str:
        """A short hash of the grouping (the checkpoint signature names it)."""
        h = hashlib.sha256()
        for layer in self.groups:
            for idx in layer:
                h.update(np.asarray(idx, dtype=np.int64).tobytes())
                h.update(b"|")
        return h.hexdigest()[:16]


def make_groups(ranking: np.ndarray, group_size: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """Cut each layer's neuron order (``ranking`` [L, F], a permutation per row) into blocks
    of ``group_size`` (the last one smaller when it does not divide F)."""
    ranking = np.asarray(ranking)
    F = ranking.shape[1]
    if group_size < 1:
        raise ValueError(f"config prune.ga_ffn.group_size must be >= 1, got {group_size}")
    return tuple(tuple(np.sort(row[i : i + group_size]) for i in range(0, F, group_size)) for row in ranking)


@torch.no_grad()
def neuron_scores(model, tokenizer, texts, *, max_length: int, batch_size: int = 32) -> np.ndarray:
    """Label-free neuron score [L, F] of a model on ``texts``: mean |activation| over real
    tokens times the L2 norm of the neuron's output weights (column of ``output.dense``)."""
    device = next(model.parameters()).device
    model.eval()
    layers = layers_of(model)
    sums = [torch.zeros(layer.intermediate.dense.out_features, dtype=torch.float64) for layer in layers]
    count = 0.0
    current = {}
    handles = []
    for i, layer in enumerate(layers):

        def hook(module, args, i=i):
            act = args[0].detach().abs().double()
            sums[i] += act[current["mask"]].sum(0).cpu()

        handles.append(layer.output.dense.register_forward_pre_hook(hook))
    ids = encode(tokenizer, texts, max_length)
    try:
        for idx in length_sorted_batches([len(x) for x in ids], batch_size):
            batch = collate(tokenizer, ids, idx, device)
            current["mask"] = batch["attention_mask"].bool()
            count += float(current["mask"].sum())
            model(**batch)
    finally:
        for h in handles:
            h.remove()
    norms = [layer.output.dense.weight.detach().double().norm(dim=0).cpu() for layer in layers]
    return torch.stack([s / max(count, 1.0) * n for s, n in zip(sums, norms)]).numpy()


# --------------------------------------------------------------------------- budget operators


class BudgetOps:
    """The GA's operators on genomes whose FLOPs stay within ``budget`` and are full."""

    def __init__(self, genome: Genome, budget: float):
        self.genome = genome
        self.cost = genome.gene_cost
        self.budget = float(budget)
        self.tol = 1e-9 * max(1.0, self.budget)
        if self.cost.min() <= 0:
            raise ValueError("every gene must cost FLOPs")

    def spent(self, m: np.ndarray) -> float:
        return float(self.cost @ m)

    def _fill(self, m: np.ndarray, order) -> np.ndarray:
        """Add the genes of ``order`` (indices) that still fit, in that order."""
        slack = self.budget - self.spent(m)
        for j in order:
            if not m[j] and self.cost[j] <= slack + self.tol:
                m[j] = True
                slack -= self.cost[j]
        return m

    def _fill_weighted(self, m: np.ndarray, weights: np.ndarray, rng: np.random.Generator, exclude=()) -> np.ndarray:
        """Add genes that fit, one at a time, drawn with probability ~ ``weights``; genes in
        ``exclude`` only once nothing else fits."""
        excluded = np.zeros(len(m), dtype=bool)
        excluded[list(exclude)] = True
        for allow_excluded in (False, True):
            while True:
                slack = self.budget - self.spent(m)
                fits = np.flatnonzero(~m & (self.cost <= slack + self.tol) & (allow_excluded | ~excluded))
                if len(fits) == 0:
                    break
                p = weights[fits] / weights[fits].sum()
                m[rng.choice(fits, p=p)] = True
        return m

    def random(self, rng: np.random.Generator) -> np.ndarray:
        m = np.zeros(self.genome.length, dtype=bool)
        nh = self.genome.n_heads
        share = rng.random()  # of the budget spent on heads first
        spent = 0.0
        for j in rng.permutation(nh):
            if spent + self.cost[j] > share * self.budget + self.tol:
                break
            m[j] = True
            spent += self.cost[j]
        m = self._fill(m, nh + rng.permutation(self.genome.length - nh))
        return self._fill(m, rng.permutation(self.genome.length))

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
        child = a & b
        child = self._fill(child, rng.permutation(np.flatnonzero(a ^ b)))
        return self._fill(child, rng.permutation(self.genome.length))

    def mutate(self, m: np.ndarray, G: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        m = np.asarray(m, dtype=bool).copy()
        kept, pruned = np.flatnonzero(m), np.flatnonzero(~m)
        if len(pruned) == 0 or len(kept) == 0:
            return m
        p_in = G[pruned] + ga.MUTATION_FLOOR
        added = rng.choice(pruned, p=p_in / p_in.sum())
        m[added] = True
        removed = []
        while self.spent(m) > self.budget + self.tol:
            kept = np.flatnonzero(m)
            kept = kept[kept != added]
            p_out = (1.0 - G[kept]) + ga.MUTATION_FLOOR
            out = rng.choice(kept, p=p_out / p_out.sum())
            m[out] = False
            removed.append(out)
        return self._fill_weighted(m, G + ga.MUTATION_FLOOR, rng, exclude=removed)

    def check(self, m: np.ndarray) -> str | None:
        spent = self.spent(m)
        if spent > self.budget + self.tol:
            return f"an individual costs {spent:.6g} FLOPs, over the budget {self.budget:.6g}"
        slack = self.budget - spent
        pruned = ~np.asarray(m, dtype=bool)
        if pruned.any() and self.cost[pruned].min() <= slack - self.tol:
            return f"an individual leaves {slack:.6g} FLOPs unused that a pruned gene would fit"
        return None

    def greedy(self, head_importance: np.ndarray, neuron_importance: np.ndarray) -> np.ndarray:
        """Kwon et al.'s search on this genome (head [L, H] and neuron [L, F] importance; a
        group's is the sum over its neurons): for every head count n, the n most important
        heads, then the most important groups that still fit; the n with the largest total
        importance wins (ties: the smaller n), then filled so the genome is full."""
        nh = self.genome.n_heads
        importance = self.genome.gene_values(head_importance, neuron_importance)
        h_order = np.argsort(-importance[:nh], kind="stable")
        g_order = nh + np.argsort(-importance[nh:], kind="stable")
        best = None
        for n in range(nh + 1):
            m = np.zeros(self.genome.length, dtype=bool)
            m[h_order[:n]] = True
            if self.spent(m) > self.budget + self.tol:
                break
            m = self._fill(m, g_order)
            value = float(importance[m].sum())
            if best is None or value > best[0] + 1e-12 * max(1.0, abs(value)):
                best = (value, m)
        return self._fill(best[1], np.argsort(-importance, kind="stable"))

    def operators(self) -> ga.Operators:
        return ga.Operators(
            random=self.random,
            crossover=self.crossover,
            mutate=self.mutate,
            check=self.check,
            initial_G=min(1.0, self.budget / float(self.cost.sum())),
        )


# --------------------------------------------------------------------------- the method


def split_params(section: dict) -> tuple[ga.GAParams, dict]:
    """``prune.ga_ffn``: the GA's keys (as ``prune.ga``) and this method's own."""
    own = {k: section[k] for k in OWN_KEYS if k in section}
    missing = [k for k in OWN_KEYS if k not in own]
    if missing:
        raise KeyError(f"config prune.ga_ffn: missing keys {missing}")
    if own["grouping"] not in GROUPINGS:
        raise ValueError(f"config prune.ga_ffn.grouping: one of {list(GROUPINGS)}, got {own['grouping']!r}")
    if own["init"] not in INITS:
        raise ValueError(f"config prune.ga_ffn.init: one of {list(INITS)}, got {own['init']!r}")
    ga_section = {k: v for k, v in section.items() if k not in OWN_KEYS}
    try:
        params = ga.GAParams.from_section(ga_section)
    except KeyError as err:
        raise KeyError(str(err).replace("prune.ga:", "prune.ga_ffn:")) from None
    return params, own


@dataclass(frozen=True)
class MaskFisher:
    """Kwon et al.'s mask gradients on the task's lottery sample: per text, of every head
    ``[N, L, H]`` and neuron ``[N, L, F]``, and the seconds they took."""

    head_grads: torch.Tensor
    neuron_grads: torch.Tensor
    seconds: dict

    @property
    def heads(self) -> np.ndarray:
        from .fisher import fisher_information

        return fisher_information(self.head_grads)

    @property
    def neurons(self) -> np.ndarray:
        from .fisher import fisher_information

        return fisher_information(self.neuron_grads)

    def rearrange(self, heads: np.ndarray, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """Kwon et al.'s rearrangement of a mask, the counts per layer kept, and its record."""
        from .fisher import rearrange_masks

        return rearrange_masks(heads, neurons, self.head_grads, self.neuron_grads)


def fisher_importance(task: PruneTask) -> MaskFisher:
    """Kwon et al.'s mask gradients of every head and neuron on the task's lottery sample
    (:func:`lotteryprune.prune.fisher.task_gradients`: trained on the sample, one gradient
    per text); their importance is :attr:`MaskFisher.heads` / :attr:`MaskFisher.neurons`."""
    from .fisher import task_gradients

    model, _, hg, ng, seconds = task_gradients(task, neurons=True)
    del model
    return MaskFisher(hg, ng, seconds)


def build_genome(task: PruneTask, own: dict, neuron_importance: np.ndarray | None = None) -> Genome:
    """The genome layout of a task: the model's shape, its grouping, FLOPs per gene
    (``grouping: fisher`` ranks by ``neuron_importance``)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(task.model_dir))  # the feed-forward width too
    L, H, F = config.num_hidden_layers, config.num_attention_heads, config.intermediate_size
    if own["grouping"] == "fisher":
        if neuron_importance is None:
            raise ValueError("grouping: fisher needs the neurons' Fisher importance")
        ranking = np.argsort(-np.asarray(neuron_importance), axis=1, kind="stable")
    elif own["grouping"] == "activation":
        from ..model.sources import load_classifier, load_tokenizer

        model = load_classifier(task.model_dir, seed=task.train_cfg.seed, attn_implementation="eager").to(task.device)
        scores = neuron_scores(
            model, load_tokenizer(task.model_dir), task.train_texts, max_length=task.train_cfg.max_length
        )
        del model
        ranking = np.argsort(-scores, axis=1, kind="stable")
    else:
        ranking = np.tile(np.arange(F), (L, 1))
    return Genome(
        layers=L,
        heads=H,
        neurons=F,
        groups=make_groups(ranking, int(own["group_size"])),
        costs=UnitCosts.of(config, int(own["seq_len"])),
    )


def _worker_score(masks) -> float:
    head_keep, neuron_keep = masks
    task = ga._WORKER_TASK
    return float(score_mask(task, head_keep, neuron_keep=neuron_keep)[task.metric])


def run(task: PruneTask) -> PruneResult:
    """``ga_ffn``: the genetic search over heads and neuron groups within the FLOPs budget
    of ``task.rate`` (percent of the encoder's forward FLOPs removed)."""
    params, own = split_params(task.params)
    head_fisher = neuron_fisher = mask_fisher = None
    if own["init"] == "fisher" or own["grouping"] == "fisher" or own["rearrange"]:
        mask_fisher = fisher_importance(task)
        head_fisher, neuron_fisher = mask_fisher.heads, mask_fisher.neurons
    genome = build_genome(task, own, neuron_fisher)
    budget = genome.costs.budget(task.rate)
    ops = BudgetOps(genome, budget)
    initial = [ops.greedy(head_fisher, neuron_fisher)] if own["init"] == "fisher" else []
    signature = {
        "version": SIGNATURE_VERSION,
        "kind": "ga_ffn",
        "shape": [1, genome.length],
        "budget": budget,
        "own": own,
        "grouping": genome.digest(),
        "params": params.search_params(),
        "seed": task.seed,
    }
    store = ga.CheckpointStore(Path(task.workdir) / "ga_ffn_checkpoint.json") if task.workdir is not None else None

    def fitness(bits: np.ndarray) -> float:
        heads, neurons = genome.decode(bits)
        return float(score_mask(task, heads, neuron_keep=neurons)[task.metric])

    log.info(
        "GA-FFN: %d genes (%d heads + %d neuron groups), budget %.4g of %.4g encoder FLOPs (%.1f%% removed), %s",
        genome.length,
        genome.n_heads,
        genome.length - genome.n_heads,
        budget,
        genome.costs.full_encoder,
        task.rate,
        params,
    )
    with ga.worker_pool(task, params.workers, _worker_score) as (pool_many, workers):
        params = replace(params, workers=workers)
        evaluate_many = None if pool_many is None else (lambda batch: pool_many([genome.decode(b) for b in batch]))
        result = ga.evolve(
            (1, genome.length),
            ops.operators(),
            signature,
            fitness,
            params,
            task.seed,
            store,
            evaluate_many=evaluate_many,
            progress=task.progress,
            initial=initial,
        )
    heads, neurons = genome.decode(result.best_mask)
    seeded = {}
    if initial:
        seed_heads, seed_neurons = genome.decode(initial[0])
        changed = int((initial[0] != result.best_mask.ravel()).sum())
        seeded = {
            "seed_fitness": result.scores[ga.mask_key(initial[0])],
            "seed_won": changed == 0,
            "seed_flops_removed_percent": genome.costs.removed_percent(seed_heads, seed_neurons),
            "seed_heads_kept": int(seed_heads.sum()),
            "seed_neurons_kept": int(seed_neurons.sum()),
            "genes_changed_from_seed": changed,
        }
    rearranged = {}
    if own["rearrange"]:
        heads, neurons, record = mask_fisher.rearrange(heads, neurons)
        rearranged = {"rearrangement": record}
        log.info(
            "rearranged the best mask: %d heads and %d neurons moved", record["heads_moved"], record["neurons_moved"]
        )
    kept, full = genome.costs.encoder(heads, neurons), genome.costs.full_encoder
    return PruneResult(
        head_keep=heads,
        unit="flops",
        neuron_keep=neurons,
        flops=(kept, full),
        history=result.history,
        extras={
            "best_fitness": result.best_fitness,
            "fitness_metric": task.metric,
            "G_heads": result.G.ravel()[: genome.n_heads].reshape(genome.layers, genome.heads).tolist(),
            "G_groups": result.G.ravel()[genome.n_heads :].tolist(),
            "evaluations": result.evaluations,
            "cache_hits": result.cache_hits,
            "generations_run": result.generations_run,
            "stopped": result.stopped,
            "budget_flops": budget,
            "flops_removed_percent": 100 * (1 - kept / full),
            "heads_kept": int(heads.sum()),
            "neurons_kept": int(neurons.sum()),
            "genes": genome.length,
            **seeded,
            **rearranged,
            **({"fisher_seconds": mask_fisher.seconds} if mask_fisher is not None else {}),
            **own,
        },
    )
