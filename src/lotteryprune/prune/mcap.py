"""MCAP (paper 003, "Explainable attention pruning: a meta-learning based approach", section
II.D-F and Algorithm 1): a CNN reads every head's attention map, a feed-forward
meta-controller turns what it sees into a Gumbel-softmax head mask, and the controller is
trained so that the relative-distance distribution of the instances' representations changes
as little as possible when the masked heads are removed.

1. The frozen pretrained encoder gives every lottery instance's attention maps (one per
   head; padded query rows and key columns zeroed, then cropped/padded to ``seq_len``) and
   its mean-pooled final representation h. Computed once.
2. The CNN ("standard CNN architecture with 5 convolution layers", here in the layout of
   SMP, the single-shot meta-pruner whose design MCAP follows) is pre-trained for
   ``pattern_steps`` steps as a classifier of the five attention patterns of section II.D
   (vertical, diagonal, vertical+diagonal, block, heterogeneous) on synthetic maps whose
   pattern is known by construction (the paper's 1000 hand-labelled maps are not available),
   then frozen: Algorithm 1 updates the meta-controller only. Each map gives features and an
   importance delta = P(not vertical) ("Except for vertical attention maps, all other
   attention maps help to interpret linguistic information"; Eq. 6).
3. Per episode, on ``k`` instances (the paper's k = 60), the meta-controller (Eq. 7, "a
   Feed-forward Neural Network") maps each head's features and delta, averaged over the
   instances, to a keep logit; a Gumbel-softmax over each layer's heads (SMP's per-layer
   sampling) gives a hard mask of exactly the rate's number of kept heads in the forward
   pass, ``n_keep // layers`` in every layer and the rest wherever the noisy logits are
   highest (:func:`layer_quota_keep`), and the relaxed per-layer softmax in the backward
   pass.
4. The encoder runs again with that mask as head gates (``gated``); the loss is
   KL(r_original || r_masked) of the relative cosine-distance distributions
   r^n_i = d(h_n, h_i) / sum_j d(h_n, h_j) (Eq. 10-14), averaged over the instances.
   Algorithm 1's objective adds ``cnn_loss``, which does not depend on the controller's
   parameters (recorded, not differentiated). The controller is updated with ``optimizer``
   (sgd, as the paper, or adam) every ``accumulate`` episodes (the paper: 8).

The final mask is :func:`layer_quota_keep` of the noise-free logits averaged over every
lottery instance (in chunks of k): exactly the rate's number of heads removed (Eq. 1), and
no layer emptied while the rate leaves at least one head per layer. What
differs from the paper, and why, is listed in docs/methods.md.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time

import numpy as np
import torch
from torch import nn

from ..model import attention
from ..model.batching import collate, encode, length_sorted_batches
from ..model.device import inference_dtype
from ..model.embed import mean_pooled
from ..model.heads import gated, head_layout, n_pruned
from ..model.sources import load_classifier, load_tokenizer
from .task import PruneResult, PruneTask

log = logging.getLogger(__name__)

PATTERNS = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
MIN_SEQ_LEN = 32  # five stride-2 convolutions need 32 x 32 maps to leave a 1 x 1 feature map


class MapCNN(nn.Module):
    """The attention-map CNN: five Conv(4, stride 2, pad 1) layers with ``ndf`` x
    (1, 2, 4, 8, 16) channels and LeakyReLU(0.2), normalised after convolutions 2-5 (SMP's
    discriminator layout; GroupNorm instead of BatchNorm so a map's features do not depend on
    its batch), global average pooling: one map (S x S) -> features (16 ndf), and a 5-way
    attention-pattern classifier on them (Algorithm 1's ``cnn_classifier``)."""

    def __init__(self, ndf: int = 4):
        super().__init__()
        layers, c_in = [], 1
        for i, mult in enumerate((1, 2, 4, 8, 16)):
            c_out = ndf * mult
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False))
            if i > 0:
                layers.append(nn.GroupNorm(1, c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.features = c_in
        self.pattern = nn.Linear(c_in, len(PATTERNS))

    def embed(self, maps: torch.Tensor) -> torch.Tensor:
        """maps [N, S, S] -> features [N, 16 ndf]."""
        if maps.shape[-1] < MIN_SEQ_LEN:
            raise ValueError(
                f"MCAP: maps must be at least {MIN_SEQ_LEN} x {MIN_SEQ_LEN} (mcap.seq_len), got {tuple(maps.shape[-2:])}"
            )
        return self.net(maps.unsqueeze(1))

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """maps [N, S, S] -> (features [N, 16 ndf], importance delta [N]): delta is the
        probability that the map is not the vertical pattern, the one pattern section II.D
        says carries no linguistic information (Eq. 6's sigmoid over the CNN's output,
        here the pattern softmax)."""
        feats = self.embed(maps)
        return feats, 1 - torch.softmax(self.pattern(feats), -1)[:, PATTERNS.index("vertical")]


class MetaController(nn.Module):
    """The feed-forward meta-controller (Eq. 7): one head's CNN features and importance delta
    -> its keep logit. Shared by all heads (no per-head parameter), so the ranking is a
    function of the attention maps."""

    def __init__(self, features: int, hidden: int = 16):
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(features + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, feats: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """feats [heads, C], delta [heads] (averaged over an episode's instances) -> logits [heads]."""
        return self.ff(torch.cat([feats, delta[:, None]], -1)).squeeze(-1)


@torch.no_grad()
def describe_maps(cnn: MapCNN, maps: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """maps [n, heads, S, S] -> (features [n, heads, C], delta [n, heads]) of the frozen CNN."""
    n, h, s, _ = maps.shape
    flat = maps.reshape(n * h, s, s)
    parts = [cnn(flat[i : i + chunk].float()) for i in range(0, n * h, chunk)]
    feats = torch.cat([f for f, _ in parts]).view(n, h, -1)
    return feats, torch.cat([d for _, d in parts]).view(n, h)


def relative_distances(reps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row n: the cosine distances of instance n to the others, normalised to sum 1 (Eq. 11).

    reps [k, D] -> [k, k - 1] (the zero self-distance left out)."""
    x = nn.functional.normalize(reps.float(), dim=-1)
    dist = (1 - x @ x.T).clamp_min(0) + eps
    k = dist.shape[0]
    off = ~torch.eye(k, dtype=torch.bool, device=dist.device)
    dist = dist[off].view(k, k - 1)
    return dist / dist.sum(-1, keepdim=True)


def rdd_kl(original: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean over instances of KL(p_original || p_masked) of the relative-distance distributions."""
    p, q = relative_distances(original), relative_distances(masked)
    return (p * (p.log() - q.log())).sum(-1).mean()


def layer_quota_keep(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Keep-mask [L, H] with exactly ``n_keep`` heads: the ``n_keep // L`` best of every layer
    (SMP's per-layer budget, so no layer is emptied while n_keep >= L), then the best of the
    rest over all layers. Ties: the lower (layer, head) index is kept first."""
    layers, heads = scores.shape
    if not 0 < n_keep <= layers * heads:
        raise ValueError(f"cannot keep {n_keep} of {layers * heads} heads")
    base = n_keep // layers
    flat = scores.detach().double().cpu().flatten()
    keep = torch.zeros(layers * heads, dtype=torch.bool)
    for layer in range(layers):
        row = flat[layer * heads : (layer + 1) * heads]
        order = sorted(range(heads), key=lambda h: (-float(row[h]), h))
        keep[[layer * heads + h for h in order[:base]]] = True
    rest = sorted((i for i in range(layers * heads) if not keep[i]), key=lambda i: (-float(flat[i]), i))
    keep[rest[: n_keep - base * layers]] = True
    return keep.view(layers, heads).to(scores.device)


def straight_through_mask(
    logits: torch.Tensor, n_keep: int, tau: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Gumbel-softmax over each layer's heads with a fixed budget and a straight-through
    gradient. ``logits`` [L, H]. Forward: exactly ``n_keep`` ones, :func:`layer_quota_keep`
    of logits + Gumbel(0, 1) noise (within a layer, the Gumbel-top-k sample of its heads
    without replacement); backward: the relaxed c_l * softmax((logits_l + noise_l) / tau)
    per layer, c_l the heads layer l keeps, so a layer's heads compete for its budget."""
    u = torch.rand(logits.shape, generator=generator).clamp(1e-10, 1 - 1e-7).to(logits.device)
    noisy = logits - torch.log(-torch.log(u))
    hard = layer_quota_keep(noisy.detach(), n_keep).to(logits.dtype)
    soft = hard.sum(-1, keepdim=True) * torch.softmax(noisy / tau, -1)
    return hard + soft - soft.detach()


def pattern_maps(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthetic attention maps [n, size, size] of the 5 patterns (labels [n]), each
    over a random valid length (padded rows and columns zero, as the real maps): rows are
    softmax distributions over the valid keys with noise."""
    labels = torch.arange(n) % len(PATTERNS)
    maps = torch.zeros(n, size, size)
    lengths = torch.randint(6, size + 1, (n,), generator=generator)
    for i in range(n):
        t = int(lengths[i])
        q = torch.arange(t)[:, None].float()
        kpos = torch.arange(t)[None, :].float()
        logits = torch.randn(t, t, generator=generator) * 0.5
        kind = PATTERNS[int(labels[i])]
        target = 0 if torch.rand((), generator=generator) < 0.5 else t - 1  # [CLS] or [SEP]
        offset = int(torch.randint(-1, 2, (), generator=generator))
        if kind == "vertical":
            logits[:, target] += 6.0
        elif kind == "diagonal":
            logits += 6.0 * (kpos - q == offset).float()
        elif kind == "vertical+diagonal":
            logits[:, target] += 4.0
            logits += 4.0 * (kpos - q == offset).float()
        elif kind == "block":
            cut = int(torch.randint(2, max(3, t - 1), (), generator=generator))
            same = (q < cut) == (kpos < cut)
            logits += 4.0 * same.float()
        else:  # heterogeneous: broad, irregular rows
            logits = torch.randn(t, t, generator=generator) * 1.5
        maps[i, :t, :t] = torch.softmax(logits, -1)
    return maps, labels


def _episodes(n: int, k: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` episodes of min(k, n) instances, cycling through seeded permutations so every
    instance is used about equally often."""
    k = min(k, n)
    stream: list[int] = []
    while len(stream) < k * count:
        stream += rng.permutation(n).tolist()
    return [np.asarray(stream[i * k : (i + 1) * k]) for i in range(count)]


def clean_maps(attentions: torch.Tensor, attention_mask: torch.Tensor, size: int) -> torch.Tensor:
    """[layers, B, heads, T, T] attention probabilities -> [B, layers * heads, size, size]
    with padded query rows and key columns zeroed (a map depends on its own tweet only, not
    on the longer tweets batched with it), cropped or zero-padded to ``size``."""
    m = attention_mask.to(attentions.dtype)
    maps = attentions * m[None, :, None, :, None] * m[None, :, None, None, :]
    return attention.fit_maps(maps.transpose(0, 1), size).flatten(1, 2)


class _Observer:
    """The frozen encoder's view of the lottery instances, computed once and cached:
    mean-pooled representations [n, D] and attention maps [n, L*H, S, S] (float16: 22 MB for
    147 tweets on MiniLM at S = 32). Forward passes run on length-sorted micro-batches."""

    def __init__(
        self,
        encoder,
        tokenizer,
        ids: list[list[int]],
        seq_len: int,
        device,
        micro_batch: int = 16,
        dtype: str = "float32",
    ):
        self.encoder, self.tokenizer, self.ids = encoder, tokenizer, ids
        self.seq_len, self.device, self.micro_batch = seq_len, device, micro_batch
        precision = inference_dtype(dtype, device)  # the encoder's passes, as training's (bf16 autocast or fp32)
        self.autocast = (
            (lambda: torch.autocast(torch.device(device).type, dtype=precision))
            if precision != torch.float32
            else contextlib.nullcontext
        )
        self.reps, self.maps = self._observe_all()

    def chunks(self, idx: np.ndarray) -> list[np.ndarray]:
        idx = np.asarray(idx)
        return [idx[part] for part in length_sorted_batches([len(self.ids[i]) for i in idx], self.micro_batch)]

    def batch(self, idx) -> dict:
        return collate(self.tokenizer, self.ids, idx, self.device)

    @torch.no_grad()
    def _observe_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.ids)
        reps, maps = [None] * n, [None] * n
        for chunk in self.chunks(np.arange(n)):
            batch = self.batch(chunk)
            with self.autocast():
                out = self.encoder(**batch, output_attentions=True)
            if out.attentions is None or any(a is None for a in out.attentions):
                raise RuntimeError("MCAP needs attention maps: load the model with attn_implementation='eager'")
            m = clean_maps(torch.stack([a.float() for a in out.attentions]), batch["attention_mask"], self.seq_len)
            r = mean_pooled(out.last_hidden_state.float(), batch["attention_mask"])
            for j, i in enumerate(chunk):
                reps[int(i)] = r[j].cpu()
                maps[int(i)] = m[j].to(torch.float16).cpu()
        return torch.stack(reps), torch.stack(maps)

    def observe(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(representations [B, D] float32, maps [B, L*H, S, S] float32) in ``idx`` order."""
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return self.reps[idx].to(self.device), self.maps[idx].to(self.device).float()

    def masked(self, model, gates: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        """Representations [B, D] (``idx`` order) of the encoder with heads gated by ``gates``."""
        parts, where = [], []
        with gated(model, gates), self.autocast():
            for chunk in self.chunks(idx):
                batch = self.batch(chunk)
                parts.append(mean_pooled(self.encoder(**batch).last_hidden_state.float(), batch["attention_mask"]))
                where += [int(i) for i in chunk]
        position = {i: n for n, i in enumerate(where)}
        return torch.cat(parts)[torch.as_tensor([position[int(i)] for i in idx], device=parts[0].device)]


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"mcap.optimizer must be sgd or adam, got {name!r}")


def pretrain_patterns(
    cnn: MapCNN, steps: int, size: int, lr: float, generator: torch.Generator, batch: int = 40
) -> tuple[float, float]:
    """Train the CNN (trunk and pattern classifier) on synthetic pattern maps; returns its
    accuracy and cross-entropy (``cnn_loss``) on a fresh batch of 100 afterwards."""
    device = next(cnn.parameters()).device
    if steps > 0:
        opt = torch.optim.Adam(cnn.parameters(), lr=lr)
        for _ in range(steps):
            maps, labels = pattern_maps(batch, size, generator)
            loss = nn.functional.cross_entropy(cnn.pattern(cnn.embed(maps.to(device))), labels.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        maps, labels = pattern_maps(100, size, generator)
        logits = cnn.pattern(cnn.embed(maps.to(device))).cpu()
        return float((logits.argmax(-1) == labels).float().mean()), float(nn.functional.cross_entropy(logits, labels))


def run(task: PruneTask) -> PruneResult:
    start = time.perf_counter()
    p = task.params
    episodes, k, ndf, lr, tau, seq_len = (
        int(p["episodes"]),
        int(p["k"]),
        int(p["cnn_channels"]),
        float(p["lr"]),
        float(p["tau"]),
        int(p["seq_len"]),
    )
    accumulate, pattern_steps = int(p["accumulate"]), int(p["pattern_steps"])
    if seq_len < MIN_SEQ_LEN:
        raise ValueError(f"mcap.seq_len must be at least {MIN_SEQ_LEN} (five stride-2 convolutions), got {seq_len}")
    model = load_classifier(task.model_dir, seed=task.train_cfg.seed, attn_implementation="eager").to(task.device)
    tokenizer = load_tokenizer(task.model_dir)
    encoder = model.base_model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    layers, heads = head_layout(model)
    total = layers * heads
    n_prune = n_pruned(total, task.rate)
    n_keep = total - n_prune

    torch.manual_seed(task.seed)
    cnn = MapCNN(ndf).to(task.device)
    controller = MetaController(cnn.features).to(task.device)
    generator = torch.Generator().manual_seed(task.seed)
    rng = np.random.default_rng(task.seed)
    t0 = time.perf_counter()
    observer = _Observer(
        encoder,
        tokenizer,
        encode(tokenizer, task.train_texts, task.train_cfg.max_length),
        seq_len,
        task.device,
        dtype=task.train_cfg.dtype,
    )
    timing = {"observe": time.perf_counter() - t0}
    n = len(observer.ids)
    if n < 3:
        raise ValueError(f"MCAP needs at least 3 lottery instances for relative distances, got {n}")
    # the CNN: pre-trained on the pattern task, then frozen (Algorithm 1 updates the
    # meta-controller only); its features and delta of every instance's maps, once
    t0 = time.perf_counter()
    pattern_accuracy, cnn_loss = pretrain_patterns(cnn, pattern_steps, seq_len, 1e-3, generator)
    for param in cnn.parameters():
        param.requires_grad_(False)
    cnn.eval()
    feats_all, delta_all = describe_maps(cnn, observer.maps.to(task.device))
    timing.update(cnn=time.perf_counter() - t0, masked=0.0, backward=0.0)

    optimizer = _optimizer(p["optimizer"], controller.parameters(), lr)
    history = []
    plan = _episodes(n, k, episodes, rng)
    if task.progress:
        from tqdm.auto import tqdm

        plan = tqdm(plan, desc="mcap", mininterval=5)
    optimizer.zero_grad(set_to_none=True)
    for episode, idx in enumerate(plan):
        t1 = time.perf_counter()
        rows = torch.as_tensor(idx, dtype=torch.long)
        logits = controller(feats_all[rows].mean(0), delta_all[rows].mean(0)).view(layers, heads)
        gates = straight_through_mask(logits, n_keep, tau, generator)
        kl = rdd_kl(observer.reps[rows].to(task.device), observer.masked(model, gates, idx))
        t2 = time.perf_counter()
        (kl / accumulate).backward()
        if (episode + 1) % accumulate == 0 or episode + 1 == episodes:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        timing["masked"] += t2 - t1
        timing["backward"] += time.perf_counter() - t2
        # objective_loss = kl_divergence + cnn_loss (Algorithm 1); cnn_loss is constant here
        history.append({"episode": episode, "kl": kl.item(), "objective": kl.item() + cnn_loss})

    with torch.no_grad():  # final head logits: noise-free, over every lottery instance in chunks of k
        order = rng.permutation(n)
        final = torch.zeros(total, dtype=torch.float64)
        for i in range(0, n, k):
            rows = torch.as_tensor(order[i : i + k], dtype=torch.long)
            final += controller(feats_all[rows].mean(0), delta_all[rows].mean(0)).double().cpu() * len(rows)
        final /= n
    scores = final.view(layers, heads).numpy()
    keep = layer_quota_keep(torch.as_tensor(scores), n_keep).numpy()
    kls = [h["kl"] for h in history]
    tenth = max(1, math.ceil(len(kls) / 10))
    return PruneResult(
        head_keep=keep,
        history=history,
        extras={
            "scores": scores.tolist(),
            "delta": delta_all.mean(0).view(layers, heads).tolist(),
            "final_kl": kls[-1] if kls else None,
            "kl_first_tenth": float(np.mean(kls[:tenth])) if kls else None,
            "kl_last_tenth": float(np.mean(kls[-tenth:])) if kls else None,
            "pattern_accuracy": pattern_accuracy,
            "cnn_loss": cnn_loss,
            "optimizer_steps": math.ceil(episodes / accumulate),
            "instances": n,
            "phase_seconds": timing,
            "seconds": time.perf_counter() - start,
        },
    )
