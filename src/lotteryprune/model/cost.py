"""What a (pruned) model costs: parameters and analytic forward FLOPs."""

from __future__ import annotations

from dataclasses import dataclass

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

