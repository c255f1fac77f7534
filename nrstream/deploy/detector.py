"""From frame posteriors to word detections, and how good they are against a truth CSV.

The detection rule (:class:`DetectorSettings`, every number configurable):

1. **Smoothing**: the posteriors (softmax of the logits) are averaged over the last
   ``smooth_frames`` frames (a causal moving average; 10 frames = 100 ms by default).
2. **Don't know**: a frame whose smoothed posterior has normalised entropy
   ``H(p) / log C`` above ``max_entropy`` says "don't know" (what ``ce_kl`` trains on the
   noise between words) and never fires.
3. **Threshold**: otherwise the frame is a *candidate* for its top class when that class's
   smoothed posterior is at least ``threshold`` and the class is not in ``ignore``
   (e.g. ``_silence_``, ``_unknown_``).
4. **One detection per event**: a detection fires at the first frame of a run of
   consecutive candidate frames of one class, unless it comes within ``refractory_s`` of
   the previous detection; a run never fires twice.

A detection's time is its frame's centre (``frame * hop / sample_rate``); its confidence
is the smoothed posterior of its class at that frame.

Scoring (:func:`score`): a truth event (a row of the truth CSV) is a *target* when its word
is one of the agent's classes. A detection *hits* the first unmatched target of the same
word whose window ``[start_s - early_s, end_s + late_s]`` holds the detection time
(``late_s`` = 1.0 s by default: a recurrent spotter decides after hearing the word); every
other detection is a *false alarm*; a target without a hit is a *miss*. Reported: hits,
misses, false alarms, recall, precision, false alarms per hour of audio. :func:`det_curve`
repeats the detection at many thresholds from the compact per-frame record
(:class:`FrameRecord`: top class, its smoothed posterior, whether "don't know"; 6 bytes a
frame) and :func:`plot_det` draws miss rate against false alarms per hour, one curve per agent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DetectorSettings",
    "Detection",
    "Detector",
    "FrameRecord",
    "Score",
    "score",
    "det_curve",
    "plot_det",
    "DEFAULT_IGNORE",
]

DEFAULT_IGNORE = ("_silence_", "_unknown_")


@dataclass(frozen=True)
class DetectorSettings:
    """The detection rule's parameters (see the module docstring)."""

    threshold: float = 0.7
    smooth_frames: int = 10
    max_entropy: float = 0.5
    refractory_s: float = 0.5
    ignore: tuple[str, ...] = DEFAULT_IGNORE

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")
        if not isinstance(self.smooth_frames, int) or self.smooth_frames < 1:
            raise ValueError(f"smooth_frames must be an int >= 1, got {self.smooth_frames!r}")
        if not 0 <= self.max_entropy <= 1:
            raise ValueError(f"max_entropy must be in [0, 1], got {self.max_entropy!r}")
        if not self.refractory_s >= 0:
            raise ValueError(f"refractory_s must be >= 0, got {self.refractory_s!r}")
        object.__setattr__(self, "ignore", tuple(self.ignore))

    def to_dict(self) -> dict:
        return {**asdict(self), "ignore": list(self.ignore)}


@dataclass(frozen=True)
class Detection:
    time_s: float
    word: str
    confidence: float
    frame: int
    #: the agent's state was reset (it had become non-finite) before this detection
    after_reset: bool = False


@dataclass
class FrameRecord:
    """Per-frame top class, its smoothed posterior and the don't-know flag, for the DET curve."""

    top: list[np.ndarray] = field(default_factory=list)  # int16 [T]
    prob: list[np.ndarray] = field(default_factory=list)  # float32 [T]
    unsure: list[np.ndarray] = field(default_factory=list)  # bool [T]

    def add(self, top: np.ndarray, prob: np.ndarray, unsure: np.ndarray) -> None:
        self.top.append(top.astype(np.int16))
        self.prob.append(prob.astype(np.float32))
        self.unsure.append(unsure.astype(bool))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cat = np.concatenate
        if not self.top:
            return np.zeros(0, np.int16), np.zeros(0, np.float32), np.zeros(0, bool)
        return cat(self.top), cat(self.prob), cat(self.unsure)


def _fire(
    top: np.ndarray,
    prob: np.ndarray,
    unsure: np.ndarray,
    allowed: np.ndarray,
    threshold: float,
    refractory: int,
    state: dict,
) -> list[int]:
    """Frames (relative to this chunk) where a detection fires; updates ``state`` in place.

    ``state``: ``run`` (class of the candidate run the previous chunk ended in, or -1),
    ``last`` (frame of the last detection, chunk-relative, or None), ``offset`` (frames so far).
    """
    cand = (prob >= threshold) & ~unsure & allowed[top]
    cls = np.where(cand, top, -1)
    prev = np.concatenate([[state["run"]], cls[:-1]])
    starts = np.flatnonzero(cand & (cls != prev))
    fired = []
    last = state["last"]
    for t in starts.tolist():  # run onsets only: a few per second of audio at most
        absolute = state["offset"] + t
        if last is None or absolute - last >= refractory:
            fired.append(t)
            last = absolute
    state["last"] = last
    state["run"] = int(cls[-1]) if len(cls) else state["run"]
    state["offset"] += len(cls)
    return fired


class Detector:
    """Streaming detector: feed logits chunk by chunk, get detections (see the module docstring).

    Args:
        class_names: the agent's classes, in logit order.
        frame_s: seconds per frame (the front end's hop).
        settings: the rule's parameters.
        record: keep a :class:`FrameRecord` (6 bytes a frame) for :func:`det_curve`.

    Shapes:
        ``update(logits [T, C]) -> list[Detection]``; frames count on across calls.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        frame_s: float,
        settings: DetectorSettings | None = None,
        *,
        record: bool = False,
    ) -> None:
        self.class_names = list(class_names)
        self.frame_s = float(frame_s)
        self.settings = settings or DetectorSettings()
        self.allowed = np.array([c not in self.settings.ignore for c in self.class_names])
        self._window: torch.Tensor | None = None  # last smooth_frames - 1 posteriors
        self._state = {"run": -1, "last": None, "offset": 0}
        self.record = FrameRecord() if record else None

    @property
    def refractory_frames(self) -> int:
        return math.ceil(self.settings.refractory_s / self.frame_s - 1e-9)

    def smoothed(self, logits: torch.Tensor) -> torch.Tensor:
        """Causal moving average of the posteriors over ``smooth_frames``, ``[T, C]``."""
        post = torch.softmax(logits.detach().float(), dim=-1)
        k = self.settings.smooth_frames
        if self._window is None:
            self._window = post.new_zeros(0, post.shape[1])
        joined = torch.cat([self._window, post])
        csum = torch.cat([joined.new_zeros(1, joined.shape[1]), joined.cumsum(0, dtype=torch.float64).float()])
        n = joined.shape[0]
        hi = torch.arange(n - post.shape[0] + 1, n + 1)
        lo = (hi - k).clamp_min(0)
        out = (csum[hi] - csum[lo]) / (hi - lo).unsqueeze(1).float()
        self._window = joined[-(k - 1) :] if k > 1 else joined[:0]
        return out

    def update(self, logits: torch.Tensor) -> list[Detection]:
        """Detections among the next frames' ``logits [T, C]`` (T may be 0)."""
        if logits.shape[0] == 0:
            return []
        p = self.smoothed(logits)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1) / math.log(p.shape[1])
        prob, top = p.max(-1)
        top_n, prob_n = top.numpy(), prob.numpy()
        unsure = (entropy > self.settings.max_entropy).numpy()
        if self.record is not None:
            self.record.add(top_n, prob_n, unsure)
        offset = self._state["offset"]
        fired = _fire(top_n, prob_n, unsure, self.allowed, self.settings.threshold, self.refractory_frames, self._state)
        return [
            Detection(
                round((offset + t) * self.frame_s, 3), self.class_names[int(top_n[t])], float(prob_n[t]), offset + t
            )
            for t in fired
        ]


@dataclass
class Score:
    hits: int
    misses: int
    false_alarms: int
    targets: int
    hours: float
    recall: float
    precision: float
    false_alarms_per_hour: float

    def to_dict(self) -> dict:
        return asdict(self)


def score(
    detections: Sequence[Detection],
    truth: Sequence,
    seconds: float,
    class_names: Sequence[str],
    *,
    early_s: float = 0.1,
    late_s: float = 1.0,
) -> Score:
    """Hits, misses and false alarms of ``detections`` against ``truth`` (events with
    ``start_s``, ``end_s``, ``word``) over ``seconds`` of audio (see the module docstring)."""
    vocab = set(class_names)
    targets = [e for e in truth if e.word in vocab]
    matched = [False] * len(targets)
    hits = false_alarms = 0
    for d in sorted(detections, key=lambda d: d.time_s):
        for i, e in enumerate(targets):
            if not matched[i] and e.word == d.word and e.start_s - early_s <= d.time_s <= e.end_s + late_s:
                matched[i] = True
                hits += 1
                break
        else:
            false_alarms += 1
    hours = seconds / 3600
    n = len(targets)
    return Score(
        hits=hits,
        misses=n - hits,
        false_alarms=false_alarms,
        targets=n,
        hours=hours,
        recall=hits / n if n else float("nan"),
        precision=hits / (hits + false_alarms) if hits + false_alarms else float("nan"),
        false_alarms_per_hour=false_alarms / hours if hours > 0 else float("nan"),
    )


def det_curve(
    record: FrameRecord,
    class_names: Sequence[str],
    frame_s: float,
    truth: Sequence,
    settings: DetectorSettings,
    thresholds: Sequence[float] | None = None,
) -> list[dict]:
    """``[{threshold, miss_rate, false_alarms_per_hour, recall, precision}]`` as the threshold moves."""
    top, prob, unsure = record.arrays()
    allowed = np.array([c not in settings.ignore for c in class_names])
    thresholds = list(np.round(np.linspace(0.3, 0.99, 24), 3) if thresholds is None else thresholds)
    refractory = math.ceil(settings.refractory_s / frame_s - 1e-9)
    seconds = len(top) * frame_s
    points = []
    for threshold in thresholds:
        state = {"run": -1, "last": None, "offset": 0}
        fired = _fire(top, prob, unsure, allowed, float(threshold), refractory, state)
        dets = [Detection(t * frame_s, class_names[int(top[t])], float(prob[t]), t) for t in fired]
        s = score(dets, truth, seconds, class_names)
        points.append(
            {
                "threshold": float(threshold),
                "miss_rate": 1 - s.recall if s.targets else float("nan"),
                "false_alarms_per_hour": s.false_alarms_per_hour,
                "recall": s.recall,
                "precision": s.precision,
            }
        )
    return points


def plot_det(curves: Mapping[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """Miss rate against false alarms per hour, one curve per agent; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nrstream.artifacts.run_folder import output_file

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, points in curves.items():
        xs = [max(p["false_alarms_per_hour"], 0.1) for p in points]  # 0 drawn at 0.1 on the log axis
        ys = [p["miss_rate"] for p in points]
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("false alarms per hour (0 drawn at 0.1)")
    ax.set_ylabel("miss rate")
    ax.set_ylim(0, 1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title or "DET: miss rate vs false alarms per hour as the threshold moves")
    fig.tight_layout()
    path = Path(path)
    with output_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
