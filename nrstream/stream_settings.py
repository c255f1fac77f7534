"""The stream parameters and their defaults, in one place.

An endless stream is samples drawn without replacement, separated by noise gaps whose
lengths (in frames) are uniform on ``[gap_min, gap_max]``, filled by ``noise``. The config
(``data.stream``), the Gymnasium envs, the engine's protocol table and the benchmarks all
take their defaults from :class:`StreamSettings`, so a default changes here and only here.

The config keys under ``data.stream`` are this dataclass's fields: adding a field (with
its ``metadata``: ``type`` and ``doc``, which become its row in the key table of
:mod:`nrstream.config`) adds the key, its type check and its documentation. Cross-field
and range checks live in :meth:`StreamSettings.__post_init__`, so every way of building
the settings (YAML, env keyword arguments, Python) is checked the same way.

Torch-free: importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["StreamSettings", "SettingError", "NOISE_KINDS", "MAX_GAP", "MAX_NOISE_SCALE"]

#: what may fill the gaps between samples
NOISE_KINDS = ("gaussian", "silence", "recorded")
#: longest gap accepted (frames): far beyond any experiment, short of planning 10^11 steps
MAX_GAP = 100_000
#: largest noise spread accepted (in units of the data's spread)
MAX_NOISE_SCALE = 1000.0


class SettingError(ValueError):
    """A stream setting out of range; ``field`` names it, ``reason`` says why (one line)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"stream setting {field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _meta(type_: str, doc: str) -> dict[str, str]:
    return {"type": type_, "doc": doc}


@dataclass(frozen=True)
class StreamSettings:
    """How test, validation and continual-training streams are laid out.

    ``StreamSettings()`` is the default everyone shares (gaps of 5..30 frames of Gaussian
    noise at the data's spread). Invalid values raise :class:`SettingError` (a
    ``ValueError``) whose message is one line quoting the bad value.
    """

    gap_min: int = field(default=5, metadata=_meta("int >= 0", "shortest noise gap (frames)"))
    gap_max: int = field(default=30, metadata=_meta(f"int gap_min..{MAX_GAP}", "longest noise gap (frames), uniform"))
    noise: Literal["gaussian", "silence", "recorded"] = field(
        default="gaussian", metadata=_meta("|".join(NOISE_KINDS), "what fills the gaps")
    )
    noise_scale: float = field(
        default=1.0, metadata=_meta(f"float 0..{MAX_NOISE_SCALE:g}", "gaussian noise spread / data spread")
    )

    def __post_init__(self) -> None:
        for name in ("gap_min", "gap_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingError(name, f"expected an integer, got {_quote(value)}")
            if value < 0:
                raise SettingError(name, f"must be >= 0, got {_quote(value)}")
            if value > MAX_GAP:
                raise SettingError(name, f"must be <= {MAX_GAP} frames, got {_quote(value)}")
        if self.gap_max < self.gap_min:
            raise SettingError("gap_max", f"must be >= gap_min ({self.gap_min}), got {self.gap_max}")
        if self.noise not in NOISE_KINDS:
            raise SettingError("noise", f"expected one of {', '.join(NOISE_KINDS)}, got {_quote(self.noise)}")
        scale = self.noise_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise SettingError("noise_scale", f"expected a number, got {_quote(scale)}")
        if not math.isfinite(scale):
            raise SettingError("noise_scale", f"must be a finite number, got {_quote(scale)}")
        if not 0 <= scale <= MAX_NOISE_SCALE:
            raise SettingError("noise_scale", f"must be between 0 and {MAX_NOISE_SCALE:g}, got {_quote(scale)}")
        object.__setattr__(self, "noise_scale", float(scale))

    @property
    def mean_gap(self) -> float:
        """Expected gap length in frames (the gap is uniform on ``[gap_min, gap_max]``)."""
        return (self.gap_min + self.gap_max) / 2

    def mean_event_length(self, mean_sample_length: float) -> float:
        """Expected frames per stream event (one sample and the gap after it).

        ``mean_sample_length`` is the mean sample length in frames of the split the
        stream draws from (``bank.lengths.float().mean()``). Used to turn "samples per
        lane" into frames or optimiser steps.
        """
        return float(mean_sample_length) + self.mean_gap

    def stream_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`nrstream.datasets.make_stream` these settings set."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> StreamSettings:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def reference_rows(cls) -> list[tuple[str, str, str, str]]:
        """``(name, type, default, meaning)`` per field: the config key table's rows."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default
            shown = f"``{default}``" if isinstance(default, str) else str(default)
            rows.append((f.name, f.metadata.get("type", "?"), shown, f.metadata.get("doc", "?")))
        return rows
