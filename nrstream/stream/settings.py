"""The stream parameters and their defaults, in one place.

An endless stream is samples drawn without replacement, separated by noise gaps whose
lengths (in frames) are uniform on ``[gap_min, gap_max]``, filled by ``noise`` (the
paper-style stream, ``background: none``). With a ``background``, the stream is an acoustic
scene: the background runs under everything, each sample (its voiced part, within
``trim_db`` of its loudest frame, plus ``tail`` frames) is mixed into it at an SNR drawn
from ``snr_db``, and each lane's mix is scaled by a level drawn from ``level_db``
(:mod:`nrstream.stream.scene`; the same names and meanings as ``nrstream data make-recording``). The config
(``data.stream``), the Gymnasium envs, the engine's protocol table and the benchmarks all
take their defaults from :class:`StreamSettings`, so a default changes here and only here.

The config keys under ``data.stream`` are this dataclass's fields: adding a field (with
its ``metadata``: ``type`` and ``doc``, which become its row in the key table of
:mod:`nrstream.lab.config`) adds the key, its type check and its documentation. Cross-field
and range checks live in :meth:`StreamSettings.__post_init__`, so every way of building
the settings (YAML, env keyword arguments, Python) is checked the same way.

Torch-free: importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["StreamSettings", "SettingError", "NOISE_KINDS", "BACKGROUND_KINDS", "MAX_GAP", "MAX_NOISE_SCALE", "MAX_DB"]

#: what may fill the gaps between samples
NOISE_KINDS = ("gaussian", "silence", "recorded")
#: longest gap accepted (frames): far beyond any experiment, short of planning 10^11 steps
MAX_GAP = 100_000
#: largest noise spread accepted (in units of the data's spread)
MAX_NOISE_SCALE = 1000.0
#: what may run under everything in an acoustic-scene stream; ``none``: the paper-style stream
BACKGROUND_KINDS = ("none", "recorded", "gaussian", "silence")
#: largest magnitude accepted in snr_db, level_db and trim_db
MAX_DB = 120.0


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


def _db_range(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SettingError(name, f"expected [low, high] in dB, got {_quote(value)}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value):
        raise SettingError(name, f"expected two finite numbers, got {_quote(value)}")
    low, high = float(value[0]), float(value[1])
    if not -MAX_DB <= low <= high <= MAX_DB:
        raise SettingError(name, f"needs -{MAX_DB:g} <= low <= high <= {MAX_DB:g}, got {_quote(value)}")
    return low, high


@dataclass(frozen=True)
class StreamSettings:
    """How test, validation and state-carrying training streams are laid out.

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
    # the acoustic scene (nrstream.stream.scene); background "none" is the paper-style stream and the
    # four fields after it are then unused
    background: Literal["none", "recorded", "gaussian", "silence"] = field(
        default="none", metadata=_meta("|".join(BACKGROUND_KINDS), "runs under everything; none: paper-style")
    )
    snr_db: list[float] = field(
        default=(0.0, 20.0), metadata=_meta("[low, high] dB", "sample-to-background SNR, drawn per sample")
    )
    level_db: list[float] = field(
        default=(-6.0, 6.0), metadata=_meta("[low, high] dB", "gain of a lane's whole mix, drawn per lane")
    )
    trim_db: float | None = field(
        default=40.0, metadata=_meta(f"float 0..{MAX_DB:g} or null", "voiced: frames within this of the loudest")
    )
    tail: int = field(default=10, metadata=_meta(f"int 0..{MAX_GAP}", "frames kept after the voiced part"))
    # a non-stationary stream (nrstream.stream.schedule); null: one distribution forever
    schedule: list[dict] | None = field(
        default=None,
        metadata=_meta(
            "list of phases or null", "phases: {frames, classes, speakers, blend, stream, name}; null: stationary"
        ),
    )
    schedule_lanes: Literal["together", "independent"] = field(
        default="together", metadata=_meta("together|independent", "lanes switch phases at once or staggered")
    )
    schedule_repeat: bool = field(
        default=False, metadata=_meta("bool", "after the last phase start again (else the last one stays)")
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
        if self.background not in BACKGROUND_KINDS:
            raise SettingError(
                "background", f"expected one of {', '.join(BACKGROUND_KINDS)}, got {_quote(self.background)}"
            )
        object.__setattr__(self, "snr_db", list(_db_range("snr_db", self.snr_db)))  # lists: YAML and JSON alike
        object.__setattr__(self, "level_db", list(_db_range("level_db", self.level_db)))
        trim = self.trim_db
        if trim is not None:
            if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not 0 < trim <= MAX_DB:
                raise SettingError("trim_db", f"expected a number in (0, {MAX_DB:g}] or null, got {_quote(trim)}")
            object.__setattr__(self, "trim_db", float(trim))
        if isinstance(self.tail, bool) or not isinstance(self.tail, int) or not 0 <= self.tail <= MAX_GAP:
            raise SettingError("tail", f"expected an integer 0..{MAX_GAP}, got {_quote(self.tail)}")
        self._check_schedule()

    def _check_schedule(self) -> None:
        """Build the typed :class:`~nrstream.stream.schedule.Schedule` once; keep the plain data in the field."""
        from nrstream.stream.schedule import LANE_MODES, Schedule, ScheduleError

        if self.schedule_lanes not in LANE_MODES:
            raise SettingError(
                "schedule_lanes", f"expected one of {', '.join(LANE_MODES)}, got {_quote(self.schedule_lanes)}"
            )
        if not isinstance(self.schedule_repeat, bool):
            raise SettingError("schedule_repeat", f"expected true or false, got {_quote(self.schedule_repeat)}")
        timeline = None
        if self.schedule is not None:
            try:
                timeline = Schedule.from_config(self.schedule, lanes=self.schedule_lanes, repeat=self.schedule_repeat)
            except ScheduleError as exc:
                raise SettingError(exc.key, exc.reason) from None
            timeline = dataclasses.replace(
                timeline, phases=tuple(self._check_scene_phase(i, p) for i, p in enumerate(timeline.phases))
            )
            for i, phase in enumerate(timeline.phases):
                gap_min = phase.stream.get("gap_min", self.gap_min)
                gap_max = phase.stream.get("gap_max", self.gap_max)
                if gap_max < gap_min:
                    raise SettingError(
                        f"schedule[{i}].stream.gap_max", f"must be >= gap_min ({gap_min}), got {gap_max}"
                    )
                background = phase.stream.get("background", self.background)
                gaussian = background == "gaussian" if self.scene else self.noise == "gaussian"
                if "noise_scale" in phase.stream and not gaussian:
                    where = f"this phase's background is {background}" if self.scene else f"the gaps are {self.noise}"
                    raise SettingError(
                        f"schedule[{i}].stream.noise_scale",
                        "a phase's noise_scale scales Gaussian noise only (gap noise: gaussian on a paper-style "
                        f"stream, or a gaussian background); {where}",
                    )
            object.__setattr__(self, "schedule", timeline.to_config())
        object.__setattr__(self, "_timeline", timeline)

    def _check_scene_phase(self, i: int, phase: Any) -> Any:
        """Phase ``i``'s scene settings checked against this stream (one is a scene); its dB ranges as floats."""
        from nrstream.stream.schedule import SCENE_SETTINGS

        stream = dict(phase.stream)
        for key in SCENE_SETTINGS:
            if key not in stream:
                continue
            where = f"schedule[{i}].stream.{key}"
            if not self.scene:
                raise SettingError(
                    where,
                    "a phase of a paper-style stream (background: none) has no scene to change; "
                    "give the stream a background (recorded, gaussian or silence)",
                )
            value = stream[key]
            if key == "background" and (value not in BACKGROUND_KINDS or value == "none"):
                kinds = [b for b in BACKGROUND_KINDS if b != "none"]
                if value == "none":
                    raise SettingError(where, f"a phase cannot turn the scene off; expected one of {', '.join(kinds)}")
                close = difflib.get_close_matches(str(value), kinds, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                expected = f"expected one of {', '.join(kinds)}"
                raise SettingError(where, f"unknown background {_quote(value)}; {hint}{expected}")
            if key in ("snr_db", "level_db"):
                try:
                    stream[key] = list(_db_range(key, value))
                except SettingError as exc:
                    raise SettingError(where, exc.reason) from None
        return dataclasses.replace(phase, stream=stream)

    @property
    def timeline(self):  # -> Schedule | None (typed lazily: the schedule module stays out of this import)
        """The typed :class:`~nrstream.stream.schedule.Schedule` of ``schedule``, or ``None`` (stationary)."""
        return self._timeline

    def phase_settings(self, index: int) -> StreamSettings:
        """A stationary stream of phase ``index`` alone (its classes and settings): held-out test streams."""
        timeline = self.timeline
        if timeline is None:
            raise SettingError("schedule", "a stationary stream has no phases")
        phase = timeline.phases[index].to_config()
        phase.update(frames=1, blend=0)
        return dataclasses.replace(self, schedule=[phase], schedule_lanes="together", schedule_repeat=False)

    def phase_scenes(self) -> list[tuple[tuple[str, float | None], tuple[float, float], tuple[float, float]]]:
        """Per phase (one entry on a stationary stream): ``((background, scale), snr_db, level_db)``.

        ``background`` is the kind under the phase's events, ``scale`` the Gaussian
        background's ``noise_scale`` (``None`` for the other kinds, which have none);
        ``snr_db`` and ``level_db`` are ``(low, high)`` in dB. A phase's own ``stream``
        values win over the stream's. What :class:`~nrstream.stream.scene.Scene` builds from.
        """
        phases = [p.stream for p in self.timeline.phases] if self.timeline is not None else [{}]
        out = []
        for changes in phases:
            kind = changes.get("background", self.background)
            scale = float(changes.get("noise_scale", self.noise_scale)) if kind == "gaussian" else None
            snr = tuple(float(v) for v in changes.get("snr_db", self.snr_db))
            level = tuple(float(v) for v in changes.get("level_db", self.level_db))
            out.append(((kind, scale), snr, level))
        return out

    @property
    def max_gap(self) -> int:
        """The longest gap any phase can draw (the noise table is built for it)."""
        phases = self.schedule or []
        return max([self.gap_max, *(p.get("stream", {}).get("gap_max", self.gap_max) for p in phases)])

    @property
    def scene(self) -> bool:
        """An acoustic-scene stream (a background under everything), not the paper-style one."""
        return self.background != "none"

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

    def identity(self) -> dict[str, Any]:
        """The settings that decide what a stream looks like (for checkpoint keys).

        A paper-style stream (``background: none``) leaves out the scene fields, which it
        does not use: checkpoints trained before those fields existed keep their keys.
        """
        out = dataclasses.asdict(self)
        if not self.scene:
            for name in ("background", "snr_db", "level_db", "trim_db", "tail"):
                out.pop(name, None)
        if self.schedule is None:  # stationary streams keep the keys they had before schedules existed
            for name in ("schedule", "schedule_lanes", "schedule_repeat"):
                out.pop(name, None)
        return out

    def stream_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`nrstream.data.datasets.make_stream` these settings set."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> StreamSettings:
        """A copy with ``changes`` applied (validated again); an unknown name is a :class:`SettingError`."""
        self.check_names(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, settings: StreamSettings | Mapping[str, Any] | None = None, /, **changes: Any) -> StreamSettings:
        """Settings from whatever a caller holds, with ``changes`` on top.

        ``settings`` is a :class:`StreamSettings`, a mapping of some of its fields (a partial:
        the others keep their defaults, as in ``data.stream`` or ``gymnasium.make(...,
        stream={"background": "recorded"})``) or ``None`` (all defaults). Every value is checked.
        """
        if settings is None:
            base = cls()
        elif isinstance(settings, StreamSettings):
            base = settings
        elif isinstance(settings, Mapping):
            cls.check_names(settings)
            base = cls(**dict(settings))
        else:
            raise SettingError("stream", f"expected StreamSettings or a mapping of its fields, got {_quote(settings)}")
        return base.replace(**changes) if changes else base

    @classmethod
    def check_names(cls, names: Mapping[str, Any] | Any) -> None:
        """Raise :class:`SettingError` for a name that is no field, with a did-you-mean."""
        known = cls.field_names()
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SettingError(str(name), f"unknown setting; {hint}known: {', '.join(known)}")

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-able values (what ``agent.json`` records)."""
        return dataclasses.asdict(self)

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
