"""Non-stationary streams: a schedule of phases, each changing what the stream draws.

A :class:`Phase` is a partial :class:`~nrstream.stream.settings.StreamSettings` (the fields
in :data:`PHASE_SETTINGS`), a class set and a length in frames. A :class:`Schedule` is the
phases in order: the stream plays phase 0 for its ``frames``, then phase 1, ... and, after
the last, either keeps the last one forever or starts again at phase 0 (``repeat``).
Phases may recur: a later phase with the same ``name`` (or, without names, the same classes
and settings) is the same *task*, which is what the continual-learning metrics group by.

Switches are decided per stream *event* (a gap and the sample after it), at the frame the
event begins, so a sample is never cut by a switch:

* abrupt (``blend: 0``): every event beginning in phase ``i``'s frames is of phase ``i``;
* gradual (``blend: L``): during the first ``L`` frames of phase ``i``, an event beginning
  ``t`` frames after the switch is of phase ``i`` with probability ``t / L`` and of the phase
  before it otherwise (:meth:`Schedule.new_fraction`), a linear blend.

Lanes switch together (``lanes: together``: the schedule clock is the frame count), or
independently (``lanes: independent``: lane ``b``'s clock starts ``d_b`` frames late, ``d_b``
drawn uniformly in ``[0, frames of phase 0]`` from the stream's seed, so the lanes stay in
phase 0 for different times and every switch is staggered).

A class-incremental phase lists ``classes`` (names or indices of the data set's classes);
the stream then draws only that phase's samples, still without replacement (each phase
walks its own restriction of the stream's per-pass permutation). A phase may also list
``speakers`` (names or indices of ``info["speakers"]``, for sources that record a speaker
per sample, e.g. ``fsdd``): its samples are then those of its classes *and* speakers.
A domain-incremental phase changes ``stream`` settings (:data:`PHASE_SETTINGS`) and keeps
all classes: gap lengths and the Gaussian noise's scale on any stream; on an acoustic scene
(``background`` not ``none``, :data:`SCENE_SETTINGS`) also the background kind, the SNR
range and the level range. Every one of them follows the phase of the stream event
(:mod:`nrstream.stream.scene`: the sample's SNR, the background under the event's frames,
the lane's level over them), so a blend mixes two phases' domains event by event as it
mixes their class sets.

Torch-free: importing this module is cheap; the tensor side lives in
:mod:`nrstream.stream.stream`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Phase",
    "Schedule",
    "ScheduleError",
    "PHASE_KEYS",
    "PHASE_SETTINGS",
    "SCENE_SETTINGS",
    "LANE_MODES",
    "MAX_FRAMES",
]

#: the keys of one phase in ``data.stream.schedule``
PHASE_KEYS = ("frames", "classes", "speakers", "blend", "stream", "name")
#: the stream settings a phase may change (the others are the stream's own, fixed); their values
#: are checked here where they stand alone, and by StreamSettings where they depend on the stream
PHASE_SETTINGS = ("gap_min", "gap_max", "noise_scale", "background", "snr_db", "level_db")
#: those of them that only an acoustic scene has (``background`` not ``none``)
SCENE_SETTINGS = ("background", "snr_db", "level_db")
#: how lanes switch
LANE_MODES = ("together", "independent")
#: longest phase accepted (frames)
MAX_FRAMES = 10**12


class ScheduleError(ValueError):
    """A bad schedule: ``key`` is ``schedule[i].KEY`` (relative to ``data.stream``), ``reason`` one line."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule.

    Attributes:
        frames: its length in frames (per lane), ``>= 1``.
        classes: the classes it draws (names or indices), ``None``: all of them.
        speakers: the speakers whose samples it draws (names or indices of the data set's
            ``info["speakers"]``), ``None``: all of them.
        blend: frames over which the switch *into* this phase is a linear blend (``0``:
            abrupt); at most ``frames``; phase 0 has nothing to blend from.
        stream: the :data:`PHASE_SETTINGS` it changes (a partial ``StreamSettings``).
        name: phases with the same name are one task (recurrence); ``None``: named by content.
    """

    frames: int
    classes: tuple[int | str, ...] | None = None
    speakers: tuple[int | str, ...] | None = None
    blend: int = 0
    stream: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def to_config(self) -> dict[str, Any]:
        """The phase as plain YAML/JSON data (what ``data.stream.schedule`` holds)."""
        out: dict[str, Any] = {"frames": self.frames}
        if self.classes is not None:
            out["classes"] = list(self.classes)
        if self.speakers is not None:
            out["speakers"] = list(self.speakers)
        if self.blend:
            out["blend"] = self.blend
        if self.stream:
            out["stream"] = dict(self.stream)
        if self.name is not None:
            out["name"] = self.name
        return out

    @property
    def task_key(self) -> Any:
        """What makes two phases the same task."""
        if self.name is not None:
            return ("name", self.name)
        settings = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in self.stream.items()))
        return ("content", _sorted(self.classes), _sorted(self.speakers), settings)


@dataclass(frozen=True)
class Schedule:
    """The phases of a non-stationary stream, in order (see the module docstring).

    Build it from config data with :meth:`from_config`; every rule is checked there (and in
    ``__post_init__``) with a :class:`ScheduleError` naming ``schedule[i].KEY``. Class names
    are checked against a data set by :meth:`class_indices`.
    """

    phases: tuple[Phase, ...]
    lanes: str = "together"
    repeat: bool = False

    def __post_init__(self) -> None:
        if not self.phases:
            raise ScheduleError("schedule", "needs at least one phase")
        if self.lanes not in LANE_MODES:
            raise ScheduleError("schedule_lanes", f"expected one of {', '.join(LANE_MODES)}, got {_quote(self.lanes)}")
        for i, phase in enumerate(self.phases):
            _check_phase(i, phase)
        # a recurring task must recur with the same content: one class set per task
        seen: dict[Any, int] = {}
        for i, phase in enumerate(self.phases):
            first = seen.setdefault(phase.task_key, i)
            other = self.phases[first]
            same = (
                _sorted(other.classes) == _sorted(phase.classes)
                and _sorted(other.speakers) == _sorted(phase.speakers)
                and dict(other.stream) == dict(phase.stream)
            )
            if first != i and not same:
                raise ScheduleError(
                    f"schedule[{i}].name",
                    f"{phase.name!r} is also schedule[{first}] with other classes, speakers or settings; "
                    "give it another name",
                )
        _check_overlap([None if p.classes is None else {str(c) for c in p.classes} for p in self.phases], self.task_of)

    @classmethod
    def from_config(cls, phases: Any, *, lanes: str = "together", repeat: bool = False) -> Schedule:
        """From ``data.stream.schedule`` (a list of phase mappings); a :class:`ScheduleError` names the key."""
        if isinstance(phases, Schedule):
            return phases
        if not isinstance(phases, (list, tuple)):
            raise ScheduleError("schedule", f"expected a list of phases, got {_quote(phases)}")
        built = []
        for i, raw in enumerate(phases):
            if isinstance(raw, Phase):
                built.append(raw)
                continue
            if not isinstance(raw, Mapping):
                raise ScheduleError(f"schedule[{i}]", f"expected a mapping with 'frames', got {_quote(raw)}")
            for k in raw:
                if k not in PHASE_KEYS:
                    close = difflib.get_close_matches(str(k), PHASE_KEYS, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise ScheduleError(f"schedule[{i}].{k}", f"unknown key; {hint}known: {', '.join(PHASE_KEYS)}")
            if "frames" not in raw:
                raise ScheduleError(f"schedule[{i}].frames", "missing required key (the phase's length in frames)")
            classes, speakers = raw.get("classes"), raw.get("speakers")
            for key, value in (("classes", classes), ("speakers", speakers)):
                if value is not None and not isinstance(value, (list, tuple)):
                    what = "class" if key == "classes" else "speaker"
                    raise ScheduleError(
                        f"schedule[{i}].{key}", f"expected a list of {what} names or indices, got {_quote(value)}"
                    )
            stream = raw.get("stream") or {}
            if not isinstance(stream, Mapping):
                raise ScheduleError(
                    f"schedule[{i}].stream", f"expected a mapping of stream settings, got {_quote(stream)}"
                )
            built.append(
                Phase(
                    frames=raw["frames"],
                    classes=None if classes is None else tuple(classes),
                    speakers=None if speakers is None else tuple(speakers),
                    blend=raw.get("blend", 0),
                    stream=dict(stream),
                    name=raw.get("name"),
                )
            )
        return cls(tuple(built), lanes=lanes, repeat=bool(repeat))

    def to_config(self) -> list[dict[str, Any]]:
        return [p.to_config() for p in self.phases]

    # -- time ----------------------------------------------------------------------------

    @property
    def starts(self) -> list[int]:
        """Frame (of the schedule clock) where each phase begins."""
        out, total = [], 0
        for phase in self.phases:
            out.append(total)
            total += phase.frames
        return out

    @property
    def total_frames(self) -> int:
        return sum(p.frames for p in self.phases)

    def phase_at(self, clock: int) -> int:
        """The phase index whose frames hold schedule clock ``clock`` (before any blend)."""
        if self.repeat:
            clock %= self.total_frames
        index = 0
        for i, start in enumerate(self.starts):
            if clock >= start:
                index = i
        return index

    def new_fraction(self, clock: int) -> float:
        """Probability that an event beginning at ``clock`` is of :meth:`phase_at`'s phase (not the one before)."""
        if self.repeat:
            clock %= self.total_frames
        i = self.phase_at(clock)
        within, blend = clock - self.starts[i], self.phases[i].blend
        return within / blend if within < blend else 1.0

    # -- tasks ---------------------------------------------------------------------------

    @property
    def task_of(self) -> list[int]:
        """Per phase, its task index (recurring phases share one), numbered by first appearance."""
        keys: dict[Any, int] = {}
        return [keys.setdefault(p.task_key, len(keys)) for p in self.phases]

    @property
    def num_tasks(self) -> int:
        return max(self.task_of) + 1

    def class_indices(self, class_names: Sequence[str]) -> list[list[int] | None]:
        """Per phase, its classes as indices into ``class_names`` (``None``: all); unknown ones are errors."""
        out: list[list[int] | None] = []
        for i, phase in enumerate(self.phases):
            if phase.classes is None:
                out.append(None)
                continue
            shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
            out.append(_indices(phase.classes, list(class_names), f"schedule[{i}].classes", "class", shown))
        _check_overlap([None if c is None else set(c) for c in out], self.task_of)
        return out

    def speaker_indices(
        self, speakers: Sequence[str] | None, source: str = "this data source"
    ) -> list[list[int] | None]:
        """Per phase, its speakers as indices into ``speakers`` (``None``: all); unknown ones are errors.

        ``speakers`` is the data set's ``info["speakers"]``, ``None`` where the source records
        no speaker per sample (then a phase that lists speakers is an error).
        """
        out: list[list[int] | None] = []
        for i, phase in enumerate(self.phases):
            if phase.speakers is None:
                out.append(None)
                continue
            if not speakers:
                raise ScheduleError(
                    f"schedule[{i}].speakers",
                    f"{source} records no speaker per sample (info['speakers']; fsdd does): leave speakers out",
                )
            key = f"schedule[{i}].speakers"
            out.append(_indices(phase.speakers, list(speakers), key, "speaker", ", ".join(speakers)))
        return out


def _indices(values: Sequence, names: list[str], key: str, what: str, shown: str) -> list[int]:
    """``values`` (names or indices into ``names``) as sorted indices; an unknown or repeated one: error on ``key``."""
    indices = []
    for v in values:
        if _is_int(v) and 0 <= v < len(names):
            indices.append(int(v))
        elif isinstance(v, str) and v in names:
            indices.append(names.index(v))
        else:
            close = difflib.get_close_matches(str(v), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScheduleError(
                key,
                f"unknown {what} {_quote(v)}; {hint}the data set has {len(names)}: {shown} "
                f"(names or indices 0..{len(names) - 1})",
            )
    if len(set(indices)) != len(indices):
        raise ScheduleError(key, f"lists a {what} twice: {_quote(list(values))}")
    return sorted(indices)


def _check_names(values: Sequence, key: str, what: str) -> None:
    """A phase's class or speaker list, before the data set is known: non-empty, names or indices, none twice."""
    if not values:
        raise ScheduleError(key, f"is empty; list at least one {what}, or leave it out for all")
    for v in values:
        if not (_is_int(v) and v >= 0) and not isinstance(v, str):
            raise ScheduleError(key, f"expected {what} names or indices >= 0, got {_quote(v)}")
    if len({str(v) for v in values}) != len(values):
        raise ScheduleError(key, f"lists a {what} twice: {_quote(list(values))}")


def _check_overlap(sets: list[set | None], task_of: list[int]) -> None:
    """Two different tasks may not share a class (a class belongs to one task of a class-incremental schedule)."""
    for i, classes in enumerate(sets):
        for j in range(i):
            other = sets[j]
            if classes is None or other is None or task_of[i] == task_of[j]:
                continue
            shared = classes & other
            if shared:
                raise ScheduleError(
                    f"schedule[{i}].classes",
                    f"shares {', '.join(sorted(map(str, shared)))} with schedule[{j}], another task; class sets of "
                    "different phases must not overlap (repeat a phase with the same name to revisit it)",
                )


def _sorted(classes: tuple | None) -> tuple | None:
    return None if classes is None else tuple(sorted(map(str, classes)))


def _check_phase(i: int, phase: Phase) -> None:
    """Raise :class:`ScheduleError` for a bad value (scene values, which need the stream's, are StreamSettings')."""
    where = f"schedule[{i}]"
    if not _is_int(phase.frames):
        raise ScheduleError(f"{where}.frames", f"expected an integer number of frames, got {_quote(phase.frames)}")
    if phase.frames < 1:
        raise ScheduleError(f"{where}.frames", f"must be >= 1 frame, got {phase.frames}")
    if phase.frames > MAX_FRAMES:
        raise ScheduleError(f"{where}.frames", f"must be <= 10**12 frames, got {_quote(phase.frames)}")
    if not _is_int(phase.blend):
        raise ScheduleError(f"{where}.blend", f"expected an integer number of frames, got {_quote(phase.blend)}")
    if phase.blend < 0:
        raise ScheduleError(f"{where}.blend", f"must be >= 0 frames, got {phase.blend}")
    if phase.blend > phase.frames:
        raise ScheduleError(
            f"{where}.blend", f"{phase.blend} frames is longer than the phase itself ({phase.frames} frames)"
        )
    if i == 0 and phase.blend:
        raise ScheduleError(f"{where}.blend", "the first phase has no phase before it to blend from; use 0")
    if phase.classes is not None:
        _check_names(phase.classes, f"{where}.classes", "class")
    if phase.speakers is not None:
        _check_names(phase.speakers, f"{where}.speakers", "speaker")
    for k, v in phase.stream.items():
        if k not in PHASE_SETTINGS:
            close = difflib.get_close_matches(str(k), PHASE_SETTINGS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScheduleError(
                f"{where}.stream.{k}",
                f"a phase cannot change this setting; {hint}it may change {', '.join(PHASE_SETTINGS)}",
            )
        if k in ("gap_min", "gap_max") and (not _is_int(v) or v < 0):
            raise ScheduleError(f"{where}.stream.{k}", f"expected an integer >= 0, got {_quote(v)}")
        if k == "noise_scale" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1000):
            raise ScheduleError(f"{where}.stream.{k}", f"expected a number 0..1000, got {_quote(v)}")
    if phase.name is not None and (not isinstance(phase.name, str) or not phase.name.strip()):
        raise ScheduleError(f"{where}.name", f"expected a non-empty string, got {_quote(phase.name)}")
