"""The built-in training losses: ``reset``, ``ce``, ``ce_kl`` and ``ce_kl_state``.

Private: plugins register the classes; users reach them through the registry. All take
``logits [B, T, C]``, a :class:`~nrstream.stream.stream.Chunk` and ``aux`` (a dict) and return a
scalar tensor; the maths lives in :mod:`nrstream_plugins.losses.functional`.
"""

from __future__ import annotations

import torch

from nrstream_plugins._options import OptionError, choice, non_negative_float
from nrstream_plugins.losses import functional as F

__all__ = ["ResetLoss", "CrossEntropyLoss", "AdaptiveLoss", "StateKLLoss", "TARGETS", "NORMALISATIONS"]

TARGETS = ("frames", "decision")
NORMALISATIONS = ("separate", "joint")


def _check_shapes(logits: torch.Tensor, chunk) -> None:
    if logits.dim() != 3 or logits.shape[:2] != chunk.label.shape:
        raise ValueError(
            f"logits must be [B, T, C] matching the chunk's [B, T] {tuple(chunk.label.shape)}, "
            f"got {tuple(logits.shape)}"
        )


def _safe_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    # a chunk without any counted frame contributes 0 (and a zero, still connected, gradient)
    return total / count.clamp_min(1)


class CrossEntropyLoss:
    """Cross-entropy on sample frames; noise frames are ignored (``ce``, continual protocol).

    Trained on endless streams without the KL term, the network has no reason to forget
    and its state saturates: this is the ablation that shows why ``ce_kl`` exists.

    Args:
        target: ``frames`` (default: every sample frame, the paper's dense per-step
            supervision, more gradient per chunk) or ``decision`` (only the decision frame
            ``chunk.end``, exactly what the metrics score).

    Returns the mean cross-entropy over the counted frames (``0`` if there are none).
    """

    protocol = "continual"
    needs_hidden = False

    def __init__(self, *, target: str = "frames") -> None:
        self.target = choice("target", target, TARGETS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r})"

    def ce_frames(self, chunk) -> torch.Tensor:
        """``[B, T]`` bool, the frames the cross-entropy counts."""
        return chunk.mask if self.target == "frames" else chunk.end

    def ce_terms(self, logits: torch.Tensor, chunk) -> tuple[torch.Tensor, torch.Tensor]:
        _check_shapes(logits, chunk)
        frames = self.ce_frames(chunk) & (chunk.label >= 0)
        return F.masked_total(F.cross_entropy(logits, chunk.label), frames)

    def __call__(self, logits: torch.Tensor, chunk, aux: dict | None = None) -> torch.Tensor:
        return _safe_mean(*self.ce_terms(logits, chunk))


class ResetLoss(CrossEntropyLoss):
    """The baseline (``reset``): cross-entropy, segmented protocol.

    The engine streams clean samples back to back (no noise) and resets the state at every
    sample start, so this is classic per-sample training. Same ``target`` option as ``ce``.
    """

    protocol = "segmented"


class AdaptiveLoss(CrossEntropyLoss):
    """The paper's adaptive loss (``ce_kl``): CE where ``m_t = 1``, KL to uniform where ``m_t = 0``.

    On a noise frame the loss is ``KL(U || softmax(z_t)) = -log C - mean_k log p_k``
    (zero for a uniform prediction), so the network learns to say "don't know" between
    samples and to shed what it remembered of the last one: no reset needed.

    Args:
        target: ``frames`` (default) or ``decision``, as for ``ce``.
        kl_weight: ``lambda >= 0`` on the KL term (default ``1.0``).
        normalise: how the two terms are averaged.

            - ``separate`` (default): ``mean CE over counted sample frames +
              lambda * mean KL over noise frames``. Each term stays on its own scale
              whatever the stream's gap/sample ratio, so ``lambda`` means the same
              thing on a stream with long gaps as on one with none, and a chunk made
              mostly of noise cannot drown the classification signal. Gradient w.r.t.
              ``z_t``: ``(softmax - onehot) / n_ce`` on counted sample frames and
              ``lambda * (softmax - 1/C) / n_noise`` on noise frames.
            - ``joint``: one mean over all counted frames,
              ``(sum CE + lambda * sum KL) / (n_ce + n_noise)`` — the paper's single
              masked sum over time steps (``L_total = sum_t m_t L_CE + (1 - m_t) L_KL``,
              as far as we can tell it applies no separate normalisation and no lambda);
              use ``normalise: joint, kl_weight: 1`` to reproduce it. Here the balance of
              the terms follows the gap/sample ratio of the stream.
    """

    def __init__(self, *, target: str = "frames", kl_weight: float = 1.0, normalise: str = "separate") -> None:
        super().__init__(target=target)
        self.kl_weight = non_negative_float("kl_weight", kl_weight)
        self.normalise = choice("normalise", normalise, NORMALISATIONS)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, kl_weight={self.kl_weight!r}, normalise={self.normalise!r})"
        )

    def kl_terms(self, logits: torch.Tensor, chunk, aux: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
        return F.masked_total(F.kl_uniform(logits), ~chunk.mask)

    def __call__(self, logits: torch.Tensor, chunk, aux: dict | None = None) -> torch.Tensor:
        ce_sum, ce_count = self.ce_terms(logits, chunk)
        kl_sum, kl_count = self.kl_terms(logits, chunk, aux)
        if self.normalise == "joint":
            return _safe_mean(ce_sum + self.kl_weight * kl_sum, ce_count + kl_count)
        return _safe_mean(ce_sum, ce_count) + self.kl_weight * _safe_mean(kl_sum, kl_count)


class StateKLLoss(AdaptiveLoss):
    """Ablation (``ce_kl_state``): CE plus ``lambda`` * KL between consecutive hidden states.

    The reading some summaries give of the method: the KL term compares
    ``p_t = softmax(h_t)`` over the hidden units (``aux["hidden"] [B, T, H]``) with the
    previous frame's, ``KL(p_{t-1} || p_t)``, instead of comparing the prediction with
    uniform. Pairs never straddle chunks (the state is detached between them).

    Args:
        target, kl_weight, normalise: as for ``ce_kl``.
        kl_frames: ``noise`` (default: pairs whose second frame is noise, the frames where
            ``ce_kl`` applies its KL) or ``all`` (every consecutive pair).
    """

    needs_hidden = True

    def __init__(
        self,
        *,
        target: str = "frames",
        kl_weight: float = 1.0,
        normalise: str = "separate",
        kl_frames: str = "noise",
    ) -> None:
        super().__init__(target=target, kl_weight=kl_weight, normalise=normalise)
        self.kl_frames = choice("kl_frames", kl_frames, ("noise", "all"))

    def kl_terms(self, logits: torch.Tensor, chunk, aux: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = (aux or {}).get("hidden")
        if hidden is None:
            raise OptionError("loss ce_kl_state needs aux['hidden'] [B, T, H]; the engine passes it when needs_hidden")
        kl = F.kl_softmax(hidden[:, :-1], hidden[:, 1:])
        frames = ~chunk.mask[:, 1:] if self.kl_frames == "noise" else torch.ones_like(chunk.mask[:, 1:])
        return F.masked_total(kl, frames)
