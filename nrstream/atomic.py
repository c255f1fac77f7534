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

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nrstream.errors import NrstreamError

__all__ = ["atomic_file", "atomic_folder", "WriteError", "TEMP_PATTERN"]

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


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; it replaces the folder ``path`` if the block succeeds.

    A folder already at ``path`` is kept until the new one is in place, and restored if
    the swap fails. Deciding whether an existing folder may be replaced is the caller's
    job; a *file* (or a link) at ``path`` is never replaced.

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
