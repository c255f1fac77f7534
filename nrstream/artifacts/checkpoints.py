"""Training checkpoints: what ``last.pt`` and ``best.pt`` hold, and how they are read and written.

A checkpoint holds only tensors and plain containers — weights, optimiser and scheduler
state, the stream's position, the carried recurrent state, RNG states — so it loads with
``torch.load(weights_only=True)``: a checkpoint file can never run code. Files are
written atomically (:mod:`nrstream.atomic`), so a kill leaves the previous file intact.

A file that cannot be read as a checkpoint (truncated, zero bytes, garbage, a folder
under the name, a pickle asking for code) is a one-line :class:`CheckpointError` that
names the file and says what to delete — never torch's advice to load it unsafely.

Beside the weights, ``agent.json`` (:data:`AGENT_FILE`, written by
:func:`nrstream.lab.experiment.train_job` once training is done) records what the weights mean
outside a run folder: the architecture and its options, the loss, the data source and its
options, the feature front end, the train statistics the features were standardised with,
the class names and the feature size. With it a checkpoint folder alone can be listened
to or exported (:class:`nrstream.artifacts.trained_agent.TrainedAgent`); folders trained before it existed
lack it, and need the run folder that used them.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nrstream.atomic import atomic_file
from nrstream.errors import NrstreamError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "TrainingCheckpoint",
    "BestCheckpoint",
    "save_atomic",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "AGENT_FILE",
    "write_agent_file",
    "read_agent_file",
]

#: bumped when a checkpoint's content changes meaning; older files are refused, not misread
CHECKPOINT_FORMAT = 1

#: the JSON record of what a checkpoint folder's weights are (see the module docstring)
AGENT_FILE = "agent.json"
AGENT_FORMAT = 1
#: the keys of the data description (:meth:`nrstream.lab.loading.LoadedData.describe`) ``agent.json`` keeps
AGENT_DATA_KEYS = ("source", "options", "fallback_used", "frontend", "normalized", "normalization", "class_names",
                   "num_classes", "feature_size")  # fmt: skip


class CheckpointError(NrstreamError):
    """A checkpoint file that cannot be used; the message names it and what to delete."""


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` into a temporary file beside ``path``, then rename it into place."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file (tensors and plain containers only) as a dict on the CPU.

    Raises :class:`CheckpointError` (one line) for anything that is not a readable
    checkpoint.
    """
    path = Path(path)
    advice = f"delete {path.parent} to train that agent again"
    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles: the one-line error below says it all
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a valid nrstream checkpoint; {advice}") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise CheckpointError(
                f"{path}: cannot read the checkpoint: {exc.strerror}; check its permissions"
            ) from None
        reason = exc.strerror or type(exc).__name__
        raise CheckpointError(f"{path} is not a valid nrstream checkpoint ({reason}); {advice}") from None
    except Exception as exc:  # truncated zip, garbage, a pickle that asks for code: all "not a checkpoint"
        kind = "empty file" if path.is_file() and path.stat().st_size == 0 else type(exc).__name__
        raise CheckpointError(f"{path} is not a valid nrstream checkpoint ({kind}); {advice}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a valid nrstream checkpoint (holds {type(obj).__name__}); {advice}")
    return obj


def rng_state(device: torch.device) -> dict:
    """The RNG states a resumed run must restore to continue bitwise (CPU, and CUDA if used)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_dict(obj: Any, first: tuple[str, ...] = ()) -> dict:
    # not dataclasses.asdict: it deep-copies every tensor
    names = [f.name for f in dataclasses.fields(obj)]
    return {name: getattr(obj, name) for name in [*first, *(n for n in names if n not in first)]}


@dataclass
class TrainingCheckpoint:
    """``last.pt``: everything a training run needs to resume exactly where it stopped.

    ``key`` is the folder's training-setup hash (:func:`nrstream.lab.config.agent_key`); a
    file whose ``format`` or ``key`` differs is refused by :meth:`load`.
    """

    key: str
    arch: str
    loss: str
    protocol: str
    step: int
    total_steps: int
    finished: bool
    model: dict
    optimizer: dict
    scheduler: dict
    stream: dict
    agent_state: Any
    rng: dict
    history: list = field(default_factory=list)
    best: float = -1.0
    seconds: float = 0.0
    epoch_loss: list = field(default_factory=lambda: [0.0, 0])
    format: int = CHECKPOINT_FORMAT

    def to_dict(self) -> dict:
        return _as_dict(self, first=("format",))

    def save(self, path: str | os.PathLike) -> None:
        save_atomic(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, key: str | None = None) -> TrainingCheckpoint:
        """Read ``last.pt``; with ``key``, refuse a file written for another setup or version."""
        path = Path(path)
        raw = load_checkpoint(path)
        names = {f.name for f in dataclasses.fields(cls)}
        if raw.get("format") != CHECKPOINT_FORMAT or (key is not None and raw.get("key") != key):
            raise CheckpointError(f"{path} was written by another nrstream version or config; delete {path.parent}")
        if not names <= raw.keys():
            raise CheckpointError(f"{path} is not a valid nrstream checkpoint (fields missing); delete {path.parent}")
        return cls(**{name: raw[name] for name in names})


@dataclass
class BestCheckpoint:
    """``best.pt``: the weights with the best validation score so far, and when they were saved."""

    key: str
    model: dict
    epoch: int
    score: float

    def to_dict(self) -> dict:
        return _as_dict(self)

    def save(self, path: str | os.PathLike) -> None:
        save_atomic(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BestCheckpoint:
        path = Path(path)
        raw = load_checkpoint(path)
        try:
            return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
        except KeyError:
            raise CheckpointError(
                f"{path} is not a valid nrstream checkpoint (fields missing); delete {path.parent}"
            ) from None


def write_agent_file(folder: str | os.PathLike, agent: dict, data: dict) -> Path:
    """Write ``folder/agent.json`` atomically (only when its content changes): the agent and its data.

    Args:
        agent: ``arch``, ``loss``, ``arch_options``, ``loss_options``, ``seed``, ``protocol`` and
            ``stream`` (the training stream's :class:`~nrstream.stream.settings.StreamSettings` as a dict).
        data: the data description (:meth:`nrstream.lab.loading.LoadedData.describe`) with
            ``class_names``; only :data:`AGENT_DATA_KEYS` are kept, plus ``sample_rate``
            (from the front end, ``None`` without one).
    """
    from nrstream.artifacts.results import json_safe

    kept = {key: data.get(key) for key in AGENT_DATA_KEYS}
    frontend = kept["frontend"] if isinstance(kept["frontend"], dict) else None
    kept["sample_rate"] = frontend.get("sample_rate") if frontend else None
    record = json_safe({"format": AGENT_FORMAT, **agent, "data": kept})
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    path = Path(folder) / AGENT_FILE
    try:
        if path.read_text() == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return path


def read_agent_file(folder: str | os.PathLike) -> dict | None:
    """``folder/agent.json`` as a dict, or ``None`` when the folder has none (trained before it existed).

    Raises:
        CheckpointError: the file is there but is not an agent record of this format (one line).
    """
    path = Path(folder) / AGENT_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable agent record ({reason}); delete it and train again") from None
    required = ("arch", "loss", "data")
    if not isinstance(record, dict) or record.get("format") != AGENT_FORMAT or not all(k in record for k in required):
        raise CheckpointError(
            f"{path} is not an agent record this nrstream reads (format {AGENT_FORMAT}); "
            "pass the run folder that used this checkpoint instead"
        )
    return record
