"""Atomic writes: a file or a folder appears whole under its name, or not at all.

Checkpoints, cache entries, downloads, extracted archives, synthesised corpora and run
folders are all built under a hidden temporary name beside their destination and renamed
into place only once complete, so an error or a kill never leaves a half-written one.

The temporary name is ``.<name>.<random>.tmp``, created exclusively (``tempfile.mkstemp``
/ ``mkdtemp``: ``O_CREAT | O_EXCL``, so an existing file or a planted symbolic link under
that name is never opened, let alone followed) in the destination's folder. A process
killed mid-write leaves only such a file; ``.*.tmp`` is the pattern to sweep.

Writing errors that concern the destination, not the data (no space left, a read-only
or missing folder, a folder where a file should go), become one-line
:class:`WriteError`\\ s naming the path. A full disk is recognised even where the writer
(``torch.save``) reports it as a bare ``RuntimeError``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nrstream.errors import NrstreamError

__all__ = [
    "atomic_file",
    "atomic_folder",
    "clean_leftovers",
    "exclusive_lock",
    "LockedError",
    "WriteError",
    "TEMP_PATTERN",
]

#: glob pattern of the temporary files and folders left by a process killed mid-write
TEMP_PATTERN = ".*.tmp"

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: free space under which a failed write is blamed on a full disk (writers like torch.save hide the errno)
_NEARLY_FULL = 1 << 20


class WriteError(NrstreamError, OSError):
    """A file or folder could not be written (disk full, read-only, a folder in the way); names the path.

    Also an ``OSError``, so callers that handle I/O errors keep handling it.
    """


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_MODE_FILE = 0o666 & ~_umask()
_MODE_FOLDER = 0o777 & ~_umask()


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _disk_full(exc: BaseException, path: Path, folder: Path) -> WriteError | None:
    """A one-line error if ``exc`` (raised while writing ``path``) means the disk is full, else ``None``."""
    code = getattr(exc, "errno", None)
    if code not in _DISK_FULL:
        free = _free_bytes(folder) if isinstance(exc, (OSError, RuntimeError)) and code is None else None
        if free is None or free >= _NEARLY_FULL:
            return None
    free = _free_bytes(folder)
    error = WriteError(
        f"no space left on the disk while writing {path} ({free if free is not None else '?'} bytes free there); "
        "free some space or write elsewhere (nothing half-written was kept)"
    )
    error.errno = errno.ENOSPC
    return error


_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "a folder is in the way",
    errno.ENOTDIR: "a file is in the way of its folder",
    errno.ENOTEMPTY: "a folder is in the way",
    errno.EEXIST: "something is in the way",
}


def _write_error(exc: OSError, path: Path, folder: Path) -> WriteError:
    """The one-line error for a failure to create or rename onto ``path`` (the destination's fault)."""
    full = _disk_full(exc, path, folder)
    if full is not None:
        return full
    error = WriteError(f"cannot write {path}: {_REASONS.get(exc.errno, exc.strerror or str(exc))}")
    error.errno = exc.errno
    return error


def _make_parent(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc, path, path.parent if path.parent.exists() else Path(".")) from exc
    return path.parent


@contextmanager
def _full_disk_as_write_error(path: Path, folder: Path) -> Iterator[None]:
    """Turn a full disk met while the caller writes (torch may say only "unexpected pos") into a WriteError."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        error = _disk_full(exc, path, folder)
        if error is None or isinstance(exc, WriteError):
            raise
        raise error from exc


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh, empty temporary path beside ``path`` to write; it becomes ``path`` if the block succeeds.

    Raises:
        WriteError: the disk is full, the folder is read-only, or ``path`` is a folder;
            nothing is left behind.
    """
    path = Path(path)
    folder = _make_parent(path)
    if path.is_dir() and not path.is_symlink():
        raise WriteError(f"cannot write {path}: it is a folder; move it away or choose another name")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _write_error(exc, path, folder) from exc
    tmp = Path(name)
    try:
        os.fchmod(fd, _MODE_FILE)  # mkstemp's 0600 would make checkpoints and results private
    finally:
        os.close(fd)
    try:
        with _full_disk_as_write_error(path, folder):
            yield tmp
        try:
            os.replace(tmp, path)  # replaces a link at `path`, never writes through it
        except OSError as exc:
            raise _write_error(exc, path, folder) from exc
    finally:
        tmp.unlink(missing_ok=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: Callable | None | bool = False  # False: not looked up yet; None: not available


def _exchange(a: Path, b: Path) -> bool:
    """Swap the entries ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    ``False`` where the kernel, C library or file system cannot (the caller falls back to two renames).
    """
    global _renameat2
    if _renameat2 is False:
        try:
            _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        except (OSError, AttributeError):
            _renameat2 = None
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _leftover_names(path: Path) -> re.Pattern[str]:
    # exactly the names atomic_file / atomic_folder give: "." + name + "." + 8 tempfile characters (+ ".old") + ".tmp"
    return re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}(\.old)?\.tmp")


def clean_leftovers(path: str | os.PathLike) -> list[str]:
    """Undo what an interrupted :func:`atomic_folder` (or :func:`atomic_file`) of ``path`` left beside it.

    If ``path`` is missing while a previous version waits under ``.<name>.<random>.old.tmp`` (a
    kill between the two renames of the fallback swap), that version is put back first; then
    every other temporary of ``path`` is removed. Call it only while no other process writes
    ``path`` (under :func:`exclusive_lock`). Returns the names removed or restored.
    """
    path = Path(path)
    folder = path.parent
    pattern = _leftover_names(path)
    try:
        found = sorted(e for e in folder.iterdir() if pattern.fullmatch(e.name))
    except OSError:
        return []
    done = []
    if not (path.exists() or path.is_symlink()):
        olds = [e for e in found if e.name.endswith(".old.tmp") and e.is_dir() and not e.is_symlink()]
        if olds:
            newest = max(olds, key=lambda e: e.stat().st_mtime_ns)
            os.replace(newest, path)
            found.remove(newest)
            done.append(f"{newest.name} -> {path.name}")
    for entry in found:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        done.append(entry.name)
    return done


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; it replaces the folder ``path`` if the block succeeds.

    A folder already at ``path`` is kept until the new one is in place, and restored if
    the swap fails. Deciding whether an existing folder may be replaced is the caller's
    job; a *file* (or a link) at ``path`` is never replaced.

    Crash safety: the new folder and the old one are swapped in one atomic step
    (``renameat2(RENAME_EXCHANGE)``), so a kill at any moment leaves the old or the new folder
    under ``path``, and at most ``.<name>.<random>.tmp`` leftovers beside it. Where the swap is
    not available, the old folder is first renamed to ``.<name>.<random>.old.tmp``: a kill
    between the two renames leaves ``path`` missing, and :func:`clean_leftovers` puts the old
    folder back. Either way :func:`clean_leftovers` removes the leftovers.

    Raises:
        WriteError: ``path`` is a file or a link, the disk is full, or the folder is read-only.
    """
    path = Path(path)
    folder = _make_parent(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise WriteError(f"cannot write the folder {path}: a file is in the way; move it away or choose another name")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder))
        os.chmod(tmp, _MODE_FOLDER)
    except OSError as exc:
        raise _write_error(exc, path, folder) from exc
    old: Path | None = None
    try:
        with _full_disk_as_write_error(path, folder):
            yield tmp
        try:
            if path.is_dir() and _exchange(tmp, path):
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
                return
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old.tmp", dir=folder))
                os.replace(path, old)  # a folder onto an empty folder: allowed, atomic
            os.replace(tmp, path)
        except OSError as exc:
            raise _write_error(exc, path, folder) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- locks


class LockedError(NrstreamError):
    """Another process holds the lock of a folder this run must write; names the holder's pid."""


_held: dict[str, int] = {}  # lock paths this process holds -> how many times (re-entrant)


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"


@contextmanager
def exclusive_lock(
    path: str | os.PathLike, what: str, *, wait: bool = False, notify: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the advisory lock file ``path`` (``fcntl.flock``) for the block; re-entrant in one process.

    The lock file holds the holder's pid. The kernel releases the lock when the holder exits,
    however it exits (``kill -9`` included), so a crashed run never blocks the next one; the
    file is removed on a clean release (and a stale one is simply reused).

    Args:
        what: the folder it protects, for the message (``run folder runs/toy``).
        wait: block until the holder is done (``notify`` gets one line saying who is awaited);
            else raise :class:`LockedError` at once, naming the holder's pid.
    """
    path = Path(path)
    key = os.path.abspath(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    created = []  # folders made for the lock file: removed again on release if still empty
    missing = path.parent
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, _MODE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                os.close(fd)
                raise LockedError(
                    f"{what} is in use by another nrstream process (pid {holder}); wait for it to finish or write "
                    "elsewhere"
                ) from None
            if notify is not None:
                notify(f"nrstream: waiting for pid {holder}, which is writing {what}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file after we opened it: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = 1
        yield
    finally:
        _held.pop(key, None)
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)
        for folder in created:  # innermost first
            try:
                os.rmdir(folder)
            except OSError:
                break
