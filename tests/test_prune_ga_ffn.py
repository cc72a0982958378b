"""Feed-forward neurons (issue #18): gating and physical removal next to heads, FLOPs of
both against an independent count, mask files, the plumbing through score / fine-tuning /
bench, and ga_ffn's budget-preserving genetic operators."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import GA_PARAMS, prune_task, train_cfg
from lotteryprune import bench, finetune
from lotteryprune.model.cost import UnitCosts, forward_flops
from lotteryprune.model.heads import (
    Masks,
    gated,
    layers_of,
    load_mask_set,
    mask_set_unit,
    prune_heads,
    prune_structure,
    save_mask_set,
    save_pruned,
)
from lotteryprune.model.sources import load_classifier, load_tokenizer
from lotteryprune.prune import ga, ga_ffn
from lotteryprune.prune.task import PruneResult, PruneTask

TEXTS = ["what a great day with friends", "i hate waiting so long", "ok", "this is not good at all, really not"]


def _batch(model_dir):
    return load_tokenizer(model_dir)(TEXTS, padding=True, return_tensors="pt")


def _outputs(model, batch, heads=None, neurons=None):
    """(last hidden state of [CLS] and the real tokens, logits): the logits of the tiny random
    classifier are nearly constant, so the encoder's output is compared too."""
    model.eval()
    with torch.no_grad():
        if heads is None:
            out = model(**batch, output_hidden_states=True)
        else:
            h = torch.as_tensor(heads, dtype=torch.float32)
            n = None if neurons is None else torch.as_tensor(neurons, dtype=torch.float32)
            with gated(model, h, n):
                out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].bool()
    return out.hidden_states[-1][mask], out.logits


def _masks(seed):
    """Random head and neuron masks of tiny:3x4 (FFN 64) with one layer keeping no head but
    neurons, one keeping heads but no neuron, or one keeping nothing (dropped)."""
    rng = np.random.default_rng(seed)
    heads, neurons = rng.random((3, 4)) < 0.5, rng.random((3, 64)) < 0.4
    kind = seed % 3
    if kind == 0:
        heads[0], neurons[0] = False, True
    elif kind == 1:
        heads[1], neurons[1] = True, False
    else:
        heads[2], neurons[2] = False, False
    heads[(kind + 1) % 3, 0] = True  # never everything gone
    return heads, neurons


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("seed", range(6))
def test_heads_and_neurons_pruned_model_equals_the_gated_model(tiny_model_dir, tmp_path, seed, attn):
    heads, neurons = _masks(seed)
    batch = _batch(tiny_model_dir)
    model = load_classifier(tiny_model_dir, seed=seed, attn_implementation=attn)
    want_hidden, want_logits = _outputs(model, batch, heads, neurons)
    full_hidden, _ = _outputs(model, batch)
    assert (want_hidden - full_hidden).abs().max() > 1e-3  # the masks do change the model
    prune_heads(model, heads, neurons)
    kept = heads.any(1) | neurons.any(1)
    assert len(layers_of(model)) == int(kept.sum())
    assert [layer.intermediate.dense.out_features for layer in layers_of(model)] == [
        int(r.sum()) for r in neurons[kept]
    ]
    assert [layer.attention.self.query.out_features // 8 for layer in layers_of(model)] == [
        int(r.sum()) for r in heads[kept]
    ]
    hidden, logits = _outputs(model, batch)
    torch.testing.assert_close(hidden, want_hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, want_logits, atol=1e-6, rtol=1e-5)
    # save_pretrained / load_classifier rebuilds the same shape and outputs
    save_pruned(model, load_tokenizer(tiny_model_dir), tmp_path / "m")
    reloaded = load_classifier(tmp_path / "m", attn_implementation=attn)
    hidden2, logits2 = _outputs(reloaded, batch)
    torch.testing.assert_close(hidden2, want_hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits2, want_logits, atol=1e-6, rtol=1e-5)
    assert forward_flops(reloaded, 16) == forward_flops(model, 16)


def test_without_a_neuron_mask_an_emptied_layer_goes_with_its_feed_forward(tiny_model_dir):
    heads = np.ones((3, 4), bool)
    heads[1] = False
    batch = _batch(tiny_model_dir)
    paper = prune_structure(load_classifier(tiny_model_dir), heads)  # the paper's rule
    assert len(layers_of(paper)) == 2
    independent = prune_structure(load_classifier(tiny_model_dir), heads, np.ones((3, 64), bool))
    assert len(layers_of(independent)) == 3 and layers_of(independent)[1].attention.self.query.out_features == 0
    # gating follows the same two rules
    base = load_classifier(tiny_model_dir)
    torch.testing.assert_close(_outputs(paper, batch)[0], _outputs(base, batch, heads)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        _outputs(independent, batch)[0], _outputs(base, batch, heads, np.ones((3, 64)))[0], atol=1e-5, rtol=1e-5
    )
    untouched = load_classifier(tiny_model_dir)
    assert prune_structure(untouched, np.ones((3, 4), bool), np.ones((3, 64), bool)) is untouched
    assert getattr(untouched.config, "lottery_pruning", None) is None


def test_per_sample_gates_equal_one_gate_per_text(tiny_model_dir):
    model = load_classifier(tiny_model_dir).eval()
    batch = _batch(tiny_model_dir)
    rng = np.random.default_rng(0)
    hg = torch.as_tensor(rng.random((4, 3, 4)), dtype=torch.float32)
    ng = torch.as_tensor(rng.random((4, 3, 64)), dtype=torch.float32)
    with torch.no_grad(), gated(model, hg, ng):
        together = model(**batch, output_hidden_states=True).hidden_states[-1]
    for i in range(4):
        one = {k: v[i : i + 1] for k, v in batch.items()}
        with torch.no_grad(), gated(model, hg[i], ng[i]):
            alone = model(**one, output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_flops_against_an_independent_count(tiny_model_dir, seed):
    """forward_flops and UnitCosts against torch's own FLOP counter on one unpadded sequence
    (matmuls, linears and attention products; no LayerNorm, softmax or embeddings)."""
    S = 12
    ids = torch.randint(5, 100, (1, S))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    heads, neurons = _masks(seed)
    for neuron_keep in (None, neurons):
        model = load_classifier(tiny_model_dir, attn_implementation="eager").eval()
        costs = UnitCosts.of(model.config, S)
        prune_structure(model, heads, neuron_keep)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(**batch)
        counted = counter.get_total_flops()
        assert forward_flops(model, S) == counted
        assert costs.total(heads, neuron_keep) == counted
    full = load_classifier(tiny_model_dir, attn_implementation="eager").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        full(**batch)
    assert costs.full_encoder + costs.constant == counter.get_total_flops()
    assert costs.removed_percent(heads, neurons) == pytest.approx(
        100 * (1 - costs.encoder(heads, neurons) / costs.full_encoder)
    )


def test_mask_sets_carry_neurons_and_their_unit(tmp_path):
    heads = np.array([[1, 0], [0, 1]], bool)
    neurons = np.array([[1, 0, 1], [0, 0, 1]], bool)
    weights = {"a.weight": torch.tensor([[True, False]])}
    path = tmp_path / "m.safetensors"
    save_mask_set(path, {0: (heads, None, neurons), 1: (heads, weights), 2: Masks(heads)}, unit="flops")
    got = load_mask_set(path)
    assert (got[0].heads == heads).all() and (got[0].neurons == neurons).all() and got[0].weights is None
    assert got[1].neurons is None and torch.equal(got[1].weights["a.weight"], weights["a.weight"])
    assert got[2].neurons is None and got[2].weights is None
    assert mask_set_unit(path) == "flops"
    old = tmp_path / "old.safetensors"  # files written before the unit was saved
    save_mask_set(old, {0: (heads, weights)})
    assert mask_set_unit(old) == "weights"
    save_mask_set(old, {0: (heads, None)})
    assert mask_set_unit(old) == "heads"


def test_achieved_rate_per_unit():
    heads = np.ones((2, 2), bool)
    heads[0, 0] = False
    assert PruneResult(head_keep=heads).achieved_rate() == 25.0
    assert PruneResult(head_keep=heads, unit="flops", flops=(30.0, 120.0)).achieved_rate() == 75.0
    with pytest.raises(ValueError, match="flops"):
        PruneResult(head_keep=heads, unit="flops").achieved_rate()


def _split():
    texts = ["good fun", "bad news", "love it", "hate it", "so happy", "very sad"] * 4
    labels = [1, 0, 1, 0, 1, 0] * 4
    parts = (["train"] * 4 + ["valid", "test"]) * 4
    return pd.DataFrame(
        {"id": [f"t{i}" for i in range(24)], "text": texts, "label": labels, "source": "s", "split": parts}
    )


def test_neuron_masks_flow_through_finetuning_and_bench(tiny_model_dir):
    heads, neurons = _masks(2)  # layer 2 keeps nothing: dropped
    cfg = train_cfg(epochs=1, lr=1e-3, batch_size=4, max_length=16)
    section = {k: v for k, v in cfg.to_dict().items() if k not in ("max_length", "seed", "dtype")}
    records, preds = finetune.run_cell(
        tiny_model_dir,
        _split(),
        runs=[(0, 0)],
        masks={0: Masks(heads, None, neurons)},
        augment=None,
        augment_section=section,
        train_section=section,
        max_length=16,
        dtype="float32",
        device="cpu",
        progress=False,
    )
    full = load_classifier(tiny_model_dir)
    expect = prune_structure(load_classifier(tiny_model_dir), heads, neurons)
    assert records[0]["layers"] == 2 and records[0]["params"] == sum(p.numel() for p in expect.parameters())
    assert records[0]["params"] < sum(p.numel() for p in full.parameters()) and len(preds) == 4
    r = bench.compare_masks(
        tiny_model_dir,
        {"x": Masks(heads, None, neurons)},
        batch_size=2,
        seq_len=8,
        warmup=1,
        repeats=2,
        dtype="float32",
        seed=0,
        device="cpu",
    )["x"]
    costs = UnitCosts.of(full.config, 8)
    assert r["pruned"]["flops"] == costs.total(heads, neurons) and r["neurons_kept"] == int(neurons.sum())
    assert r["neurons_per_layer"] == neurons.sum(1).tolist() and r["layers_kept"] == 2


# --------------------------------------------------------------------------- ga_ffn


def _genome(seq_len=16, group_size=16, F=64):
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_attention_heads=4, num_hidden_layers=3, intermediate_size=F)
    ranking = np.stack([np.random.default_rng(i).permutation(F) for i in range(3)])
    return ga_ffn.Genome(
        layers=3,
        heads=4,
        neurons=F,
        groups=ga_ffn.make_groups(ranking, group_size),
        costs=UnitCosts.of(config, seq_len),
    )


def test_groups_partition_every_layer_and_decode_matches_the_costs():
    genome = _genome(group_size=24)  # 64 = 24 + 24 + 16: the last group is smaller
    assert [len(g) for g in genome.groups[0]] == [24, 24, 16] and genome.length == 12 + 9
    for layer in genome.groups:
        assert sorted(np.concatenate(layer).tolist()) == list(range(64))
    rng = np.random.default_rng(0)
    for _ in range(20):
        bits = rng.random(genome.length) < 0.5
        heads, neurons = genome.decode(bits)
        assert genome.flops(bits) == pytest.approx(genome.costs.encoder(heads, neurons))
        assert neurons.sum() == sum(
            len(g)
            for layer_bits, layer in zip(bits[12:].reshape(3, 3), genome.groups)
            for b, g in zip(layer_bits, layer)
            if b
        )


@pytest.mark.parametrize("rate", [30, 50, 70, 90])
def test_budget_operators_keep_every_individual_within_the_budget_and_full(rate):
    genome = _genome()
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(rate))
    rng = np.random.default_rng(rate)
    population = [ops.random(rng) for _ in range(20)]
    G = rng.random(genome.length)
    for _ in range(200):
        a, b = rng.choice(len(population), 2, replace=False)
        child = ops.crossover(population[a], population[b], rng)
        assert ops.check(child) is None
        mutant = ops.mutate(child, G, rng)
        assert ops.check(mutant) is None and (mutant != child).any()
        population[int(rng.integers(len(population)))] = mutant
    for m in population:
        heads, neurons = genome.decode(m)
        assert genome.costs.encoder(heads, neurons) <= genome.costs.budget(rate) + 1e-6
        assert genome.costs.removed_percent(heads, neurons) >= rate - 1e-9
    # random individuals spread their budget between heads and FFN differently
    shares = [genome.decode(m)[0].sum() for m in population[:10]]
    assert len(set(shares)) > 1


def test_crossover_keeps_what_both_parents_keep():
    genome = _genome()
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(50))
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = ops.random(rng), ops.random(rng)
        child = ops.crossover(a, b, rng)
        assert (child[a & b]).all()


def test_check_names_an_individual_over_budget_or_not_full():
    genome = _genome()
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(50))
    assert "over the budget" in ops.check(np.ones(genome.length, bool))
    assert "unused" in ops.check(np.zeros(genome.length, bool))


def test_ga_ffn_search_finds_a_hidden_target():
    genome = _genome()
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(60))
    target = ops.random(np.random.default_rng(99))

    def fitness(m):
        return float((m == target).mean())

    params = {**GA_PARAMS, "population": 10, "generations": 25, "patience": 25}
    first = ga.evolve((1, genome.length), ops.operators(), {"test": 1}, fitness, params, seed=0)
    assert first.best_fitness > first.history[0]["mean"]
    assert ops.check(first.best_mask.ravel()) is None
    # every individual ever evaluated kept the budget (evolve checks the invariant each generation)
    for generation in first.populations:
        for key in generation:
            assert ops.check(ga.key_mask(key, (1, genome.length)).ravel()) is None


def _tiny_task(model_dir, texts, labels, params, rate, **job) -> PruneTask:
    """A ga_ffn task on the tiny model: half the texts score a mask, one short epoch trains it."""
    return prune_task((model_dir, texts, labels), rate, params, valid=12, epochs=1, max_length=16, **job)


def test_ga_ffn_runs_on_the_tiny_model_and_resumes(tiny_corpus, tmp_path):
    d, texts, labels = tiny_corpus(24)
    params = {
        **GA_PARAMS,
        "population": 3,
        "generations": 2,
        "group_size": 32,
        "grouping": "activation",
        "seq_len": 16,
        "init": "random",
        "rearrange": False,
    }
    task = _tiny_task(d, texts, labels, params, 60, workdir=tmp_path / "w")
    (tmp_path / "w").mkdir()
    result = ga_ffn.run(task)
    assert result.unit == "flops" and result.neuron_keep.shape == (2, 64)
    assert result.achieved_rate() >= 60.0
    costs = UnitCosts.of(load_classifier(d).config, 16)
    assert result.flops == (costs.encoder(result.head_keep, result.neuron_keep), costs.full_encoder)
    assert result.extras["genes"] == 8 + 2 * 2
    from lotteryprune.prune import score_mask

    assert (
        result.extras["best_fitness"] == score_mask(task, result.head_keep, neuron_keep=result.neuron_keep)["macro_f1"]
    )
    again = ga_ffn.run(task)  # the finished checkpoint is resumed: same result, nothing retrained
    assert (again.head_keep == result.head_keep).all() and (again.neuron_keep == result.neuron_keep).all()
    with pytest.raises(KeyError, match="prune.ga_ffn"):
        ga_ffn.split_params({k: v for k, v in params.items() if k != "smoothing"})


def test_ga_ffn_parallel_workers_find_what_one_worker_finds(tiny_corpus, tmp_path):
    """ga_ffn's workers are ga's pool (spawned processes that survive a Snakemake script):
    two of them return the mask one process finds, with the same fitness."""
    d, texts, labels = tiny_corpus(24)
    params = {
        **GA_PARAMS,
        "population": 3,
        "generations": 2,
        "group_size": 32,
        "grouping": "index",
        "seq_len": 16,
        "init": "random",
        "rearrange": False,
    }

    def task(workers):
        return _tiny_task(d, texts, labels, {**params, "workers": workers}, 60, threads=2)

    one, two = ga_ffn.run(task(1)), ga_ffn.run(task(2))
    assert (one.head_keep == two.head_keep).all() and (one.neuron_keep == two.neuron_keep).all()
    assert one.extras["best_fitness"] == two.extras["best_fitness"]


def test_greedy_seed_is_kwon_et_al_search_when_a_group_is_one_neuron():
    """``init: fisher``'s seed at group_size 1 is exactly fisher.search_flops's masks; with
    larger groups it keeps the budget, is full, and keeps more importance than random ones."""
    from lotteryprune.prune import fisher

    rng = np.random.default_rng(3)
    hi, ni = rng.gamma(0.5, size=(3, 4)), rng.gamma(0.5, size=(3, 64)) * 0.05
    for rate in (20, 50, 80):
        genome = ga_ffn.Genome(
            layers=3,
            heads=4,
            neurons=64,
            groups=ga_ffn.make_groups(np.tile(np.arange(64), (3, 1)), 1),
            costs=_genome().costs,
        )
        ops = ga_ffn.BudgetOps(genome, genome.costs.budget(rate))
        seed = ops.greedy(hi, ni)
        assert ops.check(seed) is None
        heads, neurons = genome.decode(seed)
        want_heads, want_neurons, _ = fisher.search_flops(hi, ni, genome.costs, genome.costs.budget(rate))
        assert (heads == want_heads).all() and (neurons == want_neurons).all(), rate

    genome = _genome(group_size=16)
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(50))
    seed = ops.greedy(hi, ni)
    assert ops.check(seed) is None
    groups = np.asarray([ni[layer, idx].sum() for layer, gs in enumerate(genome.groups) for idx in gs])
    value = np.concatenate([hi.ravel(), groups])
    assert all(value[seed].sum() >= value[ops.random(np.random.default_rng(i))].sum() for i in range(50))
    with pytest.raises(ValueError, match="importance of"):
        ops.greedy(hi, ni[:, :-1])


def test_evolve_opens_with_the_initial_individuals():
    genome = _genome()
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(60))
    seed = ops.random(np.random.default_rng(123))
    params = {**GA_PARAMS, "population": 4, "generations": 2, "patience": 2}
    result = ga.evolve(
        (1, genome.length), ops.operators(), {"t": 1}, lambda m: float(m.sum()), params, 0, initial=[seed]
    )
    assert result.populations[0][0] == ga.mask_key(seed) and len(result.populations[0]) == 4
    assert result.scores[ga.mask_key(seed)] == float(seed.sum())
    unseeded = ga.evolve((1, genome.length), ops.operators(), {"t": 1}, lambda m: float(m.sum()), params, 0)
    assert ga.mask_key(seed) not in unseeded.populations[0]
    with pytest.raises(ValueError, match="initial individuals"):
        ga.evolve((1, genome.length), ops.operators(), {"t": 1}, lambda m: 0.0, params, 0, initial=[seed] * 5)


def test_ga_ffn_seeded_with_fisher_keeps_the_seed_unless_something_beats_it(tiny_corpus):
    d, texts, labels = tiny_corpus(24)
    params = {**GA_PARAMS, "population": 3, "generations": 2, "group_size": 16, "grouping": "fisher", "seq_len": 16}
    params["rearrange"] = False
    task = _tiny_task(d, texts, labels, {**params, "init": "fisher"}, 50)
    result = ga_ffn.run(task)
    x = result.extras
    assert x["init"] == "fisher" and x["grouping"] == "fisher" and set(x["fisher_seconds"]) == {"finetune", "fisher"}
    assert x["best_fitness"] >= x["seed_fitness"]
    assert x["seed_won"] == (x["genes_changed_from_seed"] == 0)
    assert x["seed_flops_removed_percent"] >= 50.0 and result.achieved_rate() >= 50.0
    # the seed is Kwon et al.'s search over the genome built from the same Fisher importance
    mask_fisher = ga_ffn.fisher_importance(task)
    hi, ni = mask_fisher.heads, mask_fisher.neurons
    genome = ga_ffn.build_genome(task, ga_ffn.split_params(task.params)[1], ni)
    ops = ga_ffn.BudgetOps(genome, genome.costs.budget(50))
    seed_heads, seed_neurons = genome.decode(ops.greedy(hi, ni))
    assert x["seed_heads_kept"] == int(seed_heads.sum()) and x["seed_neurons_kept"] == int(seed_neurons.sum())
    with pytest.raises(ValueError, match="prune.ga_ffn.init"):
        ga_ffn.split_params({**params, "init": "fisher_heads"})


def test_rearrange_moves_the_gas_best_mask_within_each_layer_as_kwon_et_al(tiny_corpus):
    """``rearrange: true``: the same search, then Kwon et al.'s rearrangement of its best mask
    with the seed's mask gradients: the counts per layer (so the FLOPs) stay, which heads
    and neurons are kept is the official greedy pass's choice, and its loss does not rise."""
    from lotteryprune.prune import fisher

    d, texts, labels = tiny_corpus(24)
    params = {**GA_PARAMS, "population": 3, "generations": 2, "group_size": 16, "grouping": "fisher", "seq_len": 16}
    params["init"] = "fisher"
    plain = ga_ffn.run(_tiny_task(d, texts, labels, {**params, "rearrange": False}, 50))
    task = _tiny_task(d, texts, labels, {**params, "rearrange": True}, 50)
    moved = ga_ffn.run(task)
    assert moved.extras["best_fitness"] == plain.extras["best_fitness"]  # the search is unchanged
    assert (moved.head_keep.sum(1) == plain.head_keep.sum(1)).all()
    assert (moved.neuron_keep.sum(1) == plain.neuron_keep.sum(1)).all()
    assert moved.flops == plain.flops
    mf = ga_ffn.fisher_importance(task)
    assert (moved.head_keep == fisher.rearrange(plain.head_keep, mf.head_grads)).all()
    assert (moved.neuron_keep == fisher.rearrange(plain.neuron_keep, mf.neuron_grads)).all()
    record = moved.extras["rearrangement"]
    assert record["neurons_moved"] > 0 and (moved.neuron_keep != plain.neuron_keep).any()
    for unit in ("heads", "neurons"):
        assert record["block_fisher_loss_after"][unit] <= record["block_fisher_loss_before"][unit] + 1e-9
    assert "rearrangement" not in plain.extras
