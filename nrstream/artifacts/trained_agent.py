"""A trained agent as an artifact: :class:`TrainedAgent` and :func:`load_trained_agent`.

The one place that knows the layouts of the run folder (``results.json`` names each agent's
checkpoint folder), the checkpoint folder (``agent.json`` beside ``best.pt`` / ``last.pt``) and
its files. ``listen``, ``export`` and ``make-recording`` get their agent here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nrstream.agent import Agent
from nrstream.artifacts.checkpoints import AGENT_FILE, load_checkpoint, read_agent_file
from nrstream.data.datasets import load_dataset
from nrstream.data.streaming_frontend import StreamingFrontend
from nrstream.errors import NrstreamError
from nrstream.plugin.registry import get_registry
from nrstream.stream.settings import StreamSettings

__all__ = ["TrainedAgent", "AgentError", "load_trained_agent", "CHECKPOINT_FILES"]


#: (label, data description, arch options, checkpoint folder, weights file or None, agent record)
_Located = tuple[str, dict, dict, Path, Path | None, dict]


class AgentError(NrstreamError):
    """A path that holds no usable trained agent (one line saying what to pass instead)."""


@dataclass
class TrainedAgent:
    """A trained agent as its files describe it: the model, and what it was trained on and how.

    :meth:`load` reads a run folder, a checkpoint folder or a ``.pt`` file, the way
    ``from_pretrained`` / ``load_from_checkpoint`` do in the libraries users know; ``listen``,
    ``export`` and ``make-recording`` start from one.
    """

    label: str  # "arch/loss"
    model: torch.nn.Module
    class_names: list[str]
    frontend: dict  # FeatureFrontend parameters
    mean: torch.Tensor | None  # [F] train statistics (None: features were not standardised)
    std: torch.Tensor | None
    arch: str
    arch_options: dict
    source: str
    #: the data description (``results.json``'s ``data`` / ``agent.json``'s ``data``)
    data: dict = field(default_factory=dict)
    #: the stream settings it was trained on (``agent.json``; ``None`` for agents trained before they were recorded)
    stream: StreamSettings | None = None
    #: the protocol it was trained under (``segmented``, ``continual``; ``None`` when unrecorded)
    protocol: str | None = None

    @classmethod
    def load(cls, path: str | Path, label: str | None = None) -> TrainedAgent:
        """Load a trained agent onto the CPU (see :func:`load_trained_agent`)."""
        return load_trained_agent(path, label)

    def agent(self, reset_policy: str = "never") -> Agent:
        """The model as an :class:`nrstream.Agent` (its state carried; ``never`` reset, or ``oracle``)."""
        return Agent(self.model, reset_policy)

    @property
    def feature_size(self) -> int:
        return int(self.model.input_size) if hasattr(self.model, "input_size") else len(self.mean)


CHECKPOINT_FILES = ("best.pt", "last.pt")


def _weights(folder: Path, file: Path | None = None) -> dict:
    """The weights of ``file``, else of ``folder``'s ``best.pt``, else its ``last.pt``."""
    for path in [file] if file is not None else [folder / name for name in CHECKPOINT_FILES]:
        if path.is_file():
            weights = load_checkpoint(path).get("model")
            if not isinstance(weights, dict):
                raise AgentError(f"{path} holds no model weights; give best.pt or last.pt of a checkpoint folder")
            return weights
    raise AgentError(f"{folder} holds no best.pt or last.pt; train the agent again (nrstream train)")


def _pick(run: Path, label: str | None, have: list[str]) -> str:
    """``label``, checked against the agents ``run`` holds; without one, the only agent there is."""
    if not have:
        raise AgentError(f"{run} holds no trained agent (its jobs failed?); give another run folder")
    if label is None:
        if len(have) == 1:
            return have[0]
        raise AgentError(f"{run} holds several agents ({', '.join(have)}); choose one with --agent ARCH/LOSS")
    if label not in have:
        raise AgentError(f"agent {label!r} is not in {run}; it has {', '.join(have)}")
    return label


def _from_run_folder(results_file: Path, label: str | None) -> _Located:
    run = results_file.parent
    try:
        results = json.loads(results_file.read_text())
        runs, data = results["runs"], results["data"]
        have = sorted({f"{r['arch']}/{r['loss']}" for r in runs})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgentError(f"{results_file} is not an nrstream results.json ({type(exc).__name__}: {exc})") from None
    label = _pick(run, label, have)
    arch, _, loss = label.partition("/")
    # several seeds (results.json format 2): the lowest seed's agent
    entry = min((r for r in runs if r["arch"] == arch and r["loss"] == loss), key=lambda r: r.get("seed", 0))
    try:
        folder = Path(entry["training"]["checkpoint"])
    except (KeyError, TypeError):
        raise AgentError(f"{results_file}: agent {label} names no checkpoint folder (training.checkpoint)") from None
    record = _agent_record(folder) or {"protocol": entry.get("protocol")}
    return label, data, dict(entry.get("arch_options") or {}), folder, None, record


def _from_checkpoint(folder: Path, file: Path | None, label: str | None) -> _Located:
    record = read_agent_file(folder)
    if record is None:
        raise AgentError(
            f"{folder} is a checkpoint folder without {AGENT_FILE} (trained before nrstream recorded its front end, "
            "statistics and classes there); pass the run folder that used it instead (runs/NAME, with results.json)"
        )
    label = _pick(folder, label, [f"{record['arch']}/{record['loss']}"])
    return label, record["data"], dict(record.get("arch_options") or {}), folder, file, record


def _agent_record(folder: Path) -> dict | None:
    """The checkpoint folder's ``agent.json``, or ``None`` (absent, or unreadable: the run folder describes it)."""
    try:
        return read_agent_file(folder)
    except NrstreamError:
        return None


def _locate(path: Path, label: str | None) -> _Located:
    """(label, data description, arch options, checkpoint folder, weights file or None, agent record)."""
    if path.is_file() and path.name == "results.json":
        return _from_run_folder(path, label)
    if path.is_file() and path.name in CHECKPOINT_FILES:
        return _from_checkpoint(path.parent, path, label)
    if path.is_dir() and (path / "results.json").is_file():
        return _from_run_folder(path / "results.json", label)
    if path.is_dir() and any((path / name).is_file() for name in CHECKPOINT_FILES):
        return _from_checkpoint(path, None, label)
    what = (
        "is neither a run folder (no results.json) nor a checkpoint folder (no best.pt or last.pt)"
        if path.exists()
        else "does not exist"
    )
    raise AgentError(
        f"{path} {what}; give a run folder (runs/NAME, from `nrstream evaluate`), "
        "a checkpoint folder (runs/checkpoints/ARCH-LOSS-HASH) or its best.pt/last.pt"
    )


def load_trained_agent(run: str | Path, label: str | None = None) -> TrainedAgent:
    """Load a trained agent onto the CPU from a run folder, a checkpoint folder, or a checkpoint file.

    ``run`` may be:

    * a run folder (``results.json``, or that file): ``label`` (``arch/loss``) picks the agent
      (the lowest seed's, when the run has several); the run records the architecture
      options, the data description and the checkpoint folder, whose ``best.pt`` (else
      ``last.pt``) gives the weights;
    * a checkpoint folder (``<checkpoint_dir>/<arch>-<loss>-<hash>``) with ``agent.json``
      (:data:`nrstream.artifacts.checkpoints.AGENT_FILE`, written by training since issue 13): the same
      description, for its one agent; weights from ``best.pt``, else ``last.pt``;
    * a ``best.pt`` or ``last.pt`` file in such a folder: exactly those weights.

    ``label`` may be omitted when ``run`` holds one agent (a checkpoint always does); given,
    it must match. The data description gives the front end parameters, the train
    statistics the features were standardised with (``normalization``) and the classes. A
    description written before the sources recorded their statistics gets them recomputed
    from the data source's train split (its cached features, loaded with
    ``normalize: false``), the same computation the source made.

    Raises:
        AgentError: neither a run nor a checkpoint folder (or one without ``agent.json``),
            an agent not there, a source without an audio front end, weights that do not fit.
    """
    where = Path(run)
    label, data, arch_options, folder, file, record = _locate(where, label)
    arch = label.partition("/")[0]
    frontend = data.get("frontend")
    if not isinstance(frontend, dict):
        raise AgentError(
            f"{where}: agent {label} was trained on {data.get('source')!r}, which has no audio front end "
            "(Dataset.info['frontend']); listen needs an audio data source such as speech_commands or synth_speech"
        )
    class_names = list(data.get("class_names") or [])
    options = dict(data.get("options") or {})
    source = data["source"]
    mean = std = None
    stats = data.get("normalization")
    if isinstance(stats, dict) and "mean" in stats:  # recorded by the speech sources since issue 16
        mean = torch.tensor(stats["mean"], dtype=torch.float32)
        std = torch.tensor(stats["std"], dtype=torch.float32)
    elif data.get("normalized", True):  # older run folders: recompute them as the source did
        raw = load_dataset(source, **{**options, "normalize": False})
        mean, std = raw.splits["train"].feature_stats()
        class_names = class_names or raw.class_names
    try:
        streaming = StreamingFrontend(frontend, mean=mean, std=std)
    except (TypeError, ValueError) as exc:
        raise AgentError(
            f"{where}: agent {label}'s feature front end {frontend} is not one this nrstream has ({exc})"
        ) from None
    size = int(data.get("feature_size") or streaming.feature_size)
    if size != streaming.feature_size:
        raise AgentError(
            f"{where}: agent {label} takes {size} features per frame but its recorded front end gives "
            f"{streaming.feature_size}; it does not match this nrstream's front end"
        )
    model = get_registry().create("architecture", arch, input_size=size, num_classes=len(class_names), **arch_options)
    try:
        model.load_state_dict(_weights(folder, file))
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AgentError(
            f"{file or folder}: the weights do not fit {label} as {where} describes it ({detail})"
        ) from None
    model.eval()
    stream = record.get("stream")
    try:
        settings = StreamSettings(**stream) if isinstance(stream, dict) else None
    except (TypeError, ValueError):
        settings = None  # recorded by another nrstream version: listen and export do not need it
    return TrainedAgent(label, model, class_names, frontend, mean, std, arch, arch_options, source, dict(data),
                        settings, record.get("protocol"))  # fmt: skip
