"""Stateless per-frame loss maths shared by the loss and metric plugins.

Every function takes ``logits [B, T, C]`` (any float dtype; half precision is upcast to
float32) and returns one value per frame, ``[B, T]``, so callers choose which frames count
and how they are normalised.
"""

from __future__ import annotations

import math

import torch

__all__ = ["log_probs", "cross_entropy", "kl_uniform", "normalised_entropy", "kl_softmax", "masked_total"]


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log softmax`` over the last dimension, in at least float32."""
    logits = _at_least_float32(logits)
    # z - logsumexp(z) is log_softmax; torch's log_softmax kernel is several times slower on
    # the CPU for a short class dimension (C = 10-35 here), forward and backward
    # (benchmarks/training.py, README "Performance").
    return logits - torch.logsumexp(logits, dim=-1, keepdim=True)


def cross_entropy(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``-log p[label]`` per frame, ``[B, T]``; ``0`` where ``label < 0`` (noise)."""
    logp = log_probs(logits)
    nll = -logp.gather(-1, label.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(label >= 0, nll, torch.zeros_like(nll))


def kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """``KL(uniform || softmax(logits))`` per frame, ``[B, T]``, in nats.

    ``sum_k (1/C) log((1/C) / p_k) = -log C - mean_k log p_k``; zero exactly when the
    prediction is uniform. Its gradient w.r.t. the logits is ``softmax - 1/C``.
    """
    logits = _at_least_float32(logits)
    # = logsumexp(z) - mean_k z_k - log C: no [B, T, C] log-probabilities needed
    return torch.logsumexp(logits, -1) - logits.mean(-1) - math.log(logits.shape[-1])


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H(softmax(logits)) / log C`` per frame, ``[B, T]``, in ``[0, 1]`` (1: uniform).

    Written as ``(logsumexp(z) - sum_k p_k z_k) / log C`` so that constant logits give
    exactly 1 (no ``0 * log 0`` either).
    """
    logits = _at_least_float32(logits)
    lse = torch.logsumexp(logits, -1)
    # exp(z - logsumexp z) is the softmax, without torch.softmax's slow short-last-dim CPU kernel
    entropy = lse - (torch.exp(logits - lse.unsqueeze(-1)) * logits).sum(-1)
    return entropy / math.log(logits.shape[-1])


def kl_softmax(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(p_logits) || softmax(q_logits))`` over the last dimension, ``[...]``."""
    logp, logq = log_probs(p_logits), log_probs(q_logits)
    return (logp.exp() * (logp - logq)).sum(-1)


def masked_total(values: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of values where weight, count)``; both tensors, no host sync."""
    weight = weight.to(values.dtype)
    return (values * weight).sum(), weight.sum()
