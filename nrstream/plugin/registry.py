"""The plugin manager: discovers plugins and builds the component registry.

Built-in components are plugins too: they are announced through the same ``nrstream``
entry-point group as any third-party distribution, so they load the same way.

Environment variables:
    NRSTREAM_DISABLE_PLUGINS  comma-separated entry-point names to skip.
    NRSTREAM_LOAD_PLUGINS     comma-separated names: load only these (empty: none).
    NRSTREAM_STRICT_PLUGINS   ``1``: a plugin that fails to import is an error, not a warning.
    NRSTREAM_TRACE_PLUGINS    ``1``: print every hook call (pluggy tracing) to stderr.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import os
import sys
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

import pluggy

from nrstream.errors import NrstreamError, OptionError, PluginError
from nrstream.plugin import hookspecs
from nrstream.plugin.contracts import DataSource

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Registration",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "describe_plugins",
    "reload_plugins",
    "close_matches",
    "did_you_mean",
    "quote",
]

ENTRY_POINT_GROUP = "nrstream"

log = logging.getLogger("nrstream.plugin.registry")

#: kind -> the hook that registers it
KINDS = {
    "architecture": "nrstream_register_architectures",
    "loss": "nrstream_register_losses",
    "metric": "nrstream_register_metrics",
    "data_source": "nrstream_register_data_sources",
}


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the others keep working."""


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    #: a data source's declaration (:class:`nrstream.plugin.contracts.DataSource`); ``None`` for other kinds
    declared: DataSource | None = None


def close_matches(name: str, valid: list[str] | tuple[str, ...]) -> list[str]:
    """The valid names a typo most likely meant: difflib ratio >= 0.6 and within 0.1 of the best.

    The one "did you mean" rule of nrstream (config keys, plugin names, plugin options).
    """
    close = difflib.get_close_matches(str(name), list(valid), n=3, cutoff=0.6)
    if not close:
        return []
    best = difflib.SequenceMatcher(None, str(name), close[0]).ratio()
    return [c for c in close if difflib.SequenceMatcher(None, str(name), c).ratio() >= best - 0.1]


def did_you_mean(name: str, valid: list[str] | tuple[str, ...], what: str = "key") -> str:
    """``did you mean 'x'?`` when something is close, else ``valid <what>s: a, b, c``."""
    close = close_matches(name, valid)
    if close:
        return f"did you mean {', '.join(repr(c) for c in close)}?"
    return f"valid {what}s: {', '.join(valid) or 'none'}"


def quote(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...``): error messages never dump a huge value.

    Uses :mod:`reprlib` first, so even a deeply shared (YAML-alias) structure costs little.
    """
    import reprlib

    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, (list, dict, tuple, set)):
        short = reprlib.Repr()
        short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, limit, limit, 80
        short.maxlist = short.maxdict = short.maxtuple = short.maxset = 8
        text = short.repr(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _strict(strict: bool | None) -> bool:
    if strict is not None:
        return strict
    return os.environ.get("NRSTREAM_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _fail(message: str, strict: bool) -> None:
    if strict:
        raise PluginError(message)
    warnings.warn(message, PluginLoadWarning, stacklevel=3)


def _kind_words(kind: str) -> str:
    return kind.replace("_", " ")


def _type_error(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (None: it fits or cannot be judged)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        reasons = [_type_error(arg, value) for arg in typing.get_args(hint)]
        return None if any(r is None for r in reasons) else reasons[0]
    if origin is Literal:
        choices = typing.get_args(hint)
        return None if value in choices else f"expected one of {', '.join(map(str, choices))}, got {quote(value)}"
    if hint is type(None):
        return None if value is None else f"expected null, got {quote(value)}"
    if hint is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {quote(value)}"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected an integer, got {quote(value)} ({type(value).__name__})"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {quote(value)} ({type(value).__name__})"
        return None if math.isfinite(value) else f"must be a finite number, got {quote(value)}"
    if hint is str:
        return None if isinstance(value, str) else f"expected a string, got {quote(value)} ({type(value).__name__})"
    if hint is list or origin is list or hint is tuple or origin is tuple:
        return None if isinstance(value, list) else f"expected a list, got {quote(value)} ({type(value).__name__})"
    if hint is dict or origin is dict:
        return None if isinstance(value, dict) else f"expected a mapping, got {quote(value)} ({type(value).__name__})"
    return None  # an annotation this check does not judge: the factory will


def _parameters(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any]] | None:
    """A factory's parameters and resolved annotations (None: no usable signature)."""
    try:
        params = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return None
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: check names only
        hints = {}
    return params, hints


class Registry:
    """Components by kind and name, each remembering the plugin that registered it."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, factory: Callable[..., Any], plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}")
        if not callable(factory):
            raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with a factory that is not callable")
        taken = self._items[kind].get(name)
        if taken is not None:
            raise PluginError(
                f"{kind} {name!r} is registered by both plugin {taken.plugin!r} and plugin {plugin!r}; "
                f"disable one with NRSTREAM_DISABLE_PLUGINS={plugin}"
            )
        if kind == "data_source":
            declared = DataSource.of(factory)
            if not callable(declared.load):
                raise PluginError(f"plugin {plugin!r} registered data source {name!r} whose load is not callable")
            self._items[kind][name] = Registration(kind, name, declared.load, plugin, declared)
            return
        self._items[kind][name] = Registration(kind, name, factory, plugin)

    def _kind(self, kind: str) -> dict[str, Registration]:
        """One kind's components; an unknown kind (``"architectures"``) is a one-line error with did-you-mean."""
        try:
            return self._items[kind]
        except (KeyError, TypeError):
            hint = did_you_mean(kind, list(KINDS), "kind")
            raise PluginError(f"unknown component kind {quote(kind)}; {hint}") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self._kind(kind))

    def data_source(self, name: str) -> DataSource:
        """What data source ``name`` declares it can do (load; download and split_audio if it has them)."""
        declared = self.get("data_source", name).declared
        assert declared is not None
        return declared

    def get(self, kind: str, name: str) -> Registration:
        """Look a component up; a miss names the closest registered names."""
        try:
            return self._kind(kind)[name]
        except KeyError:
            raise PluginError(_unknown_message(kind, name, self.names(kind))) from None

    def option_names(self, kind: str, name: str, skip: tuple[str, ...] = ()) -> list[str] | None:
        """The keyword options a component's factory takes (None: any, it has ``**kwargs``)."""
        found = _parameters(self.get(kind, name).factory)
        if found is None:
            return None
        params, _ = found
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return None
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p for p, spec in params.items() if p not in skip and spec.kind in plain]

    def check_options(self, kind: str, name: str, options: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
        """Options the factory's signature does not take, or of the wrong annotated type, raise.

        The one place that inspects factory signatures. ``skip`` names parameters the
        caller fills itself (an architecture's ``input_size`` and ``num_classes``), which a
        config may not set. Raises :class:`~nrstream.errors.OptionError` with ``option``
        set; the message does not name the file (the caller adds where it came from).
        """
        what = f"{_kind_words(kind)} {name!r}"
        found = _parameters(self.get(kind, name).factory)
        if found is None:
            return
        params, hints = found
        valid = self.option_names(kind, name, skip)
        for option, value in options.items():
            if valid is not None and option not in valid:
                raise OptionError(f"unknown option of {what}; {did_you_mean(option, valid, 'option')}", option=option)
            if option in hints and option in params:
                reason = _type_error(hints[option], value)
                if reason is not None:
                    raise OptionError(f"option of {what}: {reason}", option=option)

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Call a component's factory; options it rejects become one-line errors naming it."""
        factory = self.get(kind, name).factory
        try:
            return factory(**kwargs)
        except NrstreamError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise OptionError(f"{kind} {name!r}: {_first_line(exc)}") from exc
        except RuntimeError as exc:  # e.g. torch refusing a negative size an option asked for
            raise OptionError(f"{kind} {name!r}: cannot be built with these options: {_first_line(exc)}") from exc

    def option_defaults(self, kind: str, name: str) -> dict[str, Any] | None:
        """The options a config may set and their defaults (``"required"`` without one); None: any.

        An architecture's ``input_size`` and ``num_classes`` are filled by nrstream, not options.
        Defaults that are not JSON scalars are shown by their ``repr``.
        """
        found = _parameters(self.get(kind, name).factory)
        skip = ("input_size", "num_classes") if kind == "architecture" else ()
        names = self.option_names(kind, name, skip)
        if found is None or names is None:
            return None
        params, _ = found
        out: dict[str, Any] = {}
        for option in names:
            default = params[option].default
            if default is inspect.Parameter.empty:
                out[option] = "required"
            else:
                out[option] = default if isinstance(default, str | int | float | bool | type(None)) else repr(default)
        return out

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        return {
            kind: sorted(n for n, r in items.items() if r.plugin == plugin)
            for kind, items in self._items.items()
            if any(r.plugin == plugin for r in items.values())
        }


def _first_line(exc: BaseException, limit: int = 300) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown_message(kind: str, name: str, known: list[str]) -> str:
    close = close_matches(str(name), known)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {_kind_words(kind)} {quote(name)}{hint} (registered: {', '.join(known) or 'none'})"


_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None
_distributions: dict[str, tuple[str, str]] = {}


def _load_entry_points(pm: pluggy.PluginManager, strict: bool) -> None:
    disabled = set(_env_list("NRSTREAM_DISABLE_PLUGINS") or [])
    only = _env_list("NRSTREAM_LOAD_PLUGINS")
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in disabled or (only is not None and ep.name not in only):
            continue
        if pm.get_plugin(ep.name) is not None:
            continue  # the same distribution seen twice on sys.path
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the CLI down
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            _fail(f"nrstream plugin {ep.name!r} ({dist} {version}) failed to import: {reason}", strict)
            continue
        try:
            pm.register(module, name=ep.name)
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            pm.unregister(name=ep.name)
            _fail(f"nrstream plugin {ep.name!r} ({dist} {version}) is invalid: {exc}", strict)
            continue
        _distributions[ep.name] = (dist, version)


def get_plugin_manager(strict: bool | None = None) -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        if os.environ.get("NRSTREAM_TRACE_PLUGINS", "") not in ("", "0"):
            pm.trace.root.setwriter(lambda msg: sys.stderr.write(str(msg)))
            pm.enable_tracing()
        _load_entry_points(pm, _strict(strict))
        _pm = pm
    return _pm


def get_registry(strict: bool | None = None) -> Registry:
    """Every registered component; built once, by calling each plugin's hooks."""
    global _registry
    if _registry is not None:
        return _registry
    pm = get_plugin_manager(strict)
    registry = Registry()
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name

            def register(name: str, factory: Callable[..., Any], _kind: str = kind, _plugin: str = plugin) -> None:
                registry.add(_kind, name, factory, _plugin)

            try:
                impl.function(register)
            except PluginError:
                raise
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too: a hook must not end the CLI silently
                reason = f"{type(exc).__name__}: {_first_line(exc)}"
                _fail(f"nrstream plugin {plugin!r} failed in {hook_name}: {reason}", _strict(strict))
    for plugin in sorted({r.plugin for items in registry._items.values() for r in items.values()}):
        parts = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in registry.by_plugin(plugin).items())
        log.debug("plugin %s registered %s", plugin, parts)
    _registry = registry
    return registry


def reload_plugins() -> None:
    """Forget loaded plugins so the next lookup rediscovers entry points (after a pip install)."""
    global _pm, _registry
    _pm = None
    _registry = None
    _distributions.clear()
    metadata_cache_clear = getattr(metadata, "_cache_clear", None)
    if metadata_cache_clear:
        metadata_cache_clear()


def describe_plugins() -> list[dict[str, Any]]:
    """One entry per loaded plugin: its name, distribution, version, what it registers and the options of each
    component (``{kind: {name: {option: default}}}``, see :meth:`Registry.option_defaults`)."""
    pm = get_plugin_manager()
    registry = get_registry()
    out = []
    for name, _module in sorted(pm.list_name_plugin()):
        dist, version = _distributions.get(name, ("?", "?"))
        out.append(
            {
                "name": name,
                "distribution": dist,
                "version": version,
                "hooks": sorted(h.name for h in pm.get_hookcallers(pm.get_plugin(name)) or []),
                "registers": registry.by_plugin(name),
                "options": {
                    kind: {n: registry.option_defaults(kind, n) for n in names}
                    for kind, names in registry.by_plugin(name).items()
                },
            }
        )
    return out
