"""Counter-based random numbers: a value is a pure function of (seed, counters).

The stream must be identical whatever chunk size reads it, on CPU and GPU alike. A
stateful generator would tie the draws to the reading order; hashing the coordinates
of each draw (seed, stream id, lane, event) does not. The hash is Chris Wellons'
``lowbias32`` evaluated exactly in int64 (no overflow), so every device agrees.
"""

from __future__ import annotations

import torch

__all__ = ["hash32", "uniform", "randint"]

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    # (x * c) mod 2**32 with x, c < 2**32, split so that no int64 product overflows
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _M32


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash32(seed: int, *counters: torch.Tensor | int) -> torch.Tensor:
    """Hash non-negative int counters (broadcast together) into int64 values in ``[0, 2**32)``."""
    tensors = [c for c in counters if isinstance(c, torch.Tensor)]
    device = tensors[0].device if tensors else None
    h = _mix(torch.tensor((seed ^ 0x9E3779B9) & _M32, dtype=torch.long, device=device))
    for c in counters:
        c = torch.as_tensor(c, dtype=torch.long, device=device)
        h = _mix(h ^ (c & _M32))
        h = _mix(h ^ ((c >> 32) & _M32))
    return h


def uniform(seed: int, *counters: torch.Tensor | int) -> torch.Tensor:
    """float64 uniform in ``[0, 1)``."""
    return hash32(seed, *counters).double() / 2.0**32


def randint(
    low: int | torch.Tensor, high: int | torch.Tensor, seed: int, *counters: torch.Tensor | int
) -> torch.Tensor:
    """int64 uniform in ``[low, high]`` (both inclusive)."""
    span = torch.as_tensor(high) - torch.as_tensor(low) + 1
    draw = (uniform(seed, *counters) * span.to(torch.float64)).long()
    return torch.as_tensor(low) + torch.minimum(draw, span - 1)
