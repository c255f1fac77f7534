"""Experiment configs: YAML files validated into dataclasses.

A config names what to train and how to score it. Every problem is one line (a
:class:`~nrstream.errors.ConfigError`) naming the file, the key path and, for a typo, the
closest valid names::

    configs/x.yaml: train.epocs: unknown key; did you mean 'epochs'?
    configs/x.yaml: train.epochs: expected an integer, got 'three' (str)
    configs/x.yaml: agents[0].arch: unknown architecture 'gur'; did you mean 'gru'? (registered: gru, lstm, ...)

Reference (every key; a test fails when a key is missing here):

==============================  ==========================  ============  ==========================================
key                             type                        default       meaning
==============================  ==========================  ============  ==========================================
run.name                        str                         ``run``       run folder name under ``run.out_dir``
run.out_dir                     str                         ``runs``      where run folders go (relative to the CWD)
run.checkpoint_dir              str or null                 null          checkpoints; null: ``<out_dir>/checkpoints``
run.seed                        int                         0             seeds weights, streams and dropout
run.device                      auto | cpu | cuda           ``auto``      ``auto``: CUDA when present
data.source                     data source name            ``toy``       registered data source to load
data.options                    mapping                     {}            keyword arguments of the source
data.fallback                   data source name or none    ``none``      used when ``source`` finds no data
data.fallback_options           mapping                     {}            keyword arguments of the fallback
data.stream.gap_min             int >= 0                    5             shortest noise gap (frames)
data.stream.gap_max             int >= gap_min              30            longest noise gap (frames), uniform
data.stream.noise               gaussian|silence|recorded   ``gaussian``  what fills the gaps
data.stream.noise_scale         float >= 0                  1.0           gaussian noise spread / data spread
agents                          list or product             (required)    the agents: see below
agents[i].arch                  architecture name           (required)    registered architecture
agents[i].arch_options          mapping                     {}            its keyword arguments (``hidden_size``...)
agents[i].loss                  loss name                   (required)    registered loss
agents[i].loss_options          mapping                     {}            its keyword arguments
agents.archs                    list                        (required)    product form: name or {name, options}
agents.losses                   list                        (required)    product form: name or {name, options}
train.epochs                    int >= 1                    3             passes of ``samples_per_lane`` samples
train.steps                     int or null                 null          total optimiser steps (overrides epochs)
train.lanes                     int >= 1                    64            parallel stream lanes (batch size)
train.chunk_length              int >= 1                    128           frames per step (truncated BPTT window)
train.samples_per_lane          int or null                 null          samples per lane per epoch; null: one pass
train.lr                        float > 0                   0.003         AdamW learning rate
train.weight_decay              float >= 0                  0.01          AdamW weight decay
train.grad_clip                 float >= 0                  1.0           gradient norm clip (0: none)
train.schedule                  cosine | constant           ``cosine``    learning-rate schedule over all steps
train.amp                       bool                        false         bfloat16 autocast (CUDA only)
train.validate                  bool                        true          validation accuracy after each epoch
train.validation_lanes          int >= 1                    256           lanes of the validation stream
train.checkpoint_every          int >= 0                    0             steps between checkpoints (0: each epoch)
train.reset_state_every         int >= 0                    0             continual: zero the state every k steps
train.progress                  bool                        true          progress bar (on a terminal)
evaluate.lengths                list of int >= 1            1..128        stream lengths n (samples per lane)
evaluate.min_decisions          int >= 1                    10000         decisions behind every accuracy
evaluate.chunk_length           int >= 1                    1024          frames per inference call
evaluate.checkpoint             best | last                 ``best``      which weights to evaluate
evaluate.endless_lanes          int >= 1                    32            lanes of the long endless run
evaluate.endless_samples        int >= 1                    2000          samples per lane of the endless run
evaluate.rolling_window         int >= 1                    1000          rolling accuracy window (decisions)
evaluate.metrics                list                        (see below)   metrics of the endless run
==============================  ==========================  ============  ==========================================

``agents`` is either a list of ``{arch, arch_options, loss, loss_options}`` or the product
``{archs: [...], losses: [...]}`` whose entries are a name or ``{name: ..., options: {...}}``.
``train.reset_state_every`` bounds the training streams of the ``continual`` protocol: with
``k > 0`` every lane restarts from the initial state every ``k`` steps (``k x chunk_length``
frames), so the network never trains on longer histories; ``0`` (default) lets the state
run on forever.
``evaluate.metrics`` entries are a name or ``{name: ..., options: {...}}``; the default is
``accuracy, accuracy_by_position, rolling_accuracy, noise_entropy, state_norm``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nrstream.errors import ConfigError, PluginError

__all__ = [
    "Config",
    "RunConfig",
    "DataConfig",
    "StreamConfig",
    "AgentConfig",
    "TrainConfig",
    "EvaluateConfig",
    "MetricConfig",
    "load_config",
    "parse_config",
    "config_to_dict",
    "agent_key",
    "DEFAULT_LENGTHS",
]

DEFAULT_LENGTHS = [1, 2, 4, 8, 16, 32, 64, 128]
DEFAULT_METRICS = ["accuracy", "accuracy_by_position", "rolling_accuracy", "noise_entropy", "state_norm"]


@dataclass
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    checkpoint_dir: str | None = None
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass
class StreamConfig:
    gap_min: int = 5
    gap_max: int = 30
    noise: Literal["gaussian", "silence", "recorded"] = "gaussian"
    noise_scale: float = 1.0


@dataclass
class DataConfig:
    source: str = "toy"
    options: dict = field(default_factory=dict)
    fallback: str = "none"
    fallback_options: dict = field(default_factory=dict)
    stream: StreamConfig = field(default_factory=StreamConfig)


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


@dataclass
class Config:
    agents: list[AgentConfig]
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    path: str = "<config>"

    @property
    def checkpoint_dir(self) -> Path:
        if self.run.checkpoint_dir is not None:
            return Path(self.run.checkpoint_dir)
        return Path(self.run.out_dir) / "checkpoints"

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name


# ---------------------------------------------------------------------------- validation

# positive / non-negative constraints, by key path
_AT_LEAST = {
    "run.seed": 0,
    "data.stream.gap_min": 0,
    "data.stream.gap_max": 0,
    "data.stream.noise_scale": 0,
    "train.epochs": 1,
    "train.steps": 1,
    "train.lanes": 1,
    "train.chunk_length": 1,
    "train.samples_per_lane": 1,
    "train.weight_decay": 0,
    "train.grad_clip": 0,
    "train.validation_lanes": 1,
    "train.checkpoint_every": 0,
    "train.reset_state_every": 0,
    "evaluate.min_decisions": 1,
    "evaluate.chunk_length": 1,
    "evaluate.endless_lanes": 1,
    "evaluate.endless_samples": 1,
    "evaluate.rolling_window": 1,
}
_POSITIVE = {"train.lr"}


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> typing.NoReturn:
        where = f"{key}: " if key else ""
        raise ConfigError(f"{self.path}: {where}{message}")


def _closest(name: str, valid: list[str]) -> list[str]:
    """Names within 0.1 of the best difflib ratio (at least 0.6), best first."""
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.6)
    if not close:
        return []
    best = difflib.SequenceMatcher(None, str(name), close[0]).ratio()
    return [c for c in close if difflib.SequenceMatcher(None, str(name), c).ratio() >= best - 0.1]


def _suggest(name: str, valid: list[str], what: str = "key") -> str:
    close = _closest(name, valid)
    if close:
        return f"did you mean {', '.join(repr(c) for c in close)}?"
    return f"valid {what}s: {', '.join(valid) or 'none'}"


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


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
        if value not in choices:
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
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.fail(key, f"expected a number, got {_describe(value)}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            ctx.fail(key, f"expected a string, got {_describe(value)}")
    elif hint is dict:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            ctx.fail(key, f"expected a mapping of names to values, got {_describe(value)}")
        return dict(value)
    elif hint is MetricConfig:
        return _named(ctx, key, value, MetricConfig)
    elif dataclasses.is_dataclass(hint):
        return _build(ctx, key, value, hint)
    if key in _AT_LEAST and value < _AT_LEAST[key]:
        ctx.fail(key, f"must be >= {_AT_LEAST[key]}, got {value!r}")
    if key in _POSITIVE and not value > 0:
        ctx.fail(key, f"must be > 0, got {value!r}")
    return value


def _build(ctx: _Ctx, prefix: str, mapping: Any, cls: type) -> Any:
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        ctx.fail(prefix, f"expected a mapping, got {_describe(mapping)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "path"]
    for key in mapping:
        if key not in names:
            ctx.fail(_join(prefix, str(key)), f"unknown key; {_suggest(str(key), names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name != "path":
                ctx.fail(_join(prefix, f.name), "missing required key")
            continue
        kwargs[f.name] = _check_value(ctx, _join(prefix, f.name), mapping[f.name], hints[f.name])
    return cls(**kwargs)


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
        agents = [_build(ctx, f"agents[{i}]", a, AgentConfig) for i, a in enumerate(value)]
        keys = ("arch", "arch_options", "loss", "loss_options")
        return agents, [{k: f"agents[{i}].{k}" for k in keys} for i in range(len(agents))]
    ctx.fail("agents", f"expected a non-empty list or {{archs: [...], losses: [...]}}, got {_describe(value)}")


def _check_plugin(ctx: _Ctx, key: str, options_key: str, kind: str, name: str, options: dict, registry, skip=()):
    """``name`` is registered as a ``kind`` and, where its factory says, takes ``options``."""
    names = registry.names(kind)
    what = kind.replace("_", " ")
    if name not in names:
        close = _closest(name, names)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        ctx.fail(key, f"unknown {what} {name!r}{hint} (registered: {', '.join(names) or 'none'})")
    try:
        params = inspect.signature(registry.get(kind, name).factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in skip and params[p].kind is not inspect.Parameter.VAR_POSITIONAL]
    for option in options:
        if option not in valid:
            ctx.fail(
                f"{options_key}.{option}", f"unknown option of {what} {name!r}; {_suggest(option, valid, 'option')}"
            )


def _check_plugins(ctx: _Ctx, config: Config, agent_paths: list[dict[str, str]]) -> None:
    from nrstream.plugins import get_registry

    try:
        registry = get_registry()
    except PluginError as exc:
        ctx.fail("", str(exc))
    data = config.data
    _check_plugin(ctx, "data.source", "data.options", "data_source", data.source, data.options, registry)
    if data.fallback != "none":
        fallback = ("data.fallback", "data.fallback_options", "data_source", data.fallback, data.fallback_options)
        _check_plugin(ctx, *fallback, registry)
    skip = ("input_size", "num_classes")
    for agent, path in zip(config.agents, agent_paths, strict=True):
        arch = (path["arch"], path["arch_options"], "architecture", agent.arch, agent.arch_options)
        _check_plugin(ctx, *arch, registry, skip)
        _check_plugin(ctx, path["loss"], path["loss_options"], "loss", agent.loss, agent.loss_options, registry)
    for i, metric in enumerate(config.evaluate.metrics):
        key = f"evaluate.metrics[{i}]"
        _check_plugin(ctx, f"{key}.name", f"{key}.options", "metric", metric.name, metric.options, registry)


def parse_config(raw: Any, path: str = "<config>", *, check_plugins: bool = True) -> Config:
    """Validate a mapping (as loaded from YAML) into a :class:`Config`."""
    ctx = _Ctx(path)
    if not isinstance(raw, dict):
        ctx.fail("", f"a config must be a mapping of sections, got {_describe(raw)}")
    raw = dict(raw)
    if "agents" not in raw:
        ctx.fail("agents", "missing required key")
    agents, agent_paths = _agents(ctx, raw.pop("agents"))
    config = _build(ctx, "", {**raw, "agents": []}, Config)
    config.agents = agents
    config.path = path
    if config.data.stream.gap_max < config.data.stream.gap_min:
        ctx.fail(
            "data.stream.gap_max",
            f"must be >= gap_min ({config.data.stream.gap_min}), got {config.data.stream.gap_max}",
        )
    if not config.evaluate.lengths:
        ctx.fail("evaluate.lengths", "needs at least one length")
    for i, n in enumerate(config.evaluate.lengths):
        if n < 1:
            ctx.fail(f"evaluate.lengths[{i}]", f"must be >= 1, got {n!r}")
    labels = [a.label for a in config.agents]
    for label in labels:
        if labels.count(label) > 1:
            ctx.fail("agents", f"{label} is listed twice; give each arch/loss pair once")
    if check_plugins:
        _check_plugins(ctx, config, agent_paths)
    return config


def load_config(path: str | Path, *, check_plugins: bool = True) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    return parse_config(raw, str(path), check_plugins=check_plugins)


def config_to_dict(config: Config) -> dict:
    """The resolved config as plain data (what ``config.yaml`` in a run folder holds)."""
    out = dataclasses.asdict(config)
    out.pop("path")
    out["agents"] = [dataclasses.asdict(a) for a in config.agents]
    return out


def agent_key(config: Config, agent: AgentConfig, served: dict | None = None) -> str:
    """A hash of everything that decides an agent's trained weights.

    Run name, output folders, device, progress bars, checkpoint cadence and the
    ``evaluate`` section are left out, so changing them reuses trained checkpoints.
    ``served`` (the data source that actually loaded, and its options) replaces the
    configured source so that a fallback never passes for the real data.
    """
    train = dataclasses.asdict(config.train)
    for key in ("progress", "checkpoint_every"):
        train.pop(key)
    if not train["reset_state_every"]:
        train.pop("reset_state_every")  # added later: the default keeps older checkpoints' keys
    data = dataclasses.asdict(config.data)
    if served is not None:
        data["source"], data["options"] = served["source"], served["options"]
        data.pop("fallback"), data.pop("fallback_options")
    relevant = {"seed": config.run.seed, "data": data, "agent": dataclasses.asdict(agent), "train": train}
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
