"""What the network does between samples: prediction entropy on noise, hidden-state norm.

Private: plugins register the classes.
"""

from __future__ import annotations

import torch

from nrstream_plugins._options import OptionError, positive_int
from nrstream_plugins.losses import functional as F

__all__ = ["NoiseEntropy", "StateNorm"]


class NoiseEntropy:
    """Mean normalised entropy ``H(softmax(z_t)) / log C`` over noise frames (``noise_entropy``).

    1 means "don't know" (uniform), what ``ce_kl`` trains for; 0 is a confident prediction.
    ``compute()`` -> ``{"noise_entropy": float | None, "frames": int}``.
    """

    needs_hidden = False

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
        return {"noise_entropy": float(self._sum) / frames if frames else None, "frames": frames}


class StateNorm:
    """L2 norm of the hidden state per frame, averaged over lanes, over time (``state_norm``).

    Reads ``aux["hidden"] [B, T, H]``. Frames are binned by ``every`` (memory: one sum per
    bin), so the curve of an endless stream stays small; unbounded growth is saturation.

    Args:
        every: frames per curve point (default 100).

    ``compute()`` -> ``{"x": [first frame of each bin], "y": [mean norm in the bin],
    "mean": overall mean norm, "frames": frames seen, "every"}``.
    """

    needs_hidden = True

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
        if self._sum is None:
            return {"x": [], "y": [], "mean": None, "frames": 0, "every": self.every}
        sums, counts = self._sum.tolist(), self._count.tolist()
        return {
            "x": [i * self.every for i in range(len(sums))],
            "y": [s / n for s, n in zip(sums, counts, strict=True)],
            "mean": sum(sums) / sum(counts),
            "frames": self.frames,
            "every": self.every,
        }
