"""Continual-learning metrics: prequential accuracy through phase switches, and the accuracy matrix.

``prequential_accuracy`` scores a prequential run's predictions (made before learning each
chunk, :mod:`nrstream.lab.prequential`) over time: overall, per schedule phase
(``chunk.phase``), as a rolling curve with the switches marked, and how long the learner
takes to recover after each switch.

``accuracy_matrix`` holds ``R[i][j]``: accuracy on a held-out test stream of task ``j`` after
schedule phase ``i`` (and ``b[j]`` before learning anything), with the summaries of
Lopez-Paz & Ranzato (2017, GEM) and Chaudhry et al. (2018, RWalk), computed by
:func:`continual_scores`. Phases of a schedule may recur, so rows are phases and columns
are tasks; with each task once (phase ``i`` = task ``i``) these are the papers' formulas:

* average accuracy ``ACC = mean_j R[P-1][j]`` (every task, after the last phase);
* backward transfer ``BWT = mean_{j != last task} (R[P-1][j] - R[e_j][j])``, ``e_j`` the last
  phase that trained task ``j`` (negative: forgetting);
* forgetting ``F = mean_{j != last task} (max_{l < P-1} R[l][j] - R[P-1][j])`` (Chaudhry);
* forward transfer ``FWT = mean_{j: f_j > 0} (R[f_j - 1][j] - b[j])``, ``f_j`` the first phase
  of task ``j``: what earlier phases taught about a task before it was trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nrstream_plugins._options import OptionError, non_negative_float, positive_int
from nrstream_plugins.metrics._accuracy import curve, decision_hits

__all__ = ["PrequentialAccuracy", "AccuracyMatrix", "continual_scores", "recovery_frames"]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def continual_scores(
    matrix: Sequence[Sequence[float | None]], task_of: Sequence[int], baseline: Sequence[float] | None = None
) -> dict[str, float | None]:
    """ACC, BWT, forgetting and FWT of ``matrix[i][j]`` (phase ``i`` rows, task ``j`` columns).

    ``task_of[i]``: the task phase ``i`` trains. ``baseline[j]``: accuracy on task ``j`` before
    learning (for FWT; ``None``: FWT is ``None``). A score whose rows are missing (``None``) is ``None``.
    """
    phases, last = len(task_of), len(task_of) - 1
    tasks = max(task_of) + 1
    out: dict[str, float | None] = dict.fromkeys(
        ("average_accuracy", "backward_transfer", "forgetting", "forward_transfer")
    )
    complete = len(matrix) == phases and all(row is not None for row in matrix)
    final = list(matrix[last]) if complete else None
    if final is not None:
        out["average_accuracy"] = _mean(final)
        bwt, forgetting = [], []
        for j in range(tasks):
            if j == task_of[last]:
                continue
            trained = max(i for i in range(phases) if task_of[i] == j)
            bwt.append(final[j] - matrix[trained][j])
            forgetting.append(max(matrix[i][j] for i in range(last)) - final[j])
        out["backward_transfer"], out["forgetting"] = _mean(bwt), _mean(forgetting)
    if baseline is not None:
        fwt = []
        for j in range(tasks):
            first = task_of.index(j)
            if first > 0 and matrix[first - 1] is not None:
                fwt.append(matrix[first - 1][j] - baseline[j])
        out["forward_transfer"] = _mean(fwt)
    return out


def recovery_frames(
    hits: torch.Tensor, decisions: torch.Tensor, switches: Sequence[int], *, window: int, margin: float,
    min_decisions: int = 20,
) -> list[int | None]:  # fmt: skip
    """Frames after each switch until the learner is back within ``margin`` of its pre-switch accuracy.

    ``hits``/``decisions``: ``[N]`` correct and scored decisions per frame (all lanes).
    The pre-switch level is the accuracy over the ``window`` frames before the switch; after
    it, accuracy is taken over the last ``window`` frames *since the switch* (older frames
    would flatter it) once they hold ``min_decisions`` decisions. ``None``: not back before the
    next switch (or the end), or no decision before the switch.
    """
    h = torch.cat([hits.new_zeros(1), torch.cumsum(hits.double(), 0)])
    d = torch.cat([decisions.new_zeros(1), torch.cumsum(decisions.double(), 0)])
    n, out = hits.numel(), []
    bounds = [*switches, n]
    for s, following in zip(switches, bounds[1:], strict=False):
        lo = max(0, s - window)
        before = float(d[s] - d[lo])
        if before == 0:
            out.append(None)
            continue
        level = float(h[s] - h[lo]) / before
        f = torch.arange(s, following, device=hits.device)  # last frame of each window
        start = torch.clamp(f + 1 - window, min=s)
        dec = d[f + 1] - d[start]
        acc = (h[f + 1] - h[start]) / dec.clamp_min(1)
        ok = (dec >= min_decisions) & (acc >= level - margin)
        found = torch.nonzero(ok).flatten()
        out.append(int(found[0]) + 1 if found.numel() else None)
    return out


class _Buffer:
    """A 1-D device buffer that doubles when full (no per-update small tensors: see RollingAccuracy)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype, self.data, self.size = dtype, None, 0

    def extend(self, values: torch.Tensor) -> None:
        end = self.size + values.numel()
        if self.data is None or end > self.data.numel():
            grown = torch.empty(max(end, 2 * self.size, 1024), dtype=self.dtype, device=values.device)
            if self.size:
                grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    def values(self) -> torch.Tensor:
        return torch.zeros(0, dtype=self.dtype) if self.data is None else self.data[: self.size].cpu()


class PrequentialAccuracy:
    """Prequential accuracy over time, with the phase switches marked (``prequential_accuracy``).

    Feed it the learning stream's chunks with the logits predicted *before* learning them.
    Frame ``t`` is counted per lane from the first update. The switches are ``switches`` when
    given (the prequential loop gives the frames where the schedule's phases begin, blends
    included), else read from the stream: where the phase most lanes are in changes to another
    that then holds for at least ``window`` frames (a blend's back and forth is not a switch).

    Args:
        window: rolling window in frames (per lane) for the curve and the recovery time.
        margin: recovered = back within ``margin`` of the pre-switch accuracy (:func:`recovery_frames`).
        phases: the schedule's phase count: one ``accuracy_phase_{p}`` scalar each.
        points: at most this many points on the rolling curve.
        min_decisions: decisions a post-switch window needs before it may count as recovered.
        switches: the switch frames (``None``: read from ``chunk.phase``, see above).

    ``compute()``: scalars ``accuracy``, ``decisions``, ``accuracy_phase_{p}``,
    ``mean_recovery_frames``, ``unrecovered``; curves ``rolling_accuracy`` (frame, accuracy over
    the last ``window`` frames), ``switches`` (frame, new phase) and ``recovery_frames``
    (switch frame, frames to recover; unrecovered switches left out).
    """

    needs_hidden = False

    def __init__(
        self,
        *,
        window: int = 1000,
        margin: float = 0.05,
        phases: int = 1,
        points: int = 500,
        min_decisions: int = 20,
        switches: list[int] | None = None,
    ) -> None:
        self.window = positive_int("window", window)
        self.margin = non_negative_float("margin", margin)
        self.phases = positive_int("phases", phases)
        self.points = positive_int("points", points)
        self.min_decisions = positive_int("min_decisions", min_decisions)
        if switches is not None and not all(isinstance(f, int) and f > 0 for f in switches):
            raise OptionError(f"switches must be a list of frames > 0, got {switches!r}")
        self.switch_frames = None if switches is None else sorted(switches)
        self.produces = {
            "accuracy": "scalar",
            "decisions": "scalar",
            **{f"accuracy_phase_{p}": "scalar" for p in range(self.phases)},
            "mean_recovery_frames": "scalar",
            "unrecovered": "scalar",
            "rolling_accuracy": "curve",
            "switches": "curve",
            "recovery_frames": "curve",
        }
        self.reset()

    def reset(self) -> None:
        self._hits, self._decisions, self._phase = _Buffer(torch.long), _Buffer(torch.long), _Buffer(torch.long)
        self._by_phase: torch.Tensor | None = None  # [2, phases]: hits, decisions

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        hits = decision_hits(chunk, logits)
        self._hits.extend(hits.sum(0))
        self._decisions.extend(chunk.end.sum(0))
        self._phase.extend(torch.mode(chunk.phase, dim=0).values)
        phase = chunk.phase.clamp(0, self.phases - 1)[chunk.end]
        counts = torch.stack(
            [
                torch.bincount(phase[hits[chunk.end]], minlength=self.phases),
                torch.bincount(phase, minlength=self.phases),
            ]
        )
        self._by_phase = counts if self._by_phase is None else self._by_phase + counts

    def compute(self) -> dict:
        hits, decisions, phase = self._hits.values(), self._decisions.values(), self._phase.values()
        total = int(decisions.sum())
        out: dict = {"accuracy": int(hits.sum()) / total if total else None, "decisions": float(total)}
        by_phase = self._by_phase.cpu().tolist() if self._by_phase is not None else [[0] * self.phases] * 2
        for p in range(self.phases):
            out[f"accuracy_phase_{p}"] = by_phase[0][p] / by_phase[1][p] if by_phase[1][p] else None
        n = hits.numel()
        switches = self._switches(phase)
        recovered = recovery_frames(hits, decisions, switches, window=self.window, margin=self.margin,
                                    min_decisions=self.min_decisions)  # fmt: skip
        done = [(s, r) for s, r in zip(switches, recovered, strict=True) if r is not None]
        out["mean_recovery_frames"] = _mean([float(r) for _, r in done])
        out["unrecovered"] = float(len(switches) - len(done))
        xs, ys = [], []
        if n:
            h = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(hits.double(), 0)])
            d = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(decisions.double(), 0)])
            stride = max(1, math.ceil(n / self.points))
            f = torch.arange(stride - 1, n, stride)
            lo = (f + 1 - self.window).clamp_min(0)
            dec = d[f + 1] - d[lo]
            keep = dec > 0
            xs = (f[keep] + 1).tolist()
            ys = ((h[f + 1] - h[lo])[keep] / dec[keep]).tolist()
        out["rolling_accuracy"] = curve(xs, ys, "frames per lane", f"prequential accuracy (last {self.window} frames)")
        after = [int(phase[min(e, n) - 1]) for e in [*switches[1:], n]] if switches else []
        out["switches"] = curve(switches, after, "frames per lane", "phase switched to")
        out["recovery_frames"] = curve([s for s, _ in done], [r for _, r in done], "switch frame", "frames to recover")
        return out

    def _switches(self, phase: torch.Tensor) -> list[int]:
        """Switch frames: the given ones inside the run, else lasting changes of the majority phase."""
        n = phase.numel()
        if self.switch_frames is not None:
            return [f for f in self.switch_frames if f < n]
        if n == 0:
            return []
        values, counts = torch.unique_consecutive(phase, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        out, current = [], int(values[0])
        for value, start, count in zip(values.tolist(), starts.tolist(), counts.tolist(), strict=True):
            if value != current and (count >= self.window or start + count == n):
                out.append(start)
                current = value
        return out


class AccuracyMatrix:
    """``R[i][j]``: held-out accuracy on task ``j`` after phase ``i``; ACC, BWT, forgetting, FWT (``accuracy_matrix``).

    The prequential loop calls :meth:`record_baseline` (before learning) and
    :meth:`record_row` (at each phase end) with one accuracy per task. As a streaming metric,
    :meth:`update` counts decisions of held-out test chunks by task (``chunk.phase`` = task
    index) and :meth:`end_row` turns the counts into row ``i``.

    Args:
        phases: rows (the schedule's phases); tasks: columns; task_of: each phase's task
            (default: phase ``i`` is task ``i``, which needs ``phases == tasks``).

    ``compute()``: scalars ``R_{i}_{j}``, ``baseline_{j}`` and :func:`continual_scores`' four
    (``None`` until their rows exist). A row recorded twice (a recurring phase) keeps the last.
    """

    needs_hidden = False

    def __init__(self, *, phases: int = 1, tasks: int | None = None, task_of: list[int] | None = None) -> None:
        self.phases = positive_int("phases", phases)
        self.tasks = positive_int("tasks", tasks if tasks is not None else phases)
        task_of = list(range(self.phases)) if task_of is None else list(task_of)
        if len(task_of) != self.phases or sorted(set(task_of)) != list(range(self.tasks)):
            raise OptionError(f"task_of must give each of {self.phases} phases one of tasks 0..{self.tasks - 1}, "
                              f"each task at least once, got {task_of!r}")  # fmt: skip
        self.task_of = task_of
        self.produces = {
            **{f"R_{i}_{j}": "scalar" for i in range(self.phases) for j in range(self.tasks)},
            **{f"baseline_{j}": "scalar" for j in range(self.tasks)},
            **dict.fromkeys(("average_accuracy", "backward_transfer", "forgetting", "forward_transfer"), "scalar"),
        }
        self.reset()

    def reset(self) -> None:
        self.rows: list[list[float] | None] = [None] * self.phases
        self.baseline: list[float] | None = None
        self._counts = torch.zeros(2, self.tasks, dtype=torch.long)

    def record_baseline(self, accuracies: Sequence[float]) -> None:
        self.baseline = self._checked(accuracies)

    def record_row(self, phase: int, accuracies: Sequence[float]) -> None:
        self.rows[phase] = self._checked(accuracies)

    def _checked(self, accuracies: Sequence[float]) -> list[float]:
        if len(accuracies) != self.tasks:
            raise ValueError(f"expected {self.tasks} accuracies (one per task), got {len(accuracies)}")
        return [float(a) for a in accuracies]

    @torch.no_grad()
    def update(self, chunk, logits: torch.Tensor, aux: dict | None = None) -> None:
        task = chunk.phase.clamp(0, self.tasks - 1)[chunk.end].cpu()
        hits = decision_hits(chunk, logits)[chunk.end].cpu()
        self._counts[0] += torch.bincount(task[hits], minlength=self.tasks)
        self._counts[1] += torch.bincount(task, minlength=self.tasks)

    def end_row(self, phase: int) -> None:
        """Row ``phase`` from the decisions counted since the last row (tasks without any: 0)."""
        hits, total = self._counts.tolist()
        self.record_row(phase, [h / n if n else 0.0 for h, n in zip(hits, total, strict=True)])
        self._counts.zero_()

    def compute(self) -> dict:
        out: dict = {}
        for i in range(self.phases):
            for j in range(self.tasks):
                out[f"R_{i}_{j}"] = None if self.rows[i] is None else self.rows[i][j]
        for j in range(self.tasks):
            out[f"baseline_{j}"] = None if self.baseline is None else self.baseline[j]
        out.update(continual_scores(self.rows, self.task_of, self.baseline))
        return out
