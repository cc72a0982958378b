"""MCAP (seed 003): meta-controller attention head pruning, self-supervised.

Per episode, on ``k`` instances of the lottery sample (the paper's k = 60):

1. the frozen pretrained encoder gives every head's attention map (eager attention,
   cropped/padded to ``seq_len``) and the mean-pooled final representations ``h``;
2. a small CNN reads each map as an image; its features, averaged over the instances,
   give each head an importance ``delta = sigmoid(score)`` (paper Eq. 6);
3. the meta-controller (a feed-forward layer over the CNN features and ``delta``, plus a
   learned per-head bias) turns them into keep logits; a straight-through Gumbel-softmax
   (binary, i.e. logistic noise) samples a keep-mask with *exactly* the rate's number of
   heads kept in the forward pass (the fixed keep budget), relaxed in the backward pass;
4. the encoder runs again with that mask as head gates (``gated``) and the loss is
   the KL divergence between the relative-distance distributions of the instances before
   and after masking (paper Eq. 10-14): for instance n, r^n_i = d(h_n, h_i) / sum_j d(h_n, h_j)
   with the cosine distance d; KL(r_original || r_masked), averaged over n.

Only the CNN and the controller learn (Adam, one update per episode; the paper used SGD
updated every 8 episodes, too few updates for a 30-episode CPU budget). The final mask
keeps the heads with the highest noise-free controller logits, averaged over up to
``FINAL_CHUNKS`` chunks of k instances. The paper's extra "cnn_loss" term (Algorithm 1) is
not specified and is left out.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from ..model import attention
from ..model.embed import mean_pooled
from ..model.batching import collate, encode, length_sorted_batches
from .baselines import keep_from_scores
from .task import PruneResult, PruneTask
from ..model.heads import gated, head_layout, n_pruned
from ..model.sources import load_classifier, load_tokenizer

log = logging.getLogger(__name__)

FINAL_CHUNKS = 4  # chunks of k instances the final, noise-free head logits are averaged over


class MapCNN(nn.Module):
    """A small CNN: one attention map (1 x S x S) -> a feature vector (channels)."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.score = nn.Linear(channels, 1)

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """maps [B, heads, S, S] -> (features [heads, C] averaged over B, importance [heads])."""
        b, n, s, _ = maps.shape
        feats = self.net(maps.reshape(b * n, 1, s, s)).view(b, n, -1).mean(0)
        return feats, torch.sigmoid(self.score(feats).squeeze(-1))


class MetaController(nn.Module):
    """CNN features and importances of all heads -> one keep logit per head."""

    def __init__(self, heads: int, channels: int = 8, hidden: int = 16):
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(channels + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.bias = nn.Parameter(torch.zeros(heads))

    def forward(self, feats: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
        return self.ff(torch.cat([feats, importance[:, None]], -1)).squeeze(-1) + self.bias


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


def straight_through_mask(logits: torch.Tensor, n_keep: int, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    """Binary Gumbel-softmax with a fixed budget: exactly ``n_keep`` ones forward, the relaxed
    keep probabilities sigmoid((logit + logistic noise) / tau) backward."""
    u = torch.rand(logits.shape, generator=generator).clamp(1e-6, 1 - 1e-6).to(logits.device)
    noisy = logits + (u.log() - (-u).log1p())
    soft = torch.sigmoid(noisy / tau)
    hard = torch.zeros_like(soft)
    hard[torch.topk(noisy.detach(), n_keep).indices] = 1.0
    return hard + soft - soft.detach()


def _episodes(n: int, k: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` episodes of min(k, n) instances, cycling through seeded permutations so every
    instance is used about equally often."""
    k = min(k, n)
    stream: list[int] = []
    while len(stream) < k * count:
        stream += rng.permutation(n).tolist()
    return [np.asarray(stream[i * k : (i + 1) * k]) for i in range(count)]


class _Observer:
    """The frozen encoder's view of lottery instances, computed once per instance and cached:
    mean-pooled representations [D] and attention maps [L*H, S, S] (float16, ``seq_len``^2
    each, so the cache holds unique instances x L x H x S^2 x 2 bytes: 22 MB for 147 tweets
    on MiniLM). Forward passes run on length-sorted micro-batches to avoid padding."""

    def __init__(self, encoder, tokenizer, ids: list[list[int]], seq_len: int, device, micro_batch: int = 16):
        self.encoder, self.tokenizer, self.ids = encoder, tokenizer, ids
        self.seq_len, self.device, self.micro_batch = seq_len, device, micro_batch
        self.reps: dict[int, torch.Tensor] = {}
        self.maps: dict[int, torch.Tensor] = {}

    def chunks(self, idx: np.ndarray) -> list[np.ndarray]:
        idx = np.asarray(idx)
        return [idx[part] for part in length_sorted_batches([len(self.ids[i]) for i in idx], self.micro_batch)]

    def batch(self, idx) -> dict:
        return collate(self.tokenizer, self.ids, idx, self.device)

    @torch.no_grad()
    def observe(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(representations [B, D] float32, maps [B, L*H, S, S] float32) in ``idx`` order."""
        missing = [int(i) for i in idx if int(i) not in self.reps]
        for chunk in self.chunks(np.asarray(missing, dtype=int)) if missing else []:
            batch = self.batch(chunk)
            out = self.encoder(**batch, output_attentions=True)
            if out.attentions is None or any(a is None for a in out.attentions):
                raise RuntimeError("MCAP needs attention maps: load the model with attn_implementation='eager'")
            maps = attention.fit_maps(torch.stack([a.float() for a in out.attentions], 1), self.seq_len).flatten(1, 2)
            reps = mean_pooled(out.last_hidden_state.float(), batch["attention_mask"])
            for j, i in enumerate(chunk):
                self.reps[int(i)] = reps[j].cpu()
                self.maps[int(i)] = maps[j].to(torch.float16).cpu()
        reps = torch.stack([self.reps[int(i)] for i in idx]).to(self.device)
        maps = torch.stack([self.maps[int(i)] for i in idx]).to(self.device).float()
        return reps, maps

    def masked(self, model, gates: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        """Representations [B, D] (``idx`` order) of the encoder with heads gated by ``gates``."""
        parts, where = [], []
        with gated(model, gates):
            for chunk in self.chunks(idx):
                batch = self.batch(chunk)
                parts.append(mean_pooled(self.encoder(**batch).last_hidden_state.float(), batch["attention_mask"]))
                where += [int(i) for i in chunk]
        position = {i: n for n, i in enumerate(where)}
        return torch.cat(parts)[torch.as_tensor([position[int(i)] for i in idx], device=parts[0].device)]


def run(task: PruneTask) -> PruneResult:
    start = time.perf_counter()
    p = task.params
    episodes, k = int(p.get("episodes", 30)), int(p.get("k", 60))
    channels, lr, tau, seq_len = int(p.get("cnn_channels", 8)), float(p.get("lr", 0.01)), float(p.get("tau", 1.0)), int(p.get("seq_len", 32))
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
    cnn = MapCNN(channels).to(task.device)
    controller = MetaController(total, channels).to(task.device)
    optimizer = torch.optim.Adam([*cnn.parameters(), *controller.parameters()], lr=lr)
    generator = torch.Generator().manual_seed(task.seed)
    rng = np.random.default_rng(task.seed)
    observer = _Observer(encoder, tokenizer, encode(tokenizer, task.train_texts, task.train_cfg.max_length), seq_len, task.device)
    n = len(observer.ids)
    if n < 3:
        raise ValueError(f"MCAP needs at least 3 lottery instances for relative distances, got {n}")

    history = []
    plan = _episodes(n, k, episodes, rng)
    if task.progress:
        from tqdm.auto import tqdm

        plan = tqdm(plan, desc="mcap", mininterval=5)
    timing = {"observe": 0.0, "cnn": 0.0, "masked": 0.0, "backward": 0.0}
    for episode, idx in enumerate(plan):
        t0 = time.perf_counter()
        reps, maps = observer.observe(idx)
        t1 = time.perf_counter()
        feats, importance = cnn(maps)
        logits = controller(feats, importance)
        gates = straight_through_mask(logits, n_keep, tau, generator).view(layers, heads)
        t2 = time.perf_counter()
        loss = rdd_kl(reps, observer.masked(model, gates, idx))
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t4 = time.perf_counter()
        for key, a, b in (("observe", t0, t1), ("cnn", t1, t2), ("masked", t2, t3), ("backward", t3, t4)):
            timing[key] += b - a
        history.append({"episode": episode, "kl": loss.item()})

    with torch.no_grad():  # final head logits: noise-free, averaged over a few chunks of k
        order = rng.permutation(n)
        chunks = [order[i : i + k] for i in range(0, n, k)][:FINAL_CHUNKS]
        final = torch.zeros(total, dtype=torch.float64)
        for idx in chunks:
            _, maps = observer.observe(idx)
            feats, importance = cnn(maps)
            final += controller(feats, importance).double().cpu() * len(idx)
        final /= sum(len(c) for c in chunks)
    scores = final.view(layers, heads).numpy()
    keep = keep_from_scores(scores, n_prune)
    return PruneResult(
        head_keep=keep,
        history=history,
        extras={
            "scores": scores.tolist(),
            "final_kl": history[-1]["kl"] if history else None,
            "instances_seen": len(observer.reps),
            "phase_seconds": timing,
            "seconds": time.perf_counter() - start,
        },
    )
