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
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from nrstream import hookspecs
from nrstream.errors import NrstreamError, PluginError, PluginOptionError

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Registration",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "describe_plugins",
    "reload_plugins",
]

ENTRY_POINT_GROUP = "nrstream"

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
        self._items[kind][name] = Registration(kind, name, factory, plugin)

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def get(self, kind: str, name: str) -> Registration:
        """Look a component up; a miss names the closest registered names."""
        try:
            return self._items[kind][name]
        except KeyError:
            raise PluginError(_unknown_message(kind, name, self.names(kind))) from None

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Call a component's factory; options it rejects become one-line errors naming it."""
        factory = self.get(kind, name).factory
        try:
            return factory(**kwargs)
        except NrstreamError:
            raise
        except (TypeError, ValueError) as exc:
            raise PluginOptionError(f"{kind} {name!r}: {exc}") from exc

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        return {
            kind: sorted(n for n, r in items.items() if r.plugin == plugin)
            for kind, items in self._items.items()
            if any(r.plugin == plugin for r in items.values())
        }


def _unknown_message(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (registered: {', '.join(known) or 'none'})"


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
        except Exception as exc:  # a broken plugin must not take the others down
            reason = f"{type(exc).__name__}: {exc}"
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
            except Exception as exc:
                _fail(f"nrstream plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}", _strict(strict))
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
    """One entry per loaded plugin: its name, distribution, version and what it registers."""
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
            }
        )
    return out
