"""A window over the last ``W`` values of a stream that arrives in batches (river ``utils.rolling`` spirit).

Generic: feed it any per-decision value (1/0 correctness, a per-decision loss, ...) in
stream order and it returns, for every new value, the mean over the last ``W`` values seen
so far. Memory is bounded: only the last ``W`` values are kept, on the values' device.
"""

from __future__ import annotations

import torch

from nrstream_plugins._options import positive_int

__all__ = ["Rolling"]


class Rolling:
    """Rolling mean over the last ``window`` values.

    Example::

        >>> r = Rolling(2)
        >>> r.update(torch.tensor([1.0, 0.0, 0.0])).tolist()
        [1.0, 0.5, 0.0]
    """

    def __init__(self, window: int) -> None:
        self.window = positive_int("window", window)
        self.reset()

    def __repr__(self) -> str:
        return f"Rolling(window={self.window}, seen={self.seen})"

    def reset(self) -> None:
        self._tail: torch.Tensor | None = None  # the last min(window, seen) values, oldest first
        self.seen = 0

    def update(self, values: torch.Tensor) -> torch.Tensor:
        """Fold in ``values [M]`` (stream order); returns ``[M]`` float64 window means, one per value."""
        values = values.reshape(-1).to(torch.float64)
        tail = values.new_zeros(0) if self._tail is None else self._tail
        joined = torch.cat([tail, values])
        # prefix sums over the tail plus the batch only: no drift over an endless stream
        prefix = torch.cat([joined.new_zeros(1), torch.cumsum(joined, 0)])
        hi = torch.arange(tail.numel() + 1, joined.numel() + 1, device=values.device)
        lo = (hi - self.window).clamp_min(0)
        means = (prefix[hi] - prefix[lo]) / (hi - lo)
        self._tail = joined[-self.window :]
        self.seen += values.numel()
        return means
