"""MkDocs hooks: reference pages generated from the code at build time (issue 25).

A page holds a marker comment, and the hook replaces it with text built from the code itself, so the
reference cannot drift from what the program does:

- ``<!-- generated: cli -->``: every ``nrstream`` command's ``--help``, from :func:`nrstream.cli.build_parser`;
- ``<!-- generated: api -->``: one mkdocstrings block per name ``nrstream`` exports, at the module that defines it
  (read from ``nrstream._LAZY``), so the page follows a module that moves and shows every public name;
- ``<!-- generated: config-keys -->``: the key table of :mod:`nrstream.lab.config`'s docstring (the one a test
  keeps complete), as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re

__all__ = ["on_page_markdown", "cli_reference", "config_reference", "api_reference"]

#: the order of the API page: what a newcomer reaches for first
_API_ORDER = (
    "create",
    "load_dataset",
    "make_stream",
    "StreamSettings",
    "Stream",
    "Chunk",
    "Agent",
    "load_config",
    "run_experiment",
    "Results",
    "TrainedAgent",
    "get_registry",
    "hookimpl",
    "register_envs",
)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of each direct sub-command, in the order ``--help`` lists them."""
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def cli_reference() -> str:
    """Markdown: a section per command (and sub-command) with its ``--help``, at 100 columns."""
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: fix it for a stable page
    from nrstream.cli import build_parser

    root = build_parser()
    out = ["## `nrstream`", "", "```text", root.format_help().rstrip(), "```", ""]

    def walk(parser: argparse.ArgumentParser, path: str, depth: int) -> None:
        for name, sub in _subcommands(parser):
            full = f"{path} {name}"
            out.extend([f"{'#' * depth} `{full}`", "", "```text", sub.format_help().rstrip(), "```", ""])
            walk(sub, full, depth + 1)

    walk(root, "nrstream", 2)
    return "\n".join(out)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("``", "`")


def config_reference() -> str:
    """Markdown: the key table of :mod:`nrstream.lab.config`'s docstring, then the prose that follows it."""
    from nrstream.lab import config

    lines = config.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line.strip())]
    first, header_end, last = rules[0], rules[1], rules[2]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[first])]

    def cells(line: str) -> list[str]:
        line = re.sub(r"(?<=[^\s`])(``[^`]+``)(?=\s|$)", r"  \1", line)  # a default glued to a long type
        fields = re.split(r"\s{2,}", line.strip())
        if len(fields) == len(spans) and not line.startswith(" "):
            return fields
        if len(fields) == 2 and not line.startswith(" "):  # a key and one note across the other columns
            return [fields[0], *[""] * (len(spans) - 2), fields[1]]
        bounds = [start for start, _ in spans] + [len(line)]
        for i in range(1, len(spans)):  # a cell that overflows its column pushes the boundary to the next space
            while bounds[i] < len(line) and line[bounds[i] - 1] != " " and line[bounds[i]] != " ":
                bounds[i] += 1
        return [line[bounds[i] : bounds[i + 1]].strip() for i in range(len(spans))]

    header = cells(lines[first + 1])
    rows: list[list[str]] = []
    for line in lines[header_end + 1 : last]:
        if not line.strip():
            continue
        row = cells(line)
        if row[0] or not rows:
            rows.append(row)
        else:  # a continuation line: more words for the cells above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row, strict=True)]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        key, *rest = row
        table.append("| " + " | ".join([f"`{key}`", *(_escape(c) for c in rest)]) + " |")
    prose = "\n".join(lines[last + 1 :]).strip()
    prose = re.sub(r":(?:func|class|mod):`~?([^`]+)`", r"`\1`", prose).replace("``", "`")
    return "\n".join(table) + "\n\n" + prose + "\n"


def api_reference() -> str:
    """Markdown: a section per public name of ``nrstream``, documented where it is defined."""
    import nrstream

    names = [n for n in nrstream.__all__ if n != "__version__"]
    names.sort(key=lambda n: (_API_ORDER.index(n) if n in _API_ORDER else len(_API_ORDER), n))
    out = []
    for name in names:
        module = nrstream._LAZY.get(name, "nrstream")  # the others are imported into nrstream statically
        where = f"Defined in `{module}`." if module != "nrstream" else ""
        out += [f"### `nrstream.{name}`", "", where, "", f"::: {module}.{name}", ""]
        out += ["    options:", "      show_root_heading: false", ""]
    return "\n".join(out)


_GENERATORS = {"cli": cli_reference, "config-keys": config_reference, "api": api_reference}


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' signature)
    def replace(match: re.Match) -> str:
        return _GENERATORS[match.group(1)]()

    return re.sub(r"<!-- generated: ([a-z-]+) -->", replace, markdown)
