"""What a (pruned) model costs: parameters and analytic forward FLOPs.

:func:`forward_flops` reads the actual module shapes, so it covers every kind of removal
(heads, feed-forward neurons, dropped layers). :class:`UnitCosts` is the same count as a
linear function of the kept units, before any model is pruned: what a FLOP-budgeted search
(``unit: flops``, issue #18) plans with. For a layer keeping ``n`` heads and ``f`` neurons
at sequence length S (hidden size h, head size d)::

    FLOPs = n * (8 S h d + 4 S^2 d) + f * 4 S h          (0 for a dropped layer)

plus the pooler and classifier on [CLS] (2 h^2 + 2 h labels), which no mask changes. These
are exactly twice Kwon et al.'s MACs per head (4 S h d + 2 S^2 d) and per neuron (2 S h).
Biases, LayerNorm, softmax and embeddings are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .heads import layers_of


@dataclass(frozen=True)
class Cost:
    params: int
    flops: float  # forward FLOPs for one sequence (2 x multiply-adds)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model, seq_len: int) -> float:
    """Analytic forward FLOPs of the encoder + classifier for one sequence of ``seq_len``."""
    cfg = model.config
    h = cfg.hidden_size
    flops = 0.0
    for layer in layers_of(model):
        a = layer.attention.self.query.out_features  # kept heads x head_dim
        inter = layer.intermediate.dense.out_features
        flops += 2 * seq_len * h * a * 3  # Q, K, V projections
        flops += 2 * seq_len * seq_len * a * 2  # scores and weighted values
        flops += 2 * seq_len * a * h  # output projection
        flops += 2 * seq_len * h * inter * 2  # feed-forward
    flops += 2 * h * h + 2 * h * cfg.num_labels  # pooler and classifier on [CLS]
    return flops


def cost(model, seq_len: int) -> Cost:
    return Cost(params=count_params(model), flops=forward_flops(model, seq_len))


@dataclass(frozen=True)
class UnitCosts:
    """Forward FLOPs per kept head and per kept feed-forward neuron at ``seq_len`` (see the
    module docstring), for a model of ``layers`` x ``heads`` heads and ``neurons`` neurons
    per layer."""

    seq_len: int
    layers: int
    heads: int
    neurons: int
    per_head: float
    per_neuron: float
    constant: float  # pooler + classifier

    @classmethod
    def of(cls, config, seq_len: int) -> UnitCosts:
        """From a (pretrained, unpruned) model's config."""
        h, heads = int(config.hidden_size), int(config.num_attention_heads)
        d = h // heads
        S = int(seq_len)
        return cls(
            seq_len=S,
            layers=int(config.num_hidden_layers),
            heads=heads,
            neurons=int(config.intermediate_size),
            per_head=float(8 * S * h * d + 4 * S * S * d),
            per_neuron=float(4 * S * h),
            constant=float(2 * h * h + 2 * h * int(getattr(config, "num_labels", 2))),
        )

    @property
    def full_encoder(self) -> float:
        """Encoder FLOPs of the unpruned model (what ``unit: flops`` rates are a percent of)."""
        return self.layers * (self.heads * self.per_head + self.neurons * self.per_neuron)

    def encoder(self, head_keep: np.ndarray, neuron_keep: np.ndarray | None = None) -> float:
        """Encoder FLOPs of the model these masks leave. Without ``neuron_keep`` a layer with
        no head goes, feed-forward included (the paper's rule, :func:`..heads.reshape_to`)."""
        head_keep = np.asarray(head_keep, dtype=bool)
        heads = head_keep.sum(1).astype(np.float64)
        if neuron_keep is None:
            neurons = np.where(heads > 0, float(self.neurons), 0.0)
        else:
            neurons = np.asarray(neuron_keep, dtype=bool).sum(1).astype(np.float64)
        return float((heads * self.per_head + neurons * self.per_neuron).sum())

    def total(self, head_keep: np.ndarray, neuron_keep: np.ndarray | None = None) -> float:
        """What :func:`forward_flops` gives for the physically pruned model."""
        return self.encoder(head_keep, neuron_keep) + self.constant

    def removed_percent(self, head_keep: np.ndarray, neuron_keep: np.ndarray | None = None) -> float:
        """Percent of the encoder's forward FLOPs the masks remove (a ``unit: flops`` rate)."""
        return 100.0 * (1.0 - self.encoder(head_keep, neuron_keep) / self.full_encoder)

    def budget(self, rate: float) -> float:
        """Encoder FLOPs allowed at ``rate`` percent removed."""
        if not 0 <= rate < 100:
            raise ValueError(f"FLOPs rate must be a percent in [0, 100), got {rate}")
        return self.full_encoder * (1.0 - rate / 100.0)
