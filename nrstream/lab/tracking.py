"""Experiment tracking: training and validation curves for outside viewers (TensorBoard).

The engine calls a :class:`Tracker` where it records history: ``train/loss`` and
``train/lr`` after every optimiser step, ``epoch/loss`` and ``val/accuracy`` after every
epoch (x axis: the optimiser step). ``results.json`` stays the record; a tracker only
mirrors the curves. Trackers never draw random numbers, so a resumed run stays bitwise
identical to one that never stopped.

Other back ends (MLflow, Weights & Biases) are a small :class:`Tracker` subclass; set
:data:`make_tracker` to a factory of your own to use one (see README, "Logging and tracking").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nrstream.errors import NrstreamError

__all__ = ["Tracker", "NullTracker", "TensorBoardTracker", "tracker_folder", "make_tracker", "open_tracker"]

log = logging.getLogger("nrstream.lab.tracking")


class Tracker:
    """Receives scalar curves of one training job; the default does nothing."""

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        """Record ``value`` of curve ``tag`` at optimiser step ``step``."""

    def close(self) -> None:
        """Flush and release files; called once when the job ends (also on errors)."""


class NullTracker(Tracker):
    """The tracker when ``run.tensorboard`` is false."""


class TensorBoardTracker(Tracker):
    """Event files in ``folder`` via ``torch.utils.tensorboard.SummaryWriter``.

    ``start_step``: a run resumed from a checkpoint at that step purges the events after it
    (TensorBoard's ``purge_step``), so the curves carry no duplicate tail from the interrupted attempt.
    """

    def __init__(self, folder: str | Path, start_step: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises ImportError when the tensorboard package is absent
            raise NrstreamError(
                f"run.tensorboard: true needs the 'tensorboard' package ({exc}); "
                "install it with: pip install 'nrstream[tensorboard]'"
            ) from None
        self.folder = Path(folder)
        # events logged after step start_step by an interrupted attempt are dropped: the resumed run repeats them
        self.writer = SummaryWriter(str(self.folder), purge_step=start_step + 1 if start_step else None)
        log.debug("TensorBoard events in %s", self.folder)

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, float(value), int(step))

    def close(self) -> None:
        self.writer.close()


def tracker_folder(config: Any, label: str) -> Path:
    """``<run.out_dir>/tensorboard/<run.name>/<label>-seed<seed>``; ``/`` in the label becomes ``-``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "agent"
    return Path(config.run.out_dir) / "tensorboard" / config.run.name / f"{safe}-seed{config.run.seed}"


def _default_tracker(config: Any, label: str, start_step: int) -> Tracker:
    if getattr(config.run, "tensorboard", False):
        return TensorBoardTracker(tracker_folder(config, label), start_step)
    return NullTracker()


#: ``(config, agent label, first step) -> Tracker``; replace it to send curves elsewhere
make_tracker: Callable[[Any, str, int], Tracker] = _default_tracker


def open_tracker(config: Any, label: str, start_step: int = 0) -> Tracker:
    """The tracker for one job (``config`` as the job sees it: ``run.seed`` is the job's seed)."""
    return make_tracker(config, label, start_step)
