"""Confidence intervals used by the evaluation and the reports (torch-free).

* :func:`wilson_interval` — how well a test split pins down the accuracy of *one*
  trained network (a proportion of ``total`` decisions).
* :func:`student_t_interval` — how much a result moves when the network is trained
  again (the spread of one number across seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Z95", "wilson_interval", "student_t_interval", "t_quantile"]

#: the 97.5 % quantile of the standard normal: a two-sided 95 % interval
Z95 = 1.959963984540054


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``correct / total`` (95 % for ``z=Z95``).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = correct/total``.
    The interval always holds ``p`` itself: at 0 % or 100 % the closed form misses the end
    point by a rounding error (``0.9999999999999999``), which would give a plot a negative
    error bar. ``total <= 0`` gives ``(0.0, 1.0)`` (nothing is known).
    """
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t  # lazy: scipy costs ~0.3 s to import and most callers never need it

    return float(t.ppf(probability, df))


def student_t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """The mean of ``values`` (one number per seed) and its Student-t confidence interval.

    With ``n = len(values)``, mean ``m`` and sample standard deviation
    ``s = sqrt(sum((x - m)²) / (n - 1))``, the interval is

        ``m ± t_{(1 + confidence)/2, n-1} · s / sqrt(n)``

    (for 95 %: the 0.975 quantile of t with ``n - 1`` degrees of freedom; 12.706 for two
    seeds, 4.303 for three). It assumes the per-seed values are independent draws from a
    roughly normal distribution. With one value there is no spread to measure: the result
    is ``(value, None, None)`` — report "n/a", do not invent an interval.

    Raises ``ValueError`` (one line) for no values, a non-finite value or a confidence
    outside ``(0, 1)``.
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("student_t_interval needs at least one value, got none")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    bad = [x for x in xs if not math.isfinite(x)]
    if bad:
        raise ValueError(f"student_t_interval needs finite values, got {bad[0]!r}")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, None, None
    s = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile((1 + confidence) / 2, n - 1) * s / math.sqrt(n)
    return mean, mean - half, mean + half
