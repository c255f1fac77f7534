"""Reading config text safely, and where a value came from for one-line errors.

Limits that keep a hostile or mistyped file from hurting: a config file is at most
:data:`MAX_CONFIG_BYTES`, UTF-8, with at most :data:`MAX_YAML_NODES` YAML nodes after alias
expansion (no "billion laughs") and no key given twice; a ``--set KEY=VALUE`` is a key path
and a YAML value under the same limits. :class:`Ctx` turns a key path and a reason into the
one-line :class:`~nrstream.errors.ConfigError` every config problem is, naming ``--set``
when an override gave the value.

Torch-free and plugin-free at import.
"""

from __future__ import annotations

import os
import re
import stat
import typing
from pathlib import Path
from typing import Any

import yaml

from nrstream.errors import ConfigError

__all__ = ["read_config_file", "parse_override", "key_parts", "load_yaml", "Ctx", "MAX_CONFIG_BYTES", "MAX_YAML_NODES"]

#: a config file larger than this is refused before it is parsed
MAX_CONFIG_BYTES = 1 << 20
#: YAML nodes after alias expansion (a "billion laughs" file expands to 10**9)
MAX_YAML_NODES = 100_000


def quote(value: Any) -> str:
    """``repr`` of at most 80 characters (as the plugin registry quotes)."""
    from nrstream.plugin.registry import quote as registry_quote

    return registry_quote(value)


def describe(value: Any) -> str:
    return f"{quote(value)} ({type(value).__name__})"


def join_key(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class Ctx:
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


def suggest(name: str, valid: list[str], what: str = "key") -> str:
    """``did you mean 'x'?`` (or the valid names)."""
    from nrstream.plugin.registry import did_you_mean

    return did_you_mean(name, valid, what)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


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
                        raise ConfigError(f"{source}: line {line}: key {quote(key.value)} is given twice")
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


def load_yaml(text: str, source: str) -> Any:
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
        reason = "an integer with more than 4300 digits" if "digits" in str(exc) else first_line(exc)
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


def key_parts(key: str, shown: str) -> list[str | int]:
    """``agents.archs[0].options`` -> ``["agents", "archs", 0, "options"]``."""
    parts: list[str | int] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ConfigError(f"--set {shown}: {quote(key)} is not a key path (like train.epochs or agents[0].arch)")
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    return parts


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=1"`` -> ``("train.epochs", 1)``; the value is YAML (``[a, b]``, ``{k: v}``, ``null``)."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    shown = quote(text)[1:-1] if len(text) > 80 else text
    if not sep or not key:
        raise ConfigError(f"--set {shown}: expected KEY=VALUE, e.g. --set train.epochs=1")
    key_parts(key, key)
    if len(value) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--set {key}: value longer than {MAX_CONFIG_BYTES // 1024} KiB")
    return key, load_yaml(value, f"--set {key}")
