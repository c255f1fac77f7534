"""The key reference table, generated from the fields of :mod:`nrstream.lab.config.schema`.

Each row is ``key, type, default, meaning``: the type from the annotation and the field's
``bounds`` (or its ``kind``), the default from the field (or its ``shown``), the meaning from
its ``doc``. ``data.stream.*`` rows come from :meth:`StreamSettings.reference_rows`. The
table is the reference in :mod:`nrstream.lab.config`'s docstring, and ``tests/test_docs.py``
checks that it names every key.
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
import typing
from typing import Any, Literal

from nrstream.lab.config.schema import _NOT_KEYS, AgentConfig, Config
from nrstream.stream.settings import StreamSettings

__all__ = ["reference_rows", "reference_table", "bound_text"]

#: column widths of the table (key, type, default, meaning)
_WIDTHS = (30, 26, 12, 42)
#: where a long meaning wraps (the rightmost column of a simple table may run past its rule)
_WRAP = 46

#: the product form of ``agents`` has no dataclass (it expands into :class:`AgentConfig` entries)
_PRODUCT_ROWS = [
    ("agents.archs", "list", "(required)", "product form: name or {name, options}"),
    ("agents.losses", "list", "(required)", "product form: name or {name, options}"),
]


def bound_text(n: float) -> str:
    """``100000`` -> ``100000``; ``10**9`` -> ``10**9``; ``0.5`` -> ``0.5`` (as in the table and errors)."""
    return (
        f"{n:g}"
        if isinstance(n, float)
        else (f"10**{len(str(n)) - 1}" if n >= 10**6 and n == 10 ** (len(str(n)) - 1) else str(n))
    )


def _type_text(hint: Any, meta: typing.Mapping[str, Any]) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{_type_text(inner, meta)} or null"
    if origin is Literal:
        return " | ".join(map(str, typing.get_args(hint)))
    if origin is list:
        return f"list of {_type_text(typing.get_args(hint)[0], meta)}"
    if hint in (int, float) and meta.get("bounds"):
        low, high = meta["bounds"]
        return f"{hint.__name__} {bound_text(low)}..{bound_text(high)}" + (f" (> {low:g})" if meta["above"] else "")
    return {bool: "bool", str: "str", dict: "mapping"}.get(hint, getattr(hint, "__name__", str(hint)))


def _default_text(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "(required)"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(value, str):
        return f"``{value}``"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def reference_rows(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(key, type, default, meaning)`` for every key of ``cls`` (a section), nested sections expanded."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in _NOT_KEYS:
            continue
        name, meta, hint = prefix + f.name, f.metadata, hints[f.name]
        if hint is StreamSettings:
            rows.append((f"{name}.*", "", "", meta["doc"]))
            rows += [(f"{name}.{n}", *rest) for n, *rest in StreamSettings.reference_rows()]
        elif dataclasses.is_dataclass(hint):
            rows += reference_rows(hint, f"{name}.")
        else:
            rows.append(
                (name, meta.get("kind") or _type_text(hint, meta), meta.get("shown") or _default_text(f), meta["doc"])
            )
        if hint == list[AgentConfig]:
            rows += reference_rows(AgentConfig, f"{name}[i].") + _PRODUCT_ROWS
    return rows


def reference_table() -> str:
    """The reference rows as a reStructuredText simple table (long meanings wrap in their column)."""
    rule = "  ".join("=" * w for w in _WIDTHS)
    lines = [rule, "  ".join(f"{h:<{w}}" for h, w in zip(("key", "type", "default", "meaning"), _WIDTHS, strict=True))]
    lines[-1] = lines[-1].rstrip()
    lines.append(rule)
    indent = sum(w + 2 for w in _WIDTHS[:3])
    for key_, type_, default, meaning in reference_rows():
        if not type_ and not default:  # a heading row (``data.stream.*``): its text spans the columns
            lines.append(f"{key_:<{_WIDTHS[0] + 2}}{meaning}")
            continue
        head = f"{key_:<{_WIDTHS[0] + 2}}{type_:<{_WIDTHS[1] + 2}}{default:<{_WIDTHS[2] + 2}}"
        wrapped = textwrap.wrap(meaning, _WRAP, break_long_words=False, break_on_hyphens=False) or [""]
        lines.append((head + wrapped[0]).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    lines.append(rule)
    return "\n".join(lines)
