"""One override syntax for every command: ``--set KEY=VALUE``, the key spelled as in an experiment config.

``evaluate``/``train`` take any config key (``--set train.epochs=1``, ``--set data.options.num_classes=3``,
``--set data.stream.gap_max=10``). The data commands take the keys of the config's ``data`` section
(``data.options.KEY``: a source option, ``data.stream.KEY``: a stream setting); a bare ``KEY`` means the
command's own section (``data info``: a source option; ``data make-recording``: a stream setting).
``-o KEY=VALUE`` stays as the short alias of ``--set data.options.KEY=VALUE``. VALUE is YAML.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from nrstream.errors import ConfigError

__all__ = ["add_set_arguments", "data_sets"]

_SECTIONS = {"options": "a source option", "stream": "a stream setting"}


class _OptionAlias(argparse.Action):
    """``-o KEY=VALUE``: appended to ``--set``'s list as ``data.options.KEY=VALUE`` (order kept)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: D102
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(f"data.options.{values}")
        setattr(namespace, self.dest, items)


def add_set_arguments(parser: argparse.ArgumentParser, bare: str, example: str) -> None:
    """``--set KEY=VALUE`` (repeatable) and its alias ``-o``/``--option`` into ``args.sets``."""
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override, VALUE in YAML, KEY as in an experiment config: data.options.KEY (a source option) or "
        f"data.stream.KEY (a stream setting); a bare KEY is {_SECTIONS[bare]}: {example} (repeatable)",
    )
    parser.add_argument(
        "-o",
        "--option",
        dest="sets",
        action=_OptionAlias,
        metavar="KEY=VALUE",
        help="source option: the same as --set data.options.KEY=VALUE",
    )


def data_sets(pairs: list[str], command: str, bare: str, allowed: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` for the ``allowed`` sections of ``data`` from ``--set`` pairs.

    One-line :class:`ConfigError` for a pair without ``=``, a VALUE that is not YAML or a key
    outside the allowed sections.
    """
    found: dict[str, dict[str, Any]] = {section: {} for section in allowed}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or key.endswith("."):
            raise ConfigError(f"{command} --set: expected KEY=VALUE, got {pair.removeprefix('data.options.')!r}")
        section, name = bare, key
        if key.startswith("data."):
            section, _, name = key.removeprefix("data.").partition(".")
            if section not in allowed or not name:
                spelled = ", ".join(f"data.{s}.KEY" for s in allowed)
                raise ConfigError(f"{command} --set {key}: takes {spelled} or a bare KEY ({_SECTIONS[bare]})")
        try:
            found[section][name] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{command} --set {key}: VALUE is not YAML ({str(exc).splitlines()[0]})") from None
    return found
