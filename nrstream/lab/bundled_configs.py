"""The experiment configs that ship with nrstream, found by name (``quickstart``, ``speech``, ...).

The repository's ``configs/*.yaml`` are packaged into the wheel as ``nrstream/configs/``, so
with nrstream installed from its wheel ``nrstream evaluate quickstart`` works from any
folder. In a source or editable checkout they are read from the repository's ``configs/``.
A local file always wins over a bundled name. Torch-free.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from nrstream.errors import ConfigError

__all__ = ["find_config", "list_configs", "config_summary", "bundled_config_dirs"]

SUFFIXES = (".yaml", ".yml")
_PACKAGE = Path(__file__).resolve().parents[1]  # the nrstream package (this module is nrstream/lab/...)


def bundled_config_dirs() -> list[Path]:
    """Where bundled configs live: the package's ``configs/`` (a wheel), else the checkout's."""
    folders = [_PACKAGE / "configs"]
    checkout = _PACKAGE.parent
    # only a real nrstream checkout: beside an installed package there may be anybody's `configs/`
    if (checkout / "pyproject.toml").is_file() and (checkout / "nrstream" / "__init__.py").is_file():
        folders.append(checkout / "configs")
    return [folder for folder in folders if folder.is_dir()]


def list_configs() -> dict[str, Path]:
    """Bundled config name -> file, sorted by name (the first folder that has a name wins).

    A config in a subfolder is named by its path without the suffix: ``paper/fmnist``.
    """
    found: dict[str, Path] = {}
    for folder in bundled_config_dirs():
        for path in sorted(folder.rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), path)
    return dict(sorted(found.items()))


def config_summary(path: Path) -> str:
    """The first sentence of the config's leading comment (what it is for), or ``""``.

    The comment's first paragraph is read as one text (its lines are wrapped), so a sentence
    that runs over several lines is never cut; it ends at ``.``, ``!`` or ``?`` before a space
    (``v0.02`` and ``configs/quickstart.yaml`` do not end it), else with the paragraph.
    """
    words: list[str] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text:
            if words:
                break
            continue
        words.append(text)
    paragraph = " ".join(words)
    end = re.search(r"(?<!e\.g)(?<!i\.e)[.!?](?=\s|$)", paragraph)
    return paragraph[: end.end()] if end else paragraph


def _is_bare_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and (Path(text).suffix in SUFFIXES or not Path(text).suffix)


def find_config(name_or_path: str | Path) -> Path:
    """The config file for a local path or a bundled name.

    An existing file wins. Otherwise a bundled name (``quickstart``, ``quickstart.yaml``,
    ``paper/fmnist``) gives its file; an unknown bare name is a :class:`ConfigError`
    that suggests the closest name and lists them. Any other path comes back unchanged
    (reading it reports a missing file).
    """
    path = Path(name_or_path)
    text = str(name_or_path)
    if path.is_file():
        return path
    configs = list_configs()
    name = text[: -len(path.suffix)] if path.suffix in SUFFIXES else text
    if name in configs:  # quickstart, quickstart.yaml, paper/fmnist
        return configs[name]
    if not _is_bare_name(text):
        return path
    close = difflib.get_close_matches(name, list(configs), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(configs) or "none found"
    raise ConfigError(
        f"{text}: no such config file, and no bundled config of that name{hint}; bundled: {known} "
        "(nrstream configs lists them)"
    )
