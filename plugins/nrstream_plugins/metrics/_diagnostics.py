"""What the network does between samples: prediction entropy on noise, hidden-state norm.

Private: plugins register the classes.
"""

from __future__ import annotations

import torch

from nrstream_plugins._options import OptionError, positive_int
from nrstream_plugins.losses import functional as F
from nrstream_plugins.metrics._accuracy import curve

__all__ = ["NoiseEntropy", "StateNorm"]


class NoiseEntropy:
    """Mean normalised entropy ``H(softmax(z_t)) / log C`` over noise frames (``noise_entropy``).

    1 means "don't know" (uniform), what ``ce_kl`` trains for; 0 is a confident prediction.
    ``compute()`` -> scalars ``{"noise_entropy": float | None, "frames": float}``.
    """

    needs_hidden = False
    produces = {"noise_entropy": "scalar", "frames": "scalar"}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sum: torch.Tensor | float = 0.0
        self._frames: torch.Tensor | int = 0

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        total, count = F.masked_total(F.normalised_entropy(logits).double(), ~chunk.mask)
        self._sum = self._sum + total
        self._frames = self._frames + count.long()

    def compute(self) -> dict:
        frames = int(self._frames)
        return {"noise_entropy": float(self._sum) / frames if frames else None, "frames": float(frames)}


class StateNorm:
    """L2 norm of the hidden state per frame, averaged over lanes, over time (``state_norm``).

    Reads ``aux["hidden"] [B, T, H]``. Frames are binned by ``every`` (memory: one sum per
    bin), so the curve of an endless stream stays small; unbounded growth is saturation.

    Args:
        every: frames per curve point (default 100).

    ``compute()`` -> ``{"state_norm": curve, "mean": scalar, "frames": scalar}``: the
    curve's ``x`` is the first frame of each bin, ``y`` the mean norm in the bin; ``mean``
    the overall mean norm (``None`` before any frame), ``frames`` the frames seen.
    """

    needs_hidden = True
    produces = {"state_norm": "curve", "mean": "scalar", "frames": "scalar"}

    def __init__(self, *, every: int = 100) -> None:
        self.every = positive_int("every", every)
        self.reset()

    def reset(self) -> None:
        self._sum: torch.Tensor | None = None  # per bin: sum over lanes and frames of the norm
        self._count: torch.Tensor | None = None  # per bin: lane-frames
        self.frames = 0

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        hidden = (aux or {}).get("hidden")
        if hidden is None:
            raise OptionError("metric state_norm needs aux['hidden'] [B, T, H]; pass aux when needs_hidden")
        lanes, length = hidden.shape[:2]
        per_frame = torch.linalg.vector_norm(hidden.double(), dim=-1).sum(0)  # [T], summed over lanes
        bins = (self.frames + torch.arange(length, device=hidden.device)) // self.every
        needed = (self.frames + length - 1) // self.every + 1
        if self._sum is None:
            self._sum = hidden.new_zeros(0, dtype=torch.float64)
            self._count = hidden.new_zeros(0, dtype=torch.long)
        if needed > self._sum.numel():
            grow = needed - self._sum.numel()
            self._sum = torch.cat([self._sum, self._sum.new_zeros(grow)])
            self._count = torch.cat([self._count, self._count.new_zeros(grow)])
        self._sum.index_add_(0, bins, per_frame)
        self._count.index_add_(0, bins, torch.full_like(bins, lanes))
        self.frames += length

    def compute(self) -> dict:
        sums = [] if self._sum is None else self._sum.tolist()
        counts = [] if self._count is None else self._count.tolist()
        return {
            "state_norm": curve(
                [i * self.every for i in range(len(sums))],
                [s / n for s, n in zip(sums, counts, strict=True)],
                "frame of the endless run",
                "mean hidden-state L2 norm",
            ),
            "mean": sum(sums) / sum(counts) if counts else None,
            "frames": float(self.frames),
        }
