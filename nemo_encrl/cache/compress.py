"""Top-k storage of CTC log-probabilities: the k most likely tokens per frame exactly, the remaining
probability mass spread evenly over the other tokens (so every frame still sums to one)."""

from __future__ import annotations

import math

import torch

# the floor for the spread mass: log(1e-30) keeps exp() finite in float32 when the top k hold everything
_MIN_REST = 1e-30


def topk_compress(log_probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., V] log-probabilities -> (values [..., k], indices [..., k]) of the k largest."""
    if not 0 < k < log_probs.shape[-1]:
        raise ValueError(f"top-k needs 0 < k < vocabulary size {log_probs.shape[-1]}, got k={k}")
    values, indices = torch.topk(log_probs, k, dim=-1)
    return values, indices


def topk_expand(values: torch.Tensor, indices: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(values [..., k], indices [..., k]) -> [..., V] log-probabilities; the mass the k tokens leave,
    1 - sum(exp(values)), is split evenly over the other V - k tokens."""
    values = values.float()
    k = values.shape[-1]
    rest = (1.0 - values.exp().sum(-1, keepdim=True)).clamp_min(_MIN_REST)
    fill = rest.log() - math.log(vocab_size - k)
    out = fill.expand(*values.shape[:-1], vocab_size).clone()
    return out.scatter_(-1, indices.long(), values)
