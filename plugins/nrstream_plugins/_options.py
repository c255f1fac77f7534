"""Config checks shared by the built-in loss and metric plugins: one-line errors quoting the bad value."""

from __future__ import annotations

import numbers

from nrstream.errors import ConfigError

__all__ = ["OptionError", "positive_int", "non_negative_float", "choice"]


class OptionError(ConfigError, ValueError):
    """A bad loss or metric option; a ``ValueError`` too, as torch users expect."""


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise OptionError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise OptionError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def choice(name: str, value: object, options: tuple[str, ...]) -> str:
    if value not in options:
        raise OptionError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return str(value)
