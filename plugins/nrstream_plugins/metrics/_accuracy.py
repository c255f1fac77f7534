"""Accuracy at decision frames: overall (with a Wilson interval), by sample position, rolling.

Private: plugins register the classes. ``update(chunk, logits [B, T, C], aux=None)`` scores
the argmax prediction at every decision frame (``chunk.end``); counts stay on the logits'
device and are read back only in ``compute``.
"""

from __future__ import annotations

import torch

from nrstream.stats import Z95
from nrstream.stats import wilson_interval as _wilson
from nrstream_plugins._options import positive_int
from nrstream_plugins.metrics.rolling import Rolling

__all__ = ["Accuracy", "AccuracyByPosition", "RollingAccuracy", "wilson_interval", "Z95"]


def wilson_interval(correct: int, total: int, z: float = Z95) -> list[float] | None:
    """Wilson score interval ``[lo, hi]`` for ``correct / total``; ``None`` when ``total == 0``."""
    if total == 0:
        return None
    return list(_wilson(correct, total, z))


def curve(x: list, y: list, x_label: str, y_label: str) -> dict:
    """A curve as the report renders it (one figure per curve key): floats, axis labels."""
    return {
        "x": [float(v) for v in x],
        "y": [float(v) for v in y],
        "x_label": x_label,
        "y_label": y_label,
    }


def decision_hits(chunk, logits: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool: a correct prediction at a decision frame."""
    return (logits.argmax(-1) == chunk.label) & chunk.end


class Accuracy:
    """Accuracy at decision frames (``accuracy``).

    ``compute()`` -> scalars ``{"accuracy", "ci95_low", "ci95_high", "correct", "total"}``
    (Wilson score interval, 95 %); ``accuracy`` and the bounds are ``None`` before any
    decision.
    """

    needs_hidden = False
    produces = {k: "scalar" for k in ("accuracy", "ci95_low", "ci95_high", "correct", "total")}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._correct: torch.Tensor | int = 0
        self._total: torch.Tensor | int = 0

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        self._correct = self._correct + decision_hits(chunk, logits).sum()
        self._total = self._total + chunk.end.sum()

    def compute(self) -> dict:
        correct, total = int(self._correct), int(self._total)
        lo, hi = wilson_interval(correct, total) or (None, None)
        return {
            "accuracy": correct / total if total else None,
            "ci95_low": lo,
            "ci95_high": hi,
            "correct": float(correct),
            "total": float(total),
        }


class AccuracyByPosition:
    """Accuracy of the ``k``-th sample of a lane (``accuracy_by_position``).

    ``k = chunk.sample_index`` at the decision frame (1 for a lane's first sample): with
    the state never reset, accuracy falling with ``k`` is saturation.

    Args:
        max_position: positions ``1..max_position`` are tracked; later decisions are only
            counted in ``beyond``.

    ``compute()`` -> ``{"accuracy": curve, "decisions": curve, "beyond": scalar}``: the
    curves' ``x`` are the positions ``1..K``, ``K`` the last position seen (at most
    ``max_position``), leaving out any position without a decision; ``y`` the accuracy at
    each, and the decisions counted at each. ``beyond``: decisions past ``max_position``.
    """

    needs_hidden = False
    produces = {"accuracy": "curve", "decisions": "curve", "beyond": "scalar"}

    def __init__(self, *, max_position: int = 128) -> None:
        self.max_position = positive_int("max_position", max_position)
        self.reset()

    def reset(self) -> None:
        self._correct: torch.Tensor | None = None
        self._total: torch.Tensor | None = None
        self._beyond: torch.Tensor | int = 0

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        if self._total is None:
            self._correct = torch.zeros(self.max_position + 1, dtype=torch.long, device=logits.device)
            self._total = torch.zeros_like(self._correct)
        k = chunk.sample_index
        tracked = chunk.end & (k <= self.max_position)
        slot = torch.where(tracked, k, 0).reshape(-1)  # slot 0 collects what is not tracked
        self._total.scatter_add_(0, slot, tracked.reshape(-1).long())
        self._correct.scatter_add_(0, slot, (tracked & decision_hits(chunk, logits)).reshape(-1).long())
        self._beyond = self._beyond + (chunk.end & (k > self.max_position)).sum()

    def compute(self) -> dict:
        total = [] if self._total is None else self._total[1:].tolist()
        correct = [] if self._correct is None else self._correct[1:].tolist()
        last = max((i + 1 for i, n in enumerate(total) if n), default=0)
        kept = [(k + 1, c, n) for k, (c, n) in enumerate(zip(correct[:last], total[:last], strict=True)) if n]
        position = [k for k, _, _ in kept]
        where = "sample position k in the lane (1: first)"
        return {
            "accuracy": curve(position, [c / n for _, c, n in kept], where, "accuracy"),
            "decisions": curve(position, [n for _, _, n in kept], where, "decisions counted"),
            "beyond": float(self._beyond),
        }


class RollingAccuracy:
    """Accuracy over the last ``window`` decisions, as a curve (``rolling_accuracy``).

    Decisions are taken in stream order — by frame time, then lane — and fed to a generic
    :class:`~nrstream_plugins.metrics.rolling.Rolling` window (memory: ``window`` values).
    Selecting the decisions of a chunk has a data-dependent size, so this metric reads one
    count back from the device per ``update``.

    Args:
        window: ``W``, decisions per window (default 1000).
        every: keep one curve point every ``every`` decisions (default 100).

    ``compute()`` -> ``{"rolling_accuracy": curve, "last": scalar, "decisions": scalar}``:
    the curve's ``x`` are decisions seen, ``y`` the accuracy over the last ``min(x, W)``
    decisions; ``last`` is the current value, ``decisions`` the count seen.

    ``window`` defaults to the config's ``evaluate.rolling_window`` (``config_defaults``).
    """

    needs_hidden = False
    produces = {"rolling_accuracy": "curve", "last": "scalar", "decisions": "scalar"}
    config_defaults = {"window": "evaluate.rolling_window"}

    def __init__(self, *, window: int = 1000, every: int = 100) -> None:
        self.window = positive_int("window", window)
        self.every = positive_int("every", every)
        self._rolling = Rolling(self.window)
        self.reset()

    def reset(self) -> None:
        self._rolling.reset()
        # Curve points sit at decisions every, 2 * every, ...: their x needs no storage, their
        # y lives in one device buffer that doubles when full. (Keeping a small tensor per
        # update instead fragments the host heap between the large per-chunk tensors: the
        # resident memory of a CPU run grew without bound, benchmarks/soak.py.)
        self._y: torch.Tensor | None = None
        self._points = 0
        self._last: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        hits = (logits.argmax(-1) == chunk.label).T  # [T, B]: time-major = stream order
        values = hits[chunk.end.T]
        if values.numel() == 0:
            return
        seen = self._rolling.seen
        means = self._rolling.update(values)
        # decision number n = seen + 1 + i is kept when n % every == 0
        kept = means[(-(seen + 1)) % self.every :: self.every]
        if kept.numel():
            self._append(kept)
        self._last = means[-1]

    def _append(self, y: torch.Tensor) -> None:
        end = self._points + y.numel()
        if self._y is None or end > self._y.numel():
            grown = y.new_empty(max(end, 2 * self._points, 256))
            if self._points:
                grown[: self._points] = self._y[: self._points]
            self._y = grown
        self._y[self._points : end] = y
        self._points = end

    def compute(self) -> dict:
        return {
            "rolling_accuracy": curve(
                [self.every * (i + 1) for i in range(self._points)],
                [] if self._y is None else self._y[: self._points].tolist(),
                "decisions seen",
                f"accuracy over the last {self.window} decisions",
            ),
            "last": None if self._last is None else float(self._last),
            "decisions": float(self._rolling.seen),
        }
