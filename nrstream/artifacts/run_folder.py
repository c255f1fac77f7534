"""Where nrstream writes, checked before any work: never replace what nrstream did not write.

One rule for every output flag (``--out``, ``--det``, ``--truth``, ``--checkpoints``, ``--dest``,
export sidecars, TensorBoard folders): nrstream replaces only what it wrote, as recorded in a
manifest (:data:`MANIFEST`: in a run folder, the names of its files; in any other folder, the
names, sizes and modification times of the single files nrstream wrote there), never guessed from
a name or an extension; anything else is refused with one line, ``--force`` included. Two flags
naming the same path are refused. :func:`check_output_files` checks a command's files and
:func:`output_file` writes one (atomically, then records it).

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

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from nrstream.atomic import atomic_file, clean_leftovers, exclusive_lock
from nrstream.errors import NrstreamError

__all__ = [
    "OutputError",
    "OUTPUT_FILES",
    "MANIFEST",
    "is_run_folder",
    "check_run_folder",
    "check_apart",
    "check_writable_folder",
    "check_output_files",
    "output_file",
    "written_by_nrstream",
    "write_manifest",
    "run_folder_lock",
    "lock_path",
    "write_problem",
]

#: the files nrstream writes into a run folder, besides its figures (``*.png``, named after metrics)
OUTPUT_FILES = frozenset({"results.json", "results.csv", "aggregate.csv", "config.yaml"})

#: the manifest of what nrstream wrote in a folder (hidden; JSON)
MANIFEST = ".nrstream-outputs.json"


class OutputError(NrstreamError):
    """A run folder or checkpoint folder that nrstream must not (or cannot) write; names the path."""


def is_run_folder(path: str | os.PathLike) -> bool:
    """``path/results.json`` is a JSON object with an integer ``format`` and a list of ``runs``."""
    try:
        results = json.loads((Path(path) / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and type(results.get("format")) is int and isinstance(results.get("runs"), list)


def _manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def write_manifest(folder: str | os.PathLike, names: list[str]) -> None:
    """Record ``names`` as the files nrstream wrote into the run folder being built at ``folder``."""
    record = {"format": 1, "run_folder": True, "files": {name: {} for name in names}}
    (Path(folder) / MANIFEST).write_text(json.dumps(record, indent=1) + "\n")


def _foreign(path: Path) -> list[str]:
    """Entries of ``path`` that nrstream did not write into this run folder.

    The folder's manifest lists them; a run folder written before manifests existed counts its
    :data:`OUTPUT_FILES` and, only beside a valid ``results.json``, its ``*.png`` figures.
    """
    manifest = _manifest(path)
    if manifest is not None:
        ours = set(manifest["files"]) | {MANIFEST}
    else:
        figures = is_run_folder(path)
        ours = {e.name for e in path.iterdir() if e.name in OUTPUT_FILES or (figures and e.suffix == ".png")}
    return sorted(
        entry.name for entry in path.iterdir() if entry.is_symlink() or not entry.is_file() or entry.name not in ours
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


# ---------------------------------------------------------------------------- single files


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def written_by_nrstream(path: str | os.PathLike) -> bool:
    """``path`` is a regular file that nrstream wrote and nobody changed since (its folder's manifest says so)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    manifest = _manifest(path.parent)
    entry = manifest["files"].get(path.name) if manifest is not None else None
    return isinstance(entry, dict) and entry == _stamp(path)


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_files(outputs: Mapping[str, str | os.PathLike], inputs: Mapping[str, str | os.PathLike] = ()) -> None:
    """Before any work: each output file may be written, and no two flags name one path.

    Args:
        outputs: flag -> file the command will write (``{"--out": "rec.wav", "--truth": "rec.csv"}``).
        inputs: flag -> file the command reads (``{"AUDIO": "rec.wav"}``): an output there is refused.

    Raises:
        OutputError: one line naming the flag and path: two flags on one path; a folder, a link or a
        file nrstream did not write (or that changed since) in the way; an unwritable folder.
    """
    named = [(flag, Path(p)) for flag, p in outputs.items()]
    read = [(flag, Path(p)) for flag, p in dict(inputs).items() if str(p) != "-"]
    for i, (flag, path) in enumerate(named):
        for other, there in named[:i] + read:
            if _same(path, there):
                raise OutputError(f"{other} and {flag} name the same file {path}; give each its own path")
    for flag, path in named:
        if path.is_symlink():
            raise OutputError(f"{flag} {path} is a symbolic link; nrstream never writes through one: pass another path")
        if path.is_dir():
            raise OutputError(f"{flag} {path} is a folder; pass {flag} a file path")
        if path.exists() and not written_by_nrstream(path):
            raise OutputError(
                f"{flag} {path} exists and nrstream did not write it (or it changed since); it is never replaced: "
                f"pass {flag} another path, or move it away yourself"
            )
        parent = path.parent
        if not parent.is_dir():
            problem = "is a file" if parent.exists() else "does not exist"
            raise OutputError(f"{flag} {path}: the folder {parent} {problem}; pass {flag} a path in an existing folder")
        reason = write_problem(parent)
        if reason:
            raise OutputError(f"{flag} {path}: cannot write in {parent} ({reason}); pass {flag} a writable folder")


def _record(path: Path) -> None:
    """Add ``path`` (just written) to its folder's manifest, under a lock on the folder."""
    folder = path.parent
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = _manifest(folder) or {"format": 1, "files": {}}
        if manifest.get("run_folder"):
            return  # inside a run folder, the run folder's own manifest is the record
        files = {n: e for n, e in manifest["files"].items() if (folder / n).is_file()}
        files[path.name] = _stamp(path)
        with atomic_file(folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True) + "\n")
    finally:
        os.close(fd)


@contextmanager
def output_file(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`nrstream.atomic.atomic_file`, then ``path`` recorded as nrstream's in its folder's manifest."""
    path = Path(path)
    with atomic_file(path) as tmp:
        yield tmp
    _record(path)


# ---------------------------------------------------------------------------- run-folder locks


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of a run or checkpoint folder: ``.<name>.lock`` beside it (the folder itself is swapped)."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def run_folder_lock(folder: str | os.PathLike, what: str = "run folder", *, wait: bool = False, notify=None):
    """Hold the run (or checkpoint) folder's lock, then clean what an interrupted write left beside it.

    A second process exits with one line naming the holder's pid (or, with ``wait``, waits for it).
    """
    folder = Path(folder)
    with exclusive_lock(lock_path(folder), f"{what} {folder}", wait=wait, notify=notify):
        clean_leftovers(folder)
        yield
