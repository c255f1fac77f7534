"""Validation: a mapping (as loaded from YAML) into a :class:`~nrstream.lab.config.schema.Config`.

Generic, driven by the schema: every field is checked against its annotation (types,
choices, finite numbers, integers at most 2**53, strings at most 4096 characters) and its
``bounds`` metadata; unknown keys get "did you mean". Then each section's ``check`` method
(its cross-field rules) runs, and its :class:`~nrstream.lab.config.schema.Invalid` becomes
the same one-line error naming the key. Plugin names are resolved afterwards
(:mod:`nrstream.lab.config.plugins`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from nrstream.lab.config.plugins import resolve_plugins
from nrstream.lab.config.read import Ctx, describe, join_key, parse_override, quote, suggest
from nrstream.lab.config.reference import bound_text
from nrstream.lab.config.schema import _NOT_KEYS, AgentConfig, Config, Invalid, MetricConfig
from nrstream.stream.settings import SettingError, StreamSettings

__all__ = ["parse_config", "MAX_INT", "MAX_PATH"]

#: every integer anywhere in a config (plugin options too) is at most this in magnitude
MAX_INT = 2**53
#: an out_dir / checkpoint_dir / ray_address string
MAX_PATH = 4096
#: the metadata of a value that is no field of its own (a list item's bounds are its list's)
NO_META: Mapping[str, Any] = {}


def _rules(ctx: Ctx, prefix: str, check: Callable[..., None], *args: Any) -> None:
    """Run a section's cross-field ``check``; its :class:`Invalid` is the one-line error naming the key."""
    try:
        check(*args)
    except Invalid as exc:
        ctx.fail(join_key(prefix, exc.key), exc.reason)


def _check_plain(ctx: Ctx, key: str, value: Any, depth: int = 0) -> Any:
    """A free-form value (plugin options): plain YAML data, finite numbers, bounded integers."""
    if depth > 20:
        ctx.fail(key, "nested too deeply (more than 20 levels)")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            ctx.fail(key, f"integer too large (at most 2**53 in magnitude), got {quote(value)}")
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
                ctx.fail(key, f"option names must be strings, got {describe(k)}")
        return {k: _check_plain(ctx, join_key(key, k), v, depth + 1) for k, v in value.items()}
    ctx.fail(key, f"expected plain YAML data, got {describe(value)}")


def _check_range(ctx: Ctx, key: str, value: float, meta: Mapping[str, Any]) -> None:
    """The field's ``bounds`` (inclusive; the low one exclusive with ``above``)."""
    if not meta.get("bounds"):
        return
    low, high = meta["bounds"]
    if meta["above"] and not value > low:
        ctx.fail(key, f"must be > {low:g}, got {value!r}")
    if value < low:
        ctx.fail(key, f"must be >= {low}, got {value!r}")
    if value > high:
        ctx.fail(key, f"must be <= {bound_text(high)}, got {quote(value)}")


def _check_value(ctx: Ctx, key: str, value: Any, hint: Any, meta: Mapping[str, Any] = NO_META) -> Any:
    """``value`` as the annotation ``hint`` and the field metadata ``meta`` (its bounds) allow."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(ctx, key, value, inner, meta)
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, bool) or value not in choices:
            ctx.fail(key, f"expected one of {', '.join(map(str, choices))}, got {describe(value)}")
        return value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            ctx.fail(key, f"expected a list, got {describe(value)}")
        return [_check_value(ctx, f"{key}[{i}]", v, inner, meta) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            ctx.fail(key, f"expected true or false, got {describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(key, f"expected an integer, got {describe(value)}")
        if abs(value) > MAX_INT:
            ctx.fail(key, f"integer too large (at most 2**53 in magnitude), got {quote(value)}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.fail(key, f"expected a number, got {describe(value)}")
        if isinstance(value, int) and abs(value) > MAX_INT:
            ctx.fail(key, f"number too large, got {quote(value)}")
        value = float(value)
        if not math.isfinite(value):
            ctx.fail(key, f"must be a finite number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            ctx.fail(key, f"expected a string, got {describe(value)}")
        if len(value) > MAX_PATH or "\x00" in value:
            ctx.fail(key, f"expected a string of at most {MAX_PATH} characters without NUL, got {describe(value)}")
    elif hint is dict:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            ctx.fail(key, f"expected a mapping of names to values, got {describe(value)}")
        return _check_plain(ctx, key, dict(value))
    elif hint is MetricConfig:
        return _named(ctx, key, value, MetricConfig)
    elif dataclasses.is_dataclass(hint):
        return _build(ctx, key, value, hint)
    else:  # pragma: no cover - a field type this parser does not know is a programming error
        raise TypeError(f"config field {key} has an unsupported type {hint!r}")
    _check_range(ctx, key, value, meta)
    return value


def _build(ctx: Ctx, prefix: str, mapping: Any, cls: type) -> Any:
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        ctx.fail(prefix, f"expected a mapping, got {describe(mapping)}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS]
    names = [f.name for f in fields]
    for key in mapping:
        if key not in names:
            ctx.fail(join_key(prefix, str(key)), f"unknown key; {suggest(str(key), names)}")
    kwargs = {}
    for f in fields:
        if f.name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                ctx.fail(join_key(prefix, f.name), "missing required key")
            continue
        kwargs[f.name] = _check_value(ctx, join_key(prefix, f.name), mapping[f.name], hints[f.name], f.metadata)
    try:
        return cls(**kwargs)
    except SettingError as exc:  # a settings dataclass checks its own ranges and cross-field rules
        ctx.fail(join_key(prefix, exc.field), exc.reason)
    except ValueError as exc:
        ctx.fail(prefix, str(exc))


def _named(ctx: Ctx, key: str, value: Any, cls: type = MetricConfig) -> Any:
    """A ``name`` or ``{name: ..., options: {...}}`` entry."""
    if isinstance(value, str):
        return cls(value)
    if isinstance(value, dict):
        return _build(ctx, key, value, cls)
    ctx.fail(key, f"expected a name or {{name: ..., options: {{...}}}}, got {describe(value)}")


def _agents(ctx: Ctx, value: Any) -> tuple[list[AgentConfig], list[dict[str, str]]]:
    """The agents, and for each the key paths of its names and options (for error messages)."""
    if isinstance(value, dict):
        for k in value:
            if k not in ("archs", "losses"):
                ctx.fail(f"agents.{k}", f"unknown key; {suggest(str(k), ['archs', 'losses'])}")
        for k in ("archs", "losses"):
            if not isinstance(value.get(k), list) or not value[k]:
                ctx.fail(f"agents.{k}", f"expected a non-empty list, got {describe(value.get(k))}")
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
    ctx.fail("agents", f"expected a non-empty list or {{archs: [...], losses: [...]}}, got {describe(value)}")


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
    ctx = Ctx(path, overridden)
    if not isinstance(raw, dict):
        ctx.fail("", f"a config must be a mapping of sections, got {describe(raw)}")
    raw = dict(raw)
    if "agents" not in raw:
        ctx.fail("agents", "missing required key")
    agents, agent_paths = _agents(ctx, raw.pop("agents"))
    config = _build(ctx, "", {**raw, "agents": []}, Config)
    config.agents = agents
    config.path = path
    config.overrides = list(overrides or [])
    _rules(ctx, "run", config.run.check, raw.get("run"))  # the sections' cross-field rules
    _rules(ctx, "evaluate", config.evaluate.check)
    _rules(ctx, "train", config.train.check)
    if config.evaluate.stream:  # the shifted test settings are checked like data.stream itself
        _build(ctx, "evaluate.stream", {**dataclasses.asdict(config.data.stream), **config.evaluate.stream},
               StreamSettings)  # fmt: skip
    _rules(ctx, "", config.check)
    config._agent_paths = agent_paths  # type: ignore[attr-defined]  # for resolve_plugins' messages
    if check_plugins:
        resolve_plugins(config)
    return config
