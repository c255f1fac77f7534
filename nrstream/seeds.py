"""Seed derivation: one run seed, many independent and reproducible streams.

Every random stream of a run (training stream, validation, each test length, weight
initialisation, ...) gets its own seed, derived from ``run.seed`` and names that say
what it is for, so adding a stream never shifts the others. Torch-free.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """An independent 31-bit seed for ``parts`` (e.g. ``("test", 16)``) under ``seed``.

    The first four bytes (little-endian) of ``sha256("seed:part1:part2...")``, masked to
    31 bits so every RNG API accepts it. Stable across Python versions and platforms.
    """
    blob = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF
