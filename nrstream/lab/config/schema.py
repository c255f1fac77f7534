"""The config's sections as dataclasses: each key is one field carrying its whole description.

A key is declared once, with :func:`key`: its default, its documentation (the row of the
reference table in :mod:`nrstream.lab.config`), its range (checked by
:mod:`nrstream.lab.config.validate`) and its checkpoint-identity rule (read by
:func:`nrstream.lab.config.identity.agent_key`). The type is the annotation. Rules that tie
several keys together are a ``check`` method of the section that owns the keys, raising
:class:`Invalid`. Adding a ``train.*`` key is one line here::

    warmup_steps: int = key(0, "linear learning-rate warm-up (steps)", bounds=(0, 10**9))

Its type check, range check, row in the key table and place in the checkpoint key
(``identity="unless_default"``: only once it is set, so older checkpoints keep their keys)
follow from that line. The ``data.stream`` section is :class:`~nrstream.stream.settings.StreamSettings`,
which describes its fields the same way and checks itself.

Torch-free and plugin-free: importing this module is cheap.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from nrstream.lab.config.read import quote
from nrstream.stream.settings import StreamSettings

__all__ = [
    "key",
    "Invalid",
    "Config",
    "RunConfig",
    "ResourcesConfig",
    "DataConfig",
    "StreamConfig",
    "AgentConfig",
    "TrainConfig",
    "MetricConfig",
    "EvaluateConfig",
    "ContinualConfig",
    "DEFAULT_LENGTHS",
    "DEFAULT_METRICS",
    "MAX_NAME",
]

DEFAULT_LENGTHS = [1, 2, 4, 8, 16, 32, 64, 128]
DEFAULT_METRICS = ["accuracy", "accuracy_by_position", "rolling_accuracy", "noise_entropy", "state_norm"]
#: a run folder name
MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_SETTINGS = "nrstream.stream.settings.StreamSettings"
#: the config's ``data.stream`` section *is* the stream settings (old name kept for a release)
StreamConfig = StreamSettings

#: a key's place in the checkpoint key (:func:`nrstream.lab.config.identity.agent_key`):
#: ``True`` always, ``False`` never (it does not change the trained weights),
#: ``"unless_default"`` only when it differs from its default (a key added after checkpoints
#: existed: their keys stay valid). A key without one follows its section's ``identity_rule``
#: (``"unless_default"`` unless the section says otherwise)
Identity = bool | Literal["unless_default"]


def key(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    bounds: tuple[float, float] | None = None,
    above: bool = False,
    identity: Identity | None = None,
    kind: str | None = None,
    shown: str | None = None,
    factory: Any = None,
) -> Any:
    """A config key: a dataclass field whose metadata describes it.

    ``bounds`` are inclusive ``(low, high)`` (for a list, of each item); ``above`` makes the
    low bound exclusive. ``identity`` is the key's checkpoint-identity rule (:data:`Identity`;
    ``None``: its section's). ``kind`` and ``shown`` replace the type and default text generated
    for the reference table. A list or mapping default is copied per instance; ``factory``
    builds a default that is an object (a nested section).
    """
    meta = {"doc": doc, "bounds": bounds, "above": above, "identity": identity, "kind": kind, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


class Invalid(ValueError):
    """A cross-field rule broken: ``key`` (relative to the section) and a one-line ``reason``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass
class ResourcesConfig:
    identity_rule: ClassVar[Identity] = False  # what a job may use, not what it learns

    num_cpus: float = key(1.0, "CPUs each job asks of the executor", bounds=(0, 1024), above=True)
    num_gpus: float = key(0.0, "GPUs (or a fraction) each job asks for", bounds=(0, 64))


@dataclass
class RunConfig:
    identity_rule: ClassVar[Identity] = False  # where and how a run goes; only its seed is in the key

    name: str = key("run", "run folder name under ``run.out_dir``", kind="folder name")
    out_dir: str = key("runs", "where run folders go (relative to the CWD)")
    checkpoint_dir: str | None = key(None, "checkpoints; null: ``<out_dir>/checkpoints``")
    seed: int = key(
        0, "seeds weights, streams and dropout", bounds=(0, 2**31 - 1), kind="int 0..2**31-1", identity=True
    )
    seeds: list[int] | None = key(
        None,
        "one job per seed; null: ``[run.seed]``",
        bounds=(0, 2**31 - 1),
        kind="list of int or null",
    )
    device: Literal["auto", "cpu", "cuda"] = key("auto", "``auto``: CUDA when present")
    executor: Literal["local", "ray"] = key("local", "``local``: jobs one after another, here")
    ray_address: str | None = key(None, "``auto``/``ray://host:10001``; null: local Ray")
    resources: ResourcesConfig = key(factory=ResourcesConfig)
    tensorboard: bool = key(False, "curves as TensorBoard events in ``<out_dir>/tensorboard/<name>/``")

    def __post_init__(self) -> None:
        if self.seeds is None:
            self.seeds = [self.seed]

    def check(self, given: Any) -> None:
        """The folder name and paths; ``seed``/``seeds`` agree, and are settled (``given``: the raw section)."""
        name = self.name
        if len(name) > MAX_NAME:
            raise Invalid("name", f"must be at most {MAX_NAME} characters (a folder name), got {quote(name)}")
        if not name or name in (".", "..") or name.startswith(".") or _CONTROL.search(name) or {"/", "\\"} & set(name):
            raise Invalid(
                "name",
                f"must be a plain folder name (no '/', '\\\\' or control characters, not '.', '..' "
                f"or starting with '.'), got {quote(name)}; put folders in run.out_dir",
            )
        for folder in ("out_dir", "checkpoint_dir"):
            value = getattr(self, folder)
            if value is not None and not value.strip():
                raise Invalid(folder, "must not be empty")
        given = given if isinstance(given, dict) else {}
        seeds = self.seeds or []
        if "seeds" in given and given["seeds"] is not None:
            if not seeds:
                raise Invalid("seeds", "needs at least one seed")
            if len(seeds) > 1000:
                raise Invalid("seeds", f"at most 1000 seeds, got {len(seeds)}")
            for i, s in enumerate(seeds):
                if seeds.index(s) != i:
                    raise Invalid(f"seeds[{i}]", f"seed {s} is listed twice")
            if "seed" in given and given["seed"] != seeds[0]:
                raise Invalid(
                    "seed",
                    f"{given['seed']} disagrees with run.seeds[0] ({seeds[0]}); give run.seeds alone "
                    "(run.seed is the single-seed spelling of run.seeds: [seed])",
                )
            self.seed = seeds[0]
        else:
            self.seeds = [self.seed]
        address = self.ray_address
        if address is not None and (not address.strip() or _CONTROL.search(address) or " " in address):
            raise Invalid("ray_address", f"expected 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {quote(address)}")


@dataclass
class DataConfig:
    source: str = key("toy", "registered data source to load", kind="data source name", identity=True)
    options: dict = key({}, "keyword arguments of the source", identity=True)
    fallback: str = key("none", "used when ``source`` finds no data", kind="data source name or none", identity=True)
    fallback_options: dict = key({}, "keyword arguments of the fallback", identity=True)
    stream: StreamSettings = key(
        doc=f"(one row per field of ``{_SETTINGS}``, below)", factory=StreamSettings, identity=True
    )


@dataclass
class AgentConfig:
    arch: str = key(doc="registered architecture", kind="architecture name", identity=True)
    loss: str = key(doc="registered loss", kind="loss name", identity=True)
    arch_options: dict = key({}, "its keyword arguments (``hidden_size``...)", identity=True)
    loss_options: dict = key({}, "its keyword arguments", identity=True)

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.loss}"


@dataclass
class TrainConfig:
    epochs: int = key(3, "passes of ``samples_per_lane`` samples", bounds=(1, 100_000), identity=True)
    steps: int | None = key(None, "total optimiser steps (overrides epochs)", bounds=(1, 10**9), identity=True)
    lanes: int = key(64, "parallel stream lanes (batch size)", bounds=(1, 65_536), identity=True)
    chunk_length: int = key(128, "frames per step (truncated BPTT window)", bounds=(1, 65_536), identity=True)
    samples_per_lane: int | None = key(
        None, "samples per lane per epoch; null: one pass", bounds=(1, 10**7), identity=True
    )
    lr: float = key(3e-3, "AdamW learning rate", bounds=(0, 10), above=True, identity=True)
    weight_decay: float = key(0.01, "AdamW weight decay", bounds=(0, 10), identity=True)
    grad_clip: float = key(1.0, "gradient norm clip (0: none)", bounds=(0, 10**6), identity=True)
    schedule: Literal["cosine", "constant"] = key("cosine", "learning-rate schedule over all steps", identity=True)
    amp: bool = key(False, "bfloat16 autocast (CUDA only)", identity=True)
    validate: bool = key(True, "validation accuracy after each epoch", identity=True)
    validation_lanes: int = key(256, "lanes of the validation stream", bounds=(1, 65_536), identity=True)
    validation_warmup: int = key(
        0, "state-carrying protocols: unscored decisions per lane before validation scores", bounds=(0, 10_000)
    )
    checkpoint_every: int = key(0, "steps between checkpoints (0: each epoch)", bounds=(0, 10**9), identity=False)
    reset_state_every: int = key(0, "state-carrying training: zero it every k steps", bounds=(0, 10**9))
    patience: int = key(0, "stop after p epochs without a validation gain", bounds=(0, 100_000))
    min_delta: float = key(0.0, "smallest validation gain that counts", bounds=(0, 1))
    min_epochs: int = key(0, "no early stop before this epoch", bounds=(0, 100_000))
    progress: bool = key(True, "progress bar (on a terminal)", identity=False)

    def check(self) -> None:
        """Early stopping's keys go together."""
        if self.patience and not self.validate:
            raise Invalid("patience", "early stopping watches the validation accuracy; set train.validate: true")
        if self.min_epochs and not self.patience:
            raise Invalid("min_epochs", "only delays early stopping, which is off; set train.patience (> 0) or drop it")


@dataclass
class MetricConfig:
    name: str
    options: dict = field(default_factory=dict)


@dataclass
class EvaluateConfig:
    identity_rule: ClassVar[Identity] = False  # scoring reuses trained checkpoints

    lengths: list[int] = key(
        DEFAULT_LENGTHS, "stream lengths n (samples per lane)", bounds=(1, 100_000), shown="1..128"
    )
    min_decisions: int = key(10000, "decisions behind every accuracy", bounds=(1, 10**8))
    chunk_length: int = key(1024, "frames per inference call", bounds=(1, 10**6))
    checkpoint: Literal["best", "last"] = key("best", "which weights to evaluate")
    endless_lanes: int = key(32, "lanes of the long endless run", bounds=(1, 65_536))
    endless_samples: int = key(2000, "samples per lane of the endless run", bounds=(1, 10**7))
    rolling_window: int = key(1000, "rolling accuracy window (decisions)", bounds=(1, 10**8))
    metrics: list[MetricConfig] = key(
        doc="metrics of the endless run",
        kind="list",
        shown="(see below)",
        factory=lambda: [MetricConfig(m) for m in DEFAULT_METRICS],
    )
    stream: dict = key({}, "test streams differ from training (shift)", kind="mapping of data.stream keys")

    def check(self) -> None:
        """Between one and 1000 stream lengths."""
        if not self.lengths:
            raise Invalid("lengths", "needs at least one length")
        if len(self.lengths) > 1000:
            raise Invalid("lengths", f"at most 1000 lengths, got {len(self.lengths)}")


@dataclass
class ContinualConfig:
    """The prequential protocol (:mod:`nrstream.lab.prequential`): predict, score, then learn, on every chunk."""

    identity_rule: ClassVar[Identity] = False  # a prequential run keeps no checkpoint to key

    frames: int | None = key(
        None, "frames per lane to run; null: the schedule's length", bounds=(1, 10**12), kind="int or null"
    )
    lanes: int = key(16, "parallel lanes of the learning stream", bounds=(1, 65_536))
    chunk_length: int = key(64, "frames per chunk (predict, then learn)", bounds=(1, 65_536))
    optimizer: Literal["adamw", "adam", "sgd"] = key("adamw", "optimiser of the online learner")
    lr: float = key(1e-3, "its learning rate (constant)", bounds=(0, 10), above=True)
    weight_decay: float = key(0.0, "its weight decay", bounds=(0, 10))
    steps_per_chunk: int = key(1, "optimiser steps per chunk (after scoring it)", bounds=(1, 100))
    grad_clip: float = key(1.0, "gradient norm clip (0: none)", bounds=(0, 10**6))
    replay: int = key(0, "chunks in a reservoir replayed once per chunk (0: none)", bounds=(0, 100_000))
    test_lanes: int = key(16, "lanes of each held-out phase test stream", bounds=(1, 65_536))
    test_samples: int = key(8, "samples per lane of each held-out test (R matrix)", bounds=(1, 10**6))
    window: int = key(1000, "rolling prequential accuracy window (frames)", bounds=(1, 10**9))
    margin: float = key(0.05, "recovered: rolling accuracy within this of its pre-switch level", bounds=(0, 1))


@dataclass
class Config:
    agents: list[AgentConfig] = key(kind="list or product", doc="the agents: see below", identity=True)
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    path: str = "<config>"
    #: the ``--set`` overrides applied on top of the file (already in the values above)
    overrides: list[str] = field(default_factory=list)

    @property
    def checkpoint_dir(self) -> Path:
        if self.run.checkpoint_dir is not None:
            return Path(self.run.checkpoint_dir)
        return Path(self.run.out_dir) / "checkpoints"

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name

    def check(self) -> None:
        """Each arch/loss pair once."""
        labels = [a.label for a in self.agents]
        for label in labels:
            if labels.count(label) > 1:
                raise Invalid("agents", f"{label} is listed twice; give each arch/loss pair once")


#: fields of :class:`Config` that are bookkeeping, not keys of the file
_NOT_KEYS = ("path", "overrides")
