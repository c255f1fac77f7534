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
walks its own restriction of the stream's per-pass permutation). A domain-incremental phase
changes ``stream`` settings (gap lengths, the Gaussian noise's scale) and keeps all classes.

Torch-free: importing this module is cheap; the tensor side lives in
:mod:`nrstream.stream.stream`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Phase", "Schedule", "ScheduleError", "PHASE_KEYS", "PHASE_SETTINGS", "LANE_MODES", "MAX_FRAMES"]

#: the keys of one phase in ``data.stream.schedule``
PHASE_KEYS = ("frames", "classes", "blend", "stream", "name")
#: the stream settings a phase may change (the others are the stream's own, fixed)
PHASE_SETTINGS = ("gap_min", "gap_max", "noise_scale")
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
        blend: frames over which the switch *into* this phase is a linear blend (``0``:
            abrupt); at most ``frames``; phase 0 has nothing to blend from.
        stream: the :data:`PHASE_SETTINGS` it changes (a partial ``StreamSettings``).
        name: phases with the same name are one task (recurrence); ``None``: named by content.
    """

    frames: int
    classes: tuple[int | str, ...] | None = None
    blend: int = 0
    stream: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def to_config(self) -> dict[str, Any]:
        """The phase as plain YAML/JSON data (what ``data.stream.schedule`` holds)."""
        out: dict[str, Any] = {"frames": self.frames}
        if self.classes is not None:
            out["classes"] = list(self.classes)
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
        classes = None if self.classes is None else tuple(sorted(map(str, self.classes)))
        return ("content", classes, tuple(sorted(self.stream.items())))


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
            same = _sorted(other.classes) == _sorted(phase.classes) and dict(other.stream) == dict(phase.stream)
            if first != i and not same:
                raise ScheduleError(
                    f"schedule[{i}].name",
                    f"{phase.name!r} is also schedule[{first}] with other classes or settings; give it another name",
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
            classes = raw.get("classes")
            if classes is not None and not isinstance(classes, (list, tuple)):
                raise ScheduleError(
                    f"schedule[{i}].classes", f"expected a list of class names or indices, got {_quote(classes)}"
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
            indices = []
            for c in phase.classes:
                if _is_int(c) and 0 <= c < len(class_names):
                    indices.append(int(c))
                elif isinstance(c, str) and c in class_names:
                    indices.append(list(class_names).index(c))
                else:
                    close = difflib.get_close_matches(str(c), list(class_names), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
                    raise ScheduleError(
                        f"schedule[{i}].classes",
                        f"unknown class {_quote(c)}; {hint}the data set has {len(class_names)}: {shown} "
                        f"(names or indices 0..{len(class_names) - 1})",
                    )
            if len(set(indices)) != len(indices):
                raise ScheduleError(f"schedule[{i}].classes", f"lists a class twice: {_quote(list(phase.classes))}")
            out.append(sorted(indices))
        _check_overlap([None if c is None else set(c) for c in out], self.task_of)
        return out


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
        if not phase.classes:
            raise ScheduleError(f"{where}.classes", "is empty; list at least one class, or leave it out for all")
        for c in phase.classes:
            if not (_is_int(c) and c >= 0) and not isinstance(c, str):
                raise ScheduleError(f"{where}.classes", f"expected class names or indices >= 0, got {_quote(c)}")
        if len({str(c) for c in phase.classes}) != len(phase.classes):
            raise ScheduleError(f"{where}.classes", f"lists a class twice: {_quote(list(phase.classes))}")
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
