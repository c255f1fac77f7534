"""Experiment configs: YAML files validated into dataclasses.

A config names what to train and how to score it. Every problem is one line (a
:class:`~nrstream.errors.ConfigError`) naming the file, the key path and, for a typo, the
closest valid names::

    configs/x.yaml: train.epocs: unknown key; did you mean 'epochs'?
    configs/x.yaml: train.epochs: expected an integer, got 'three' (str)
    configs/x.yaml: agents[0].arch: unknown architecture 'gur'; did you mean 'gru'? (registered: gru, lstm, ...)
    configs/x.yaml: --set train.lr: must be > 0, got 0.0

Loading has two phases. :func:`parse_config` with ``check_plugins=False`` checks the
structure, types and ranges of every key; it imports neither torch nor any plugin.
:func:`resolve_plugins` then resolves the plugin names against the registry (which loads
the plugins) and checks every plugin option early, before anything trains: unknown
options and options of the wrong annotated type (the registry's signature check), losses
and metrics built once with their options, and architectures built on torch's ``meta``
device (no memory; placeholder ``input_size=1``, ``num_classes=2``) so that a bad or
absurd size (``hidden_size: 1000000``) is an error naming its key, not an allocator crash.
:func:`load_config` does both, and applies ``--set KEY=VALUE`` overrides in between.

Limits that keep a hostile or mistyped file from hurting: a config file is at most
1 MiB, UTF-8, with at most 100 000 YAML nodes after alias expansion (no "billion
laughs"); every number is finite and every integer at most 2**53 in magnitude; sizes
have upper bounds (below); error messages quote at most 80 characters of a value.

Reference (every key; a test fails when a key is missing here):

==============================  ==========================  ============  ==========================================
key                             type                        default       meaning
==============================  ==========================  ============  ==========================================
run.name                        folder name                 ``run``       run folder name under ``run.out_dir``
run.out_dir                     str                         ``runs``      where run folders go (relative to the CWD)
run.checkpoint_dir              str or null                 null          checkpoints; null: ``<out_dir>/checkpoints``
run.seed                        int 0..2**31-1              0             seeds weights, streams and dropout
run.seeds                       list of int or null         null          one job per seed; null: ``[run.seed]``
run.device                      auto | cpu | cuda           ``auto``      ``auto``: CUDA when present
run.executor                    local | ray                 ``local``     ``local``: jobs one after another, here
run.ray_address                 str or null                 null          ``auto``/``ray://host:10001``; null: local Ray
run.resources.num_cpus          float 0..1024 (> 0)         1.0           CPUs each job asks of the executor
run.resources.num_gpus          float 0..64                 0.0           GPUs (or a fraction) each job asks for
run.tensorboard                 bool                        false         curves as TensorBoard events in
                                                                          ``<out_dir>/tensorboard/<name>/``
data.source                     data source name            ``toy``       registered data source to load
data.options                    mapping                     {}            keyword arguments of the source
data.fallback                   data source name or none    ``none``      used when ``source`` finds no data
data.fallback_options           mapping                     {}            keyword arguments of the fallback
data.stream.*                   (one row per field of ``nrstream.stream.settings.StreamSettings``, added below)
agents                          list or product             (required)    the agents: see below
agents[i].arch                  architecture name           (required)    registered architecture
agents[i].arch_options          mapping                     {}            its keyword arguments (``hidden_size``...)
agents[i].loss                  loss name                   (required)    registered loss
agents[i].loss_options          mapping                     {}            its keyword arguments
agents.archs                    list                        (required)    product form: name or {name, options}
agents.losses                   list                        (required)    product form: name or {name, options}
train.epochs                    int 1..100000               3             passes of ``samples_per_lane`` samples
train.steps                     int 1..10**9 or null        null          total optimiser steps (overrides epochs)
train.lanes                     int 1..65536                64            parallel stream lanes (batch size)
train.chunk_length              int 1..65536                128           frames per step (truncated BPTT window)
train.samples_per_lane          int 1..10**7 or null        null          samples per lane per epoch; null: one pass
train.lr                        float 0..10 (> 0)           0.003         AdamW learning rate
train.weight_decay              float 0..10                 0.01          AdamW weight decay
train.grad_clip                 float 0..10**6              1.0           gradient norm clip (0: none)
train.schedule                  cosine | constant           ``cosine``    learning-rate schedule over all steps
train.amp                       bool                        false         bfloat16 autocast (CUDA only)
train.validate                  bool                        true          validation accuracy after each epoch
train.validation_lanes          int 1..65536                256           lanes of the validation stream
train.checkpoint_every          int 0..10**9                0             steps between checkpoints (0: each epoch)
train.reset_state_every         int 0..10**9                0             state-carrying training: zero it every k steps
train.patience                  int 0..100000               0             stop after p epochs without a validation gain
train.min_delta                 float 0..1                  0.0           smallest validation gain that counts
train.min_epochs                int 0..100000               0             no early stop before this epoch
train.progress                  bool                        true          progress bar (on a terminal)
evaluate.lengths                list of int 1..100000       1..128        stream lengths n (samples per lane)
evaluate.min_decisions          int 1..10**8                10000         decisions behind every accuracy
evaluate.chunk_length           int 1..10**6                1024          frames per inference call
evaluate.checkpoint             best | last                 ``best``      which weights to evaluate
evaluate.endless_lanes          int 1..65536                32            lanes of the long endless run
evaluate.endless_samples        int 1..10**7                2000          samples per lane of the endless run
evaluate.rolling_window         int 1..10**8                1000          rolling accuracy window (decisions)
evaluate.metrics                list                        (see below)   metrics of the endless run
evaluate.stream                 mapping of data.stream keys {}            test streams differ from training (shift)
==============================  ==========================  ============  ==========================================

``agents`` is either a list of ``{arch, arch_options, loss, loss_options}`` or the product
``{archs: [...], losses: [...]}`` whose entries are a name or ``{name: ..., options: {...}}``.
``train.reset_state_every`` bounds the training streams of protocols that carry the state
(``nrstream.plugin.protocols``): with
``k > 0`` every lane restarts from the initial state every ``k`` steps (``k x chunk_length``
frames), so the network never trains on longer histories; ``0`` (default) lets the state
run on forever.
``train.patience = p > 0`` stops training early once ``p`` epochs in a row have not raised the
best validation accuracy by more than ``train.min_delta`` (it needs ``train.validate``);
``train.epochs`` is then the most it may run, and the learning-rate schedule still spans
``train.epochs``. ``train.min_epochs = m`` lets it stop at epoch ``m`` at the earliest (as
Lightning's ``min_epochs``): under a cosine schedule the learning rate of the first epochs
is still high, and a plateau of the noisy validation accuracy there is not the end. The
best-validation weights are in ``best.pt`` either way, and each agent's history in
``results.json`` records where it stopped (``stopped_early``).
``evaluate.stream`` changes the test streams only (a distribution shift between training
and test): its keys are those of ``data.stream`` and replace them for every test stream
(by length and endless), e.g. ``{gap_min: 0, gap_max: 0}`` puts samples back to back and
``{noise_scale: 3.0}`` makes the noise 3x louder. Training and validation keep
``data.stream``; the settings the test streams used are recorded in ``results.json``
(``data.test_stream``). Being part of ``evaluate``, it reuses trained checkpoints.
``evaluate.metrics`` entries are a name or ``{name: ..., options: {...}}``; the default is
``accuracy, accuracy_by_position, rolling_accuracy, noise_entropy, state_norm``.

Seeds: ``run.seeds`` lists the seeds to train each agent with (one job per agent and
seed); ``run.seed`` is the single-seed spelling of ``run.seeds: [seed]``. After loading,
``run.seeds`` is always a non-empty list of distinct seeds and ``run.seed == run.seeds[0]``
(the first seed, for what needs one). Giving both is allowed only when they agree
(``run.seed`` equals ``run.seeds[0]``); anything else is an error. On the command line
the last spelling wins: ``--set run.seeds=[1,2]`` replaces the file's ``run.seed``, and
``--set run.seed=4`` its ``run.seeds``.
``run.name`` is a plain folder name: no ``/`` or ``\\``, not ``.``/``..``, no leading ``.``,
no control characters, at most 100 characters.

Command-line overrides (``--set KEY=VALUE``, :func:`apply_overrides`) replace one key
each; ``VALUE`` is YAML (``1``, ``[ce, ce_kl]``, ``{hidden_size: 8}``, ``null``); list items
are addressed as ``agents[0].arch``. They are validated exactly like the file, and errors
name them (``configs/x.yaml: --set train.epochs: ...``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nrstream.errors import ConfigError, NrstreamError, OptionError, PluginError
from nrstream.stream.settings import SettingError, StreamSettings

__all__ = [
    "Config",
    "RunConfig",
    "ResourcesConfig",
    "DataConfig",
    "StreamConfig",
    "StreamSettings",
    "AgentConfig",
    "TrainConfig",
    "EvaluateConfig",
    "MetricConfig",
    "load_config",
    "parse_config",
    "resolve_plugins",
    "apply_overrides",
    "parse_override",
    "read_config_file",
    "config_to_dict",
    "agent_key",
    "DEFAULT_LENGTHS",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_NODES",
]

DEFAULT_LENGTHS = [1, 2, 4, 8, 16, 32, 64, 128]
DEFAULT_METRICS = ["accuracy", "accuracy_by_position", "rolling_accuracy", "noise_entropy", "state_norm"]

#: a config file larger than this is refused before it is parsed
MAX_CONFIG_BYTES = 1 << 20
#: YAML nodes after alias expansion (a "billion laughs" file expands to 10**9)
MAX_YAML_NODES = 100_000
#: every integer anywhere in a config (plugin options too) is at most this in magnitude
MAX_INT = 2**53
#: parameters an architecture may have (checked on the meta device at config load)
MAX_PARAMETERS = 2_000_000_000
#: a run folder name
MAX_NAME = 100
#: an out_dir / checkpoint_dir / ray_address string
MAX_PATH = 4096

#: the config's ``data.stream`` section *is* the stream settings (old name kept for a release)
StreamConfig = StreamSettings


@dataclass
class ResourcesConfig:
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    checkpoint_dir: str | None = None
    seed: int = 0
    seeds: list[int] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.seeds is None:
            self.seeds = [self.seed]


@dataclass
class DataConfig:
    source: str = "toy"
    options: dict = field(default_factory=dict)
    fallback: str = "none"
    fallback_options: dict = field(default_factory=dict)
    stream: StreamSettings = field(default_factory=StreamSettings)


@dataclass
class AgentConfig:
    arch: str
    loss: str
    arch_options: dict = field(default_factory=dict)
    loss_options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.loss}"


@dataclass
class TrainConfig:
    epochs: int = 3
    steps: int | None = None
    lanes: int = 64
    chunk_length: int = 128
    samples_per_lane: int | None = None
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    schedule: Literal["cosine", "constant"] = "cosine"
    amp: bool = False
    validate: bool = True
    validation_lanes: int = 256
    checkpoint_every: int = 0
    reset_state_every: int = 0
    patience: int = 0
    min_delta: float = 0.0
    min_epochs: int = 0
    progress: bool = True


@dataclass
class MetricConfig:
    name: str
    options: dict = field(default_factory=dict)


@dataclass
class EvaluateConfig:
    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    min_decisions: int = 10000
    chunk_length: int = 1024
    checkpoint: Literal["best", "last"] = "best"
    endless_lanes: int = 32
    endless_samples: int = 2000
    rolling_window: int = 1000
    metrics: list[MetricConfig] = field(default_factory=lambda: [MetricConfig(m) for m in DEFAULT_METRICS])
    stream: dict = field(default_factory=dict)


@dataclass
class Config:
    agents: list[AgentConfig]
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
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


#: fields of :class:`Config` that are bookkeeping, not keys of the file
_NOT_KEYS = ("path", "overrides")


def _add_stream_rows(doc: str | None) -> str | None:
    """The ``data.stream.*`` rows of the key table, one per :class:`StreamSettings` field."""
    if doc is None:
        return None
    rows = [
        f"{'data.stream.' + name:<32}{type_:<28}{default:<14}{meaning}"
        for name, type_, default, meaning in StreamSettings.reference_rows()
    ]
    lines = doc.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("data.stream.*"))
    return "\n".join(lines[: at + 1] + rows + lines[at + 1 :]) + "\n"


__doc__ = _add_stream_rows(__doc__)


# ---------------------------------------------------------------------------- ranges

# inclusive bounds by key path (``[]`` stands for any list index)
_RANGES: dict[str, tuple[float, float]] = {
    "run.seed": (0, 2**31 - 1),
    "run.seeds[]": (0, 2**31 - 1),
    "run.resources.num_cpus": (0, 1024),
    "run.resources.num_gpus": (0, 64),
    "train.epochs": (1, 100_000),
    "train.steps": (1, 10**9),
    "train.lanes": (1, 65_536),
    "train.chunk_length": (1, 65_536),
    "train.samples_per_lane": (1, 10**7),
    "train.lr": (0, 10),
    "train.weight_decay": (0, 10),
    "train.grad_clip": (0, 10**6),
    "train.validation_lanes": (1, 65_536),
    "train.checkpoint_every": (0, 10**9),
    "train.reset_state_every": (0, 10**9),
    "train.patience": (0, 100_000),
    "train.min_delta": (0, 1),
    "train.min_epochs": (0, 100_000),
    "evaluate.lengths[]": (1, 100_000),
    "evaluate.min_decisions": (1, 10**8),
    "evaluate.chunk_length": (1, 10**6),
    "evaluate.endless_lanes": (1, 65_536),
    "evaluate.endless_samples": (1, 10**7),
    "evaluate.rolling_window": (1, 10**8),
}
# keys whose lower bound is exclusive
_POSITIVE = {"train.lr", "run.resources.num_cpus"}


def _bound_text(n: float) -> str:
    return (
        f"{n:g}"
        if isinstance(n, float)
        else (f"10**{len(str(n)) - 1}" if n >= 10**6 and n == 10 ** (len(str(n)) - 1) else str(n))
    )


# ---------------------------------------------------------------------------- validation


def _quote(value: Any) -> str:
    from nrstream.plugin.registry import quote

    return quote(value)


def _describe(value: Any) -> str:
    return f"{_quote(value)} ({type(value).__name__})"


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _pattern(key: str) -> str:
    return re.sub(r"\[\d+\]", "[]", key)


class _Ctx:
    """Where values come from: the file, and which keys ``--set`` replaced."""

    def __init__(self, path: str, overridden: list[str] | None = None) -> None:
        self.path = path
        self.overridden = overridden or []

    def fail(self, key: str, message: str) -> typing.NoReturn:
        if len(key) > 120:
            key = key[:117] + "..."
        source = next(
            (k for k in self.overridden if key == k or key.startswith((k + ".", k + "["))),
            None,
        )
        where = f"--set {key}: " if source is not None else (f"{key}: " if key else "")
        raise ConfigError(f"{self.path}: {where}{message}")


def _suggest(name: str, valid: list[str], what: str = "key") -> str:
    from nrstream.plugin.registry import did_you_mean

    return did_you_mean(name, valid, what)


def _check_plain(ctx: _Ctx, key: str, value: Any, depth: int = 0) -> Any:
    """A free-form value (plugin options): plain YAML data, finite numbers, bounded integers."""
    if depth > 20:
        ctx.fail(key, "nested too deeply (more than 20 levels)")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            ctx.fail(key, f"integer too large (at most 2**53 in magnitude), got {_quote(value)}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            ctx.fail(key, f"must be a finite number, got {value!r}")
        return value
    if isinstance(value, list):
        return [_check_plain(ctx, f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                ctx.fail(key, f"option names must be strings, got {_describe(k)}")
        return {k: _check_plain(ctx, _join(key, k), v, depth + 1) for k, v in value.items()}
    ctx.fail(key, f"expected plain YAML data, got {_describe(value)}")


def _check_range(ctx: _Ctx, key: str, value: float) -> None:
    bounds = _RANGES.get(_pattern(key))
    if bounds is None:
        return
    low, high = bounds
    if key in _POSITIVE and not value > low:
        ctx.fail(key, f"must be > {low:g}, got {value!r}")
    if value < low:
        ctx.fail(key, f"must be >= {low}, got {value!r}")
    if value > high:
        ctx.fail(key, f"must be <= {_bound_text(high)}, got {_quote(value)}")


def _check_value(ctx: _Ctx, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(ctx, key, value, inner)
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, bool) or value not in choices:
            ctx.fail(key, f"expected one of {', '.join(map(str, choices))}, got {_describe(value)}")
        return value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            ctx.fail(key, f"expected a list, got {_describe(value)}")
        return [_check_value(ctx, f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            ctx.fail(key, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(key, f"expected an integer, got {_describe(value)}")
        if abs(value) > MAX_INT:
            ctx.fail(key, f"integer too large (at most 2**53 in magnitude), got {_quote(value)}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.fail(key, f"expected a number, got {_describe(value)}")
        if isinstance(value, int) and abs(value) > MAX_INT:
            ctx.fail(key, f"number too large, got {_quote(value)}")
        value = float(value)
        if not math.isfinite(value):
            ctx.fail(key, f"must be a finite number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            ctx.fail(key, f"expected a string, got {_describe(value)}")
        if len(value) > MAX_PATH or "\x00" in value:
            ctx.fail(key, f"expected a string of at most {MAX_PATH} characters without NUL, got {_describe(value)}")
    elif hint is dict:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            ctx.fail(key, f"expected a mapping of names to values, got {_describe(value)}")
        return _check_plain(ctx, key, dict(value))
    elif hint is MetricConfig:
        return _named(ctx, key, value, MetricConfig)
    elif dataclasses.is_dataclass(hint):
        return _build(ctx, key, value, hint)
    else:  # pragma: no cover - a field type this parser does not know is a programming error
        raise TypeError(f"config field {key} has an unsupported type {hint!r}")
    _check_range(ctx, key, value)
    return value


def _build(ctx: _Ctx, prefix: str, mapping: Any, cls: type) -> Any:
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        ctx.fail(prefix, f"expected a mapping, got {_describe(mapping)}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS]
    names = [f.name for f in fields]
    for key in mapping:
        if key not in names:
            ctx.fail(_join(prefix, str(key)), f"unknown key; {_suggest(str(key), names)}")
    kwargs = {}
    for f in fields:
        if f.name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                ctx.fail(_join(prefix, f.name), "missing required key")
            continue
        kwargs[f.name] = _check_value(ctx, _join(prefix, f.name), mapping[f.name], hints[f.name])
    try:
        return cls(**kwargs)
    except SettingError as exc:  # a settings dataclass checks its own ranges and cross-field rules
        ctx.fail(_join(prefix, exc.field), exc.reason)
    except ValueError as exc:
        ctx.fail(prefix, str(exc))


def _named(ctx: _Ctx, key: str, value: Any, cls: type = MetricConfig) -> Any:
    """A ``name`` or ``{name: ..., options: {...}}`` entry."""
    if isinstance(value, str):
        return cls(value)
    if isinstance(value, dict):
        return _build(ctx, key, value, cls)
    ctx.fail(key, f"expected a name or {{name: ..., options: {{...}}}}, got {_describe(value)}")


def _agents(ctx: _Ctx, value: Any) -> tuple[list[AgentConfig], list[dict[str, str]]]:
    """The agents, and for each the key paths of its names and options (for error messages)."""
    if isinstance(value, dict):
        for k in value:
            if k not in ("archs", "losses"):
                ctx.fail(f"agents.{k}", f"unknown key; {_suggest(str(k), ['archs', 'losses'])}")
        for k in ("archs", "losses"):
            if not isinstance(value.get(k), list) or not value[k]:
                ctx.fail(f"agents.{k}", f"expected a non-empty list, got {_describe(value.get(k))}")
        archs = [_named(ctx, f"agents.archs[{i}]", a) for i, a in enumerate(value["archs"])]
        losses = [_named(ctx, f"agents.losses[{i}]", loss) for i, loss in enumerate(value["losses"])]
        if len(archs) * len(losses) > 1000:
            ctx.fail("agents", f"{len(archs)} x {len(losses)} agents is more than 1000; split the study")
        agents, paths = [], []
        for i, a in enumerate(archs):
            for j, loss in enumerate(losses):
                agents.append(AgentConfig(a.name, loss.name, dict(a.options), dict(loss.options)))
                arch_key, loss_key = f"agents.archs[{i}]", f"agents.losses[{j}]"
                paths.append(
                    {
                        "arch": arch_key if isinstance(value["archs"][i], str) else f"{arch_key}.name",
                        "arch_options": f"{arch_key}.options",
                        "loss": loss_key if isinstance(value["losses"][j], str) else f"{loss_key}.name",
                        "loss_options": f"{loss_key}.options",
                    }
                )
        return agents, paths
    if isinstance(value, list) and value:
        if len(value) > 1000:
            ctx.fail("agents", f"{len(value)} agents is more than 1000; split the study")
        agents = [_build(ctx, f"agents[{i}]", a, AgentConfig) for i, a in enumerate(value)]
        keys = ("arch", "arch_options", "loss", "loss_options")
        return agents, [{k: f"agents[{i}].{k}" for k in keys} for i in range(len(agents))]
    ctx.fail("agents", f"expected a non-empty list or {{archs: [...], losses: [...]}}, got {_describe(value)}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_run(ctx: _Ctx, raw_run: Any, run: RunConfig) -> None:
    name = run.name
    if len(name) > MAX_NAME:
        ctx.fail("run.name", f"must be at most {MAX_NAME} characters (a folder name), got {_quote(name)}")
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or _CONTROL.search(name):
        ctx.fail(
            "run.name",
            f"must be a plain folder name (no '/', '\\\\' or control characters, not '.', '..' "
            f"or starting with '.'), got {_quote(name)}; put folders in run.out_dir",
        )
    for key in ("out_dir", "checkpoint_dir"):
        value = getattr(run, key)
        if value is not None and not value.strip():
            ctx.fail(f"run.{key}", "must not be empty")
    given = raw_run if isinstance(raw_run, dict) else {}
    seeds = run.seeds or []
    if "seeds" in given and given["seeds"] is not None:
        if not seeds:
            ctx.fail("run.seeds", "needs at least one seed")
        if len(seeds) > 1000:
            ctx.fail("run.seeds", f"at most 1000 seeds, got {len(seeds)}")
        for i, s in enumerate(seeds):
            if seeds.index(s) != i:
                ctx.fail(f"run.seeds[{i}]", f"seed {s} is listed twice")
        if "seed" in given and given["seed"] != seeds[0]:
            ctx.fail(
                "run.seed",
                f"{given['seed']} disagrees with run.seeds[0] ({seeds[0]}); give run.seeds alone "
                "(run.seed is the single-seed spelling of run.seeds: [seed])",
            )
        run.seed = seeds[0]
    else:
        run.seeds = [run.seed]
    if run.ray_address is not None:
        if not run.ray_address.strip() or _CONTROL.search(run.ray_address) or " " in run.ray_address:
            ctx.fail(
                "run.ray_address", f"expected 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {_quote(run.ray_address)}"
            )


def parse_config(
    raw: Any,
    path: str = "<config>",
    *,
    check_plugins: bool = True,
    overrides: list[str] | None = None,
) -> Config:
    """Validate a mapping (as loaded from YAML) into a :class:`Config`.

    ``check_plugins=False`` stops after structure, types and ranges: no plugin is loaded
    (and torch is not imported). ``overrides`` are the ``--set`` strings already applied to
    ``raw`` (see :func:`apply_overrides`): errors in those keys name the flag.
    """
    overridden = [parse_override(o)[0] for o in overrides or []]
    ctx = _Ctx(path, overridden)
    if not isinstance(raw, dict):
        ctx.fail("", f"a config must be a mapping of sections, got {_describe(raw)}")
    raw = dict(raw)
    if "agents" not in raw:
        ctx.fail("agents", "missing required key")
    agents, agent_paths = _agents(ctx, raw.pop("agents"))
    config = _build(ctx, "", {**raw, "agents": []}, Config)
    config.agents = agents
    config.path = path
    config.overrides = list(overrides or [])
    _check_run(ctx, raw.get("run"), config.run)
    if not config.evaluate.lengths:
        ctx.fail("evaluate.lengths", "needs at least one length")
    if len(config.evaluate.lengths) > 1000:
        ctx.fail("evaluate.lengths", f"at most 1000 lengths, got {len(config.evaluate.lengths)}")
    if config.train.patience and not config.train.validate:
        ctx.fail("train.patience", "early stopping watches the validation accuracy; set train.validate: true")
    if config.train.min_epochs and not config.train.patience:
        ctx.fail("train.min_epochs", "only delays early stopping, which is off; set train.patience (> 0) or drop it")
    if config.evaluate.stream:  # the shifted test settings are checked like data.stream itself
        _build(ctx, "evaluate.stream", {**dataclasses.asdict(config.data.stream), **config.evaluate.stream},
               StreamSettings)  # fmt: skip
    labels = [a.label for a in config.agents]
    for label in labels:
        if labels.count(label) > 1:
            ctx.fail("agents", f"{label} is listed twice; give each arch/loss pair once")
    config._agent_paths = agent_paths  # type: ignore[attr-defined]  # for resolve_plugins' messages
    if check_plugins:
        resolve_plugins(config)
    return config


# ---------------------------------------------------------------------------- plugin resolution

#: parameters of an architecture factory the engine fills (a config may not set them)
ARCH_FILLED = ("input_size", "num_classes")


def _agent_paths(config: Config) -> list[dict[str, str]]:
    paths = getattr(config, "_agent_paths", None)
    if paths is not None and len(paths) == len(config.agents):
        return paths
    keys = ("arch", "arch_options", "loss", "loss_options")
    return [{k: f"agents[{i}].{k}" for k in keys} for i in range(len(config.agents))]


def _resolve(ctx: _Ctx, registry, kind: str, key: str, options_key: str, name: str, options: dict, skip=()) -> None:
    """``name`` is registered as a ``kind``, and its factory takes ``options`` (names and types)."""
    try:
        registry.get(kind, name)
    except PluginError as exc:
        ctx.fail(key, str(exc))
    try:
        registry.check_options(kind, name, options, skip)
    except OptionError as exc:
        ctx.fail(f"{options_key}.{exc.option}" if exc.option else options_key, str(exc))


def _try_build(ctx: _Ctx, registry, kind: str, options_key: str, name: str, options: dict) -> None:
    """Build a loss or metric once: a value its factory rejects is found before training."""
    try:
        registry.get(kind, name).factory(**options)
    except (NrstreamError, ValueError) as exc:
        ctx.fail(options_key, f"{kind.replace('_', ' ')} {name!r} rejects its options: {_first_line(exc)}")
    except Exception:  # inconclusive (e.g. needs something only the run provides): the run will say
        return


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _probe_architecture(ctx: _Ctx, registry, options_key: str, name: str, options: dict) -> None:
    """Build the architecture on torch's meta device (no memory): bad values and absurd sizes fail here."""
    import torch

    factory = registry.get("architecture", name).factory
    try:
        with torch.device("meta"):
            model = factory(input_size=1, num_classes=2, **options)
    except (NrstreamError, ValueError) as exc:
        ctx.fail(options_key, f"architecture {name!r} rejects its options: {_first_line(exc)}")
    except Exception:  # inconclusive on the meta device; the real build reports it
        return
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return
    try:
        count = sum(p.numel() for p in parameters())
    except Exception:
        return
    if count > MAX_PARAMETERS:
        ctx.fail(
            options_key,
            f"architecture {name!r} would have {count:.3g} parameters with these options "
            f"(limit {MAX_PARAMETERS:.0e}, already at input_size=1); use smaller sizes",
        )


def resolve_plugins(config: Config) -> None:
    """Resolve every plugin name of ``config`` and check every plugin option, now.

    Loads the plugins (the registry). Unknown names and options get "did you mean";
    options of the wrong annotated type, options a loss or metric factory rejects, and
    architectures that cannot be built (or are absurdly large) on the ``meta`` device are
    one-line errors naming the key, found before anything trains.
    """
    from nrstream.plugin.registry import get_registry

    ctx = _Ctx(config.path, [parse_override(o)[0] for o in config.overrides])
    try:
        registry = get_registry()
    except PluginError as exc:
        ctx.fail("", str(exc))
    data = config.data
    _resolve(ctx, registry, "data_source", "data.source", "data.options", data.source, data.options)
    if data.fallback != "none":
        fallback = ("data.fallback", "data.fallback_options", data.fallback, data.fallback_options)
        _resolve(ctx, registry, "data_source", *fallback)
    for agent, path in zip(config.agents, _agent_paths(config), strict=True):
        arch = (path["arch"], path["arch_options"], agent.arch, agent.arch_options)
        _resolve(ctx, registry, "architecture", *arch, ARCH_FILLED)
        _resolve(ctx, registry, "loss", path["loss"], path["loss_options"], agent.loss, agent.loss_options)
    for i, metric in enumerate(config.evaluate.metrics):
        key = f"evaluate.metrics[{i}]"
        _resolve(ctx, registry, "metric", f"{key}.name", f"{key}.options", metric.name, metric.options)
    # now every name and option name is known: build what is cheap to build
    seen: set[str] = set()
    for agent, path in zip(config.agents, _agent_paths(config), strict=True):
        arch_id = json.dumps([agent.arch, agent.arch_options], sort_keys=True, default=str)
        if arch_id not in seen:
            seen.add(arch_id)
            _probe_architecture(ctx, registry, path["arch_options"], agent.arch, agent.arch_options)
        _try_build(ctx, registry, "loss", path["loss_options"], agent.loss, agent.loss_options)
    for i, metric in enumerate(config.evaluate.metrics):
        _try_build(ctx, registry, "metric", f"evaluate.metrics[{i}].options", metric.name, metric.options)


# ---------------------------------------------------------------------------- reading YAML


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses alias bombs and duplicate keys before building objects."""


def _check_nodes(root: yaml.Node, source: str) -> None:
    """At most :data:`MAX_YAML_NODES` nodes once aliases are expanded; no key given twice.

    Counts with memoisation over the node graph (aliases share nodes), so a billion-laughs
    file is measured in microseconds instead of being expanded.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > 100:
            raise ConfigError(f"{source}: nested more than 100 levels deep")
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # cycles (recursive aliases) count once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in keys:
                        line = key.start_mark.line + 1
                        raise ConfigError(f"{source}: line {line}: key {_quote(key.value)} is given twice")
                    keys.add(key.value)
                total += size(key, depth + 1) + size(value, depth + 1)
            if total > MAX_YAML_NODES:
                raise ConfigError(_bomb(source))
        sizes[id(node)] = total
        if total > MAX_YAML_NODES:
            raise ConfigError(_bomb(source))
        return total

    size(root, 0)


def _bomb(source: str) -> str:
    return (
        f"{source}: more than {MAX_YAML_NODES} values once YAML aliases are expanded "
        "(an alias bomb?); write the values out or use fewer aliases"
    )


def _load_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely: alias-bomb and duplicate-key checks, one-line errors."""
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
        raise ConfigError(f"{source}: {where}invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python refuses to convert it)
        reason = "an integer with more than 4300 digits" if "digits" in str(exc) else _first_line(exc)
        raise ConfigError(f"{source}: invalid value: {reason}") from None
    finally:
        loader.dispose()


def read_config_file(path: str | Path) -> str:
    """The text of a config file: a readable regular file of at most 1 MiB of UTF-8.

    Reads at most ``MAX_CONFIG_BYTES + 1`` bytes, so ``/dev/zero`` or a huge file is
    refused at once instead of filling memory.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path}: is a folder, not a config file; pass a .yaml file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a short YAML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


# ---------------------------------------------------------------------------- overrides

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _key_parts(key: str, shown: str) -> list[str | int]:
    """``agents.archs[0].options`` -> ``["agents", "archs", 0, "options"]``."""
    parts: list[str | int] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ConfigError(f"--set {shown}: {_quote(key)} is not a key path (like train.epochs or agents[0].arch)")
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    return parts


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=1"`` -> ``("train.epochs", 1)``; the value is YAML (``[a, b]``, ``{k: v}``, ``null``)."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    shown = _quote(text)[1:-1] if len(text) > 80 else text
    if not sep or not key:
        raise ConfigError(f"--set {shown}: expected KEY=VALUE, e.g. --set train.epochs=1")
    _key_parts(key, key)
    if len(value) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--set {key}: value longer than {MAX_CONFIG_BYTES // 1024} KiB")
    return key, _load_yaml(value, f"--set {key}")


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """``raw`` (a config mapping, not changed) with each ``KEY=VALUE`` of ``overrides`` set.

    Keys are dotted paths (``train.epochs``, ``data.options.num_classes``) with list items
    as ``[i]`` (``agents[0].arch``); missing mappings on the way are created. Values are
    parsed as YAML flow values. Validation (unknown keys, types, ranges) is left to
    :func:`parse_config`, which names ``--set`` in its errors when given ``overrides``.
    """
    import copy

    if not isinstance(raw, dict):
        raise ConfigError(f"cannot apply --set to a config that is not a mapping ({type(raw).__name__})")
    out = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        parts = _key_parts(key, key)
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            here = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts[: i + 1]).lstrip(".")
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    size = len(node) if isinstance(node, list) else "not a list"
                    raise ConfigError(f"--set {key}: {here} does not exist ({size})")
                node = node[part]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {key}: cannot set a key inside {_quote(node)} ({type(node).__name__})")
                if node.get(part) is None:
                    node[part] = [] if isinstance(parts[i + 1], int) else {}
                node = node[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last > len(node):
                raise ConfigError(f"--set {key}: no list item {last} to set")
            if last == len(node):
                node.append(value)
            else:
                node[last] = value
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: cannot set a key inside {_quote(node)} ({type(node).__name__})")
            node[last] = value
    return out


def _last_seed_spelling_wins(raw: dict, keys: list[str]) -> dict:
    """``--set run.seeds=[...]`` replaces the file's ``run.seed`` (and ``--set run.seed=N`` its ``run.seeds``)."""
    run = raw.get("run")
    if not isinstance(run, dict):
        return raw
    for given, other in (("run.seeds", "seed"), ("run.seed", "seeds")):
        if given in keys and f"run.{other}" not in keys and other in run:
            run = {k: v for k, v in run.items() if k != other}
    return {**raw, "run": run}


def load_config(
    path: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    check_plugins: bool = True,
) -> Config:
    """Read and validate a YAML config file, with ``--set KEY=VALUE`` ``overrides`` applied on top.

    The overrides end up in the values (so in the run folder's ``config.yaml``) and in
    ``Config.overrides``.
    """
    from nrstream.lab.bundled_configs import find_config  # a local file, else a bundled name ("quickstart")

    if not os.path.lexists(path):  # an existing folder or device is reported as what it is, below
        path = find_config(path)
    path = Path(path)
    raw = _load_yaml(read_config_file(path), str(path))
    if overrides:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections, got {_describe(raw)}")
        try:
            raw = apply_overrides(raw, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        raw = _last_seed_spelling_wins(raw, [parse_override(o)[0] for o in overrides])
    return parse_config(raw, str(path), check_plugins=check_plugins, overrides=list(overrides))


def config_to_dict(config: Config) -> dict:
    """The resolved config as plain data (what ``config.yaml`` in a run folder holds)."""
    out = dataclasses.asdict(config)
    for key in _NOT_KEYS:
        out.pop(key)
    out["agents"] = [dataclasses.asdict(a) for a in config.agents]
    return out


def agent_key(config: Config, agent: AgentConfig, served: dict | None = None, *, seed: int | None = None) -> str:
    """A hash of everything that decides an agent's trained weights.

    Run name, output folders, device, executor, progress bars, checkpoint cadence and the
    ``evaluate`` section are left out, so changing them reuses trained checkpoints.
    ``served`` (the data source that actually loaded, and its options) replaces the
    configured source so that a fallback never passes for the real data. ``seed`` is the
    job's training seed (default ``run.seed``, the first of ``run.seeds``); the key of
    seed 0 is the key checkpoints had before ``run.seeds`` existed.
    """
    train = dataclasses.asdict(config.train)
    for key in ("progress", "checkpoint_every"):
        train.pop(key)
    for later in ("reset_state_every", "patience", "min_delta", "min_epochs"):
        if not train[later]:
            train.pop(later)  # added later: their defaults keep older checkpoints' keys
    data = dataclasses.asdict(config.data)
    data["stream"] = config.data.stream.identity()  # unused scene fields left out: old keys stay valid
    if served is not None:
        data["source"], data["options"] = served["source"], served["options"]
        data.pop("fallback"), data.pop("fallback_options")
    relevant = {
        "seed": config.run.seed if seed is None else seed,
        "data": data,
        "agent": dataclasses.asdict(agent),
        "train": train,
    }
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
