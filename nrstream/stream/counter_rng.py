"""Counter-based random numbers: a value is a pure function of (seed, counters).

The stream must be identical whatever chunk size reads it, on CPU and GPU alike. A
stateful generator would tie the draws to the reading order; hashing the coordinates
of each draw (seed, stream id, lane, event) does not. The hash is Chris Wellons'
``lowbias32`` evaluated exactly in int64 (no overflow), so every device agrees.

The hash absorbs its counters one after another, so a prefix that does not change (seed
and salt, then the lane) can be absorbed once (:func:`absorb`) and each draw pays only
for its own counter: ``hash32(seed, salt, lane, k) == absorb(absorb(seed_state(seed),
salt, lane), k)``. Plain-int counters are absorbed in Python, tensors on their device.
"""

from __future__ import annotations

import torch

__all__ = ["hash32", "uniform", "randint", "seed_state", "absorb", "from_hash"]

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


def _mix_int(x: int) -> int:
    """:func:`_mix` on a Python int (exact, the same value)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def seed_state(seed: int) -> int:
    """The hash state before any counter."""
    return _mix_int((int(seed) ^ 0x9E3779B9) & _M32)


def absorb(h: int | torch.Tensor, *counters: torch.Tensor | int) -> int | torch.Tensor:
    """Absorb non-negative int counters (broadcast together) into the state ``h``.

    Stays a Python int while ``h`` and the counters are ints; a tensor counter moves the
    state onto its device.
    """
    for c in counters:
        if isinstance(h, int) and not isinstance(c, torch.Tensor):
            c = int(c)
            h = _mix_int(h ^ (c & _M32))
            h = _mix_int(h ^ ((c >> 32) & _M32))
            continue
        device = c.device if isinstance(c, torch.Tensor) else h.device
        c = torch.as_tensor(c, dtype=torch.long, device=device)
        h = _mix(c.new_tensor(h) ^ (c & _M32)) if isinstance(h, int) else _mix(h ^ (c & _M32))
        h = _mix(h ^ ((c >> 32) & _M32))
    return h


def hash32(seed: int, *counters: torch.Tensor | int) -> torch.Tensor:
    """Hash non-negative int counters (broadcast together) into int64 values in ``[0, 2**32)``."""
    h = absorb(seed_state(seed), *counters)
    return torch.tensor(h, dtype=torch.long) if isinstance(h, int) else h


def uniform(seed: int, *counters: torch.Tensor | int) -> torch.Tensor:
    """float64 uniform in ``[0, 1)``."""
    return hash32(seed, *counters).double() / 2.0**32


def from_hash(h: torch.Tensor, low: int | torch.Tensor, high: int | torch.Tensor) -> torch.Tensor:
    """int64 uniform in ``[low, high]`` (both inclusive) from hash values ``h`` in ``[0, 2**32)``."""
    span = torch.as_tensor(high) - torch.as_tensor(low) + 1
    draw = (h.double() / 2.0**32 * span.to(torch.float64)).long()
    return torch.as_tensor(low) + torch.minimum(draw, span - 1)


def randint(
    low: int | torch.Tensor, high: int | torch.Tensor, seed: int, *counters: torch.Tensor | int
) -> torch.Tensor:
    """int64 uniform in ``[low, high]`` (both inclusive)."""
    return from_hash(hash32(seed, *counters), low, high)
