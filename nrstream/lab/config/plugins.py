"""Plugin resolution: the names and options of a parsed config against the plugin registry.

Loads the plugins (the registry) and checks every plugin option early, before anything
trains: unknown names and options get "did you mean", options of the wrong annotated type
are the registry's signature check, losses and metrics are built once with their options,
and architectures are built on torch's ``meta`` device (no memory; placeholder
``input_size=1``, ``num_classes=2``) so that a bad or absurd size (``hidden_size: 1000000``)
is an error naming its key, not an allocator crash. torch and the registry are imported
only when :func:`resolve_plugins` runs.
"""

from __future__ import annotations

import json

from nrstream.errors import NrstreamError, OptionError, PluginError
from nrstream.lab.config.read import Ctx, first_line, parse_override
from nrstream.lab.config.schema import Config

__all__ = ["resolve_plugins", "ARCH_FILLED", "MAX_PARAMETERS"]

#: parameters an architecture may have (checked on the meta device at config load)
MAX_PARAMETERS = 2_000_000_000

#: parameters of an architecture factory the engine fills (a config may not set them)
ARCH_FILLED = ("input_size", "num_classes")


def _agent_paths(config: Config) -> list[dict[str, str]]:
    paths = getattr(config, "_agent_paths", None)
    if paths is not None and len(paths) == len(config.agents):
        return paths
    keys = ("arch", "arch_options", "loss", "loss_options")
    return [{k: f"agents[{i}].{k}" for k in keys} for i in range(len(config.agents))]


def _resolve(ctx: Ctx, registry, kind: str, key: str, options_key: str, name: str, options: dict, skip=()) -> None:
    """``name`` is registered as a ``kind``, and its factory takes ``options`` (names and types)."""
    try:
        registry.get(kind, name)
    except PluginError as exc:
        ctx.fail(key, str(exc))
    if kind == "data_source":  # on_error is the core's too (non-finite samples), whether the source takes it or not
        from nrstream.data.datasets import source_options

        if options.get("on_error", "raise") not in ("raise", "skip"):
            ctx.fail(f"{options_key}.on_error", f"must be 'raise' or 'skip', got {options['on_error']!r}")
        options = source_options(registry.get(kind, name).factory, options)
    try:
        registry.check_options(kind, name, options, skip)
    except OptionError as exc:
        ctx.fail(f"{options_key}.{exc.option}" if exc.option else options_key, str(exc))


def _try_build(ctx: Ctx, registry, kind: str, options_key: str, name: str, options: dict) -> None:
    """Build a loss or metric once: a value its factory rejects is found before training."""
    try:
        registry.get(kind, name).factory(**options)
    except (NrstreamError, ValueError) as exc:
        ctx.fail(options_key, f"{kind.replace('_', ' ')} {name!r} rejects its options: {first_line(exc)}")
    except Exception:  # inconclusive (e.g. needs something only the run provides): the run will say
        return


def _probe_architecture(ctx: Ctx, registry, options_key: str, name: str, options: dict) -> None:
    """Build the architecture on torch's meta device (no memory): bad values and absurd sizes fail here."""
    import torch

    factory = registry.get("architecture", name).factory
    try:
        with torch.device("meta"):
            model = factory(input_size=1, num_classes=2, **options)
    except (NrstreamError, ValueError) as exc:
        ctx.fail(options_key, f"architecture {name!r} rejects its options: {first_line(exc)}")
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

    ctx = Ctx(config.path, [parse_override(o)[0] for o in config.overrides])
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
