"""Where a run writes, checked before any work: never replace what nrstream did not write.

A run writes two places: the run folder (``--out``, default ``<run.out_dir>/<run.name>``),
replaced as a whole at the end, and the checkpoint folder (``run.checkpoint_dir``), where
each job adds its own sub-folder. Both are checked when the run starts, so a bad path
fails in a second with one line instead of after all the training:

* the run folder may be absent, empty, or a run folder nrstream wrote — only nrstream's
  output files in it (:data:`OUTPUT_FILES` and ``*.png`` figures, no sub-folders) and a ``results.json``
  with a format marker. ``force=True`` (``--force``) also replaces a folder of nrstream
  output files without a valid ``results.json``; a folder holding anything else (the
  runs folder itself, ``checkpoints/``, your own files) is never replaced;
* the run folder may not be, or hold, the checkpoint folder (``--out .``, ``--out runs`` with
  the default ``runs/checkpoints``, ``--out res --checkpoints res/ckpt``): replacing it at the
  end would take the checkpoints with it;
* a file (or a link) where a folder should be is refused;
* each folder must be writable (a temporary folder is created and removed there).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from nrstream.errors import NrstreamError

__all__ = [
    "OutputError",
    "OUTPUT_FILES",
    "is_run_folder",
    "check_run_folder",
    "check_apart",
    "check_writable_folder",
    "write_problem",
]

#: the files nrstream writes into a run folder, besides its figures (``*.png``, named after metrics)
OUTPUT_FILES = frozenset({"results.json", "results.csv", "aggregate.csv", "config.yaml"})


class OutputError(NrstreamError):
    """A run folder or checkpoint folder that nrstream must not (or cannot) write; names the path."""


def is_run_folder(path: str | os.PathLike) -> bool:
    """``path/results.json`` is a JSON object with an integer ``format`` and a list of ``runs``."""
    try:
        results = json.loads((Path(path) / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and type(results.get("format")) is int and isinstance(results.get("runs"), list)


def _foreign(path: Path) -> list[str]:
    """Entries of ``path`` that nrstream does not write into a run folder."""
    return sorted(
        entry.name
        for entry in path.iterdir()
        if entry.is_symlink() or not entry.is_file() or not (entry.name in OUTPUT_FILES or entry.suffix == ".png")
    )


def _not_a_folder(path: Path) -> str | None:
    if path.is_symlink():
        return "is a symbolic link"
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    return None


def write_problem(folder: str | os.PathLike) -> str | None:
    """Why this process cannot create an entry in the existing ``folder``, or ``None`` when it can.

    A real write (a temporary folder, created and removed): ``os.access`` says yes to root
    on a read-only file system.
    """
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nrstream-write-check.", suffix=".tmp", dir=folder))
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def check_writable_folder(path: str | os.PathLike, what: str, option: str) -> None:
    """``path`` is (or can be made) a folder this process can write into; else one line naming it."""
    path = Path(path)
    problem = _not_a_folder(path)
    if problem:
        raise OutputError(f"{what} {path} {problem}; pass {option} a folder")
    existing = path
    while not existing.exists():  # the folder is created later: its nearest existing ancestor must take it
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is a file, not a folder; pass {option} another path")
    reason = write_problem(existing)
    if reason:
        raise OutputError(f"{what} {path}: cannot write in {existing} ({reason}); pass {option} a writable folder")


def check_run_folder(path: str | os.PathLike, *, force: bool = False) -> None:
    """Refuse a run folder path whose current content nrstream must not replace (one line, names it)."""
    path = Path(path)
    problem = _not_a_folder(path)
    if problem:
        raise OutputError(f"run folder {path} {problem}; pass --out a new folder or a run folder nrstream wrote")
    if path.is_dir() and any(path.iterdir()):
        foreign = _foreign(path)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"run folder {path} holds what nrstream did not write ({shown}); it is never replaced: "
                f"pass --out a new folder"
            )
        if not force and not is_run_folder(path):
            raise OutputError(
                f"run folder {path} exists and is not a run folder nrstream wrote (no results.json with a "
                f"format marker); pass --out a new folder, or --force to replace it"
            )
    # the folder is built beside itself and renamed into place: its parent must be writable
    check_writable_folder(path.parent if path.parent != path else path, "run folder parent", "--out")


def check_apart(run_folder: str | os.PathLike, checkpoint_folder: str | os.PathLike) -> None:
    """Refuse a run folder that is, or holds, the checkpoint folder (paths resolved, links followed).

    The run folder is replaced as a whole when the run ends, so checkpoints inside it would be
    lost (and nrstream refuses to replace a folder holding what it did not put there): this is
    checked before any training, not found out after it.
    """
    run, checkpoints = Path(run_folder).resolve(), Path(checkpoint_folder).resolve()
    if checkpoints == run or checkpoints.is_relative_to(run):
        where = "is" if checkpoints == run else "holds"
        raise OutputError(
            f"run folder {run_folder} {where} the checkpoint folder {checkpoint_folder}; the run folder is replaced "
            "as a whole at the end: pass --out a folder of its own (e.g. runs/NAME) or --checkpoints a folder "
            "outside it"
        )
