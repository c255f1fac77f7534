"""Loading: a config file, ``--set KEY=VALUE`` overrides on top, then validation.

Command-line overrides (:func:`apply_overrides`) replace one key each; the value is YAML
(``1``, ``[ce, ce_kl]``, ``{hidden_size: 8}``, ``null``), list items are addressed as
``agents[0].arch``, and the result is validated exactly like the file, with errors naming
``--set``. The last spelling of the seed wins (``--set run.seeds=[1,2]`` replaces the
file's ``run.seed``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nrstream.errors import ConfigError
from nrstream.lab.config.read import describe, key_parts, load_yaml, parse_override, quote, read_config_file
from nrstream.lab.config.schema import Config
from nrstream.lab.config.validate import parse_config

__all__ = ["load_config", "apply_overrides"]


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
        parts = key_parts(key, key)
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
                    raise ConfigError(f"--set {key}: cannot set a key inside {quote(node)} ({type(node).__name__})")
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
                raise ConfigError(f"--set {key}: cannot set a key inside {quote(node)} ({type(node).__name__})")
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
    raw = load_yaml(read_config_file(path), str(path))
    if overrides:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections, got {describe(raw)}")
        try:
            raw = apply_overrides(raw, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        raw = _last_seed_spelling_wins(raw, [parse_override(o)[0] for o in overrides])
    return parse_config(raw, str(path), check_plugins=check_plugins, overrides=list(overrides))
