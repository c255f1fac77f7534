"""Where data lives on disk, and how to fetch it safely.

Source-independent helpers shared by the data-source plugins:

- :func:`data_root` / :func:`candidate_roots`: the search path (``$NRSTREAM_DATA``, then
  the nrstream cache folder) that every source extends with its own defaults;
- :func:`download`: fetch one URL (``http(s)://`` or ``file://``), verify its checksum,
  and move it into place atomically;
- :func:`safe_extract_tar`: unpack a tarball, refusing members that escape the target.

A download only ever adds to the user's folders: a file already at the destination that
is not the expected one (wrong checksum), or a folder that an earlier download did not
write (no :data:`DOWNLOAD_MARKER` in it), is refused with a one-line error, never replaced.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tarfile
import urllib.request
import zlib
from pathlib import Path

from nrstream.atomic import atomic_file, atomic_folder
from nrstream.data.cache import cache_dir
from nrstream.errors import DataFileError, DownloadError

__all__ = [
    "data_root",
    "download",
    "file_checksum",
    "safe_extract_tar",
    "missing_data_message",
    "DOWNLOAD_MARKER",
    "written_by_download",
    "check_replaceable",
    "already_downloaded",
]

#: the file that marks a folder as extracted by ``nrstream data download`` (so it may be replaced)
DOWNLOAD_MARKER = ".nrstream-download.json"


def data_root() -> Path | None:
    """``$NRSTREAM_DATA`` as a path, or ``None`` when it is unset or empty."""
    value = os.environ.get("NRSTREAM_DATA", "").strip()
    return Path(value).expanduser() if value else None


def download_root() -> Path:
    """Where ``nrstream data download`` puts data: ``$NRSTREAM_DATA``, else the cache folder."""
    return data_root() or cache_dir()


def missing_data_message(name: str, searched: list[Path], how: list[str]) -> str:
    """One line: what is missing, every place searched, and the ways to get it."""
    places = ", ".join(str(p) for p in searched) or "nowhere"
    return f"{name} data not found; searched: {places}; get it with: {' or '.join(how)}"


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, value = checksum.partition(":")
    if not value or algorithm not in ("sha256", "md5"):
        raise ValueError(f"checksum must be 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    return algorithm, value.lower()


def download(url: str, dest: Path, checksum: str | None, *, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest``, verified against ``checksum`` (``"sha256:..."``/``"md5:..."``).

    The bytes go to a temporary file beside ``dest`` and are moved into place with
    ``os.replace`` only once the checksum matches, so ``dest`` is never half-written.
    An existing ``dest`` with the right checksum is kept as is; anything else already at
    ``dest`` is not nrstream's and is refused (:class:`DownloadError`), never overwritten.
    ``checksum=None``: the archive has no published checksum and the caller verifies
    what it holds (e.g. every file of the FSDD release); ``dest`` must then be absent.
    """
    if checksum is None:
        algorithm, expected = "sha256", None
        dest = Path(dest)
        if dest.exists() or dest.is_symlink():
            raise DownloadError(f"{dest} already exists; it was left untouched: move it away or use another --dest")
    else:
        algorithm, expected = _parse_checksum(checksum)
        dest = Path(dest)
        if already_downloaded(dest, checksum):
            return dest
    with atomic_file(dest) as tmp:
        digest = hashlib.new(algorithm)
        try:
            with open(tmp, "wb") as out, urllib.request.urlopen(url) as response:
                total = int(response.headers.get("Content-Length") or 0)
                bar = _progress(total, dest.name) if progress else None
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # writing failed, not the download: atomic_file names the full disk
            raise DownloadError(f"could not download {url}: {' '.join(str(exc).split())}") from exc
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got {actual}; nothing was kept"
            )
    return dest


def already_downloaded(dest: Path, checksum: str) -> bool:
    """Whether ``dest`` holds the expected file; ``False`` if it is absent.

    Raises:
        DownloadError: something else is at ``dest`` (not nrstream's to overwrite).
    """
    algorithm, expected = _parse_checksum(checksum)
    dest = Path(dest)
    if dest.is_file() and not dest.is_symlink() and file_checksum(dest, algorithm) == expected:
        return True
    if dest.exists() or dest.is_symlink():
        raise DownloadError(
            f"{dest} already exists and is not the expected file ({algorithm} differs); it was left untouched: "
            "move it away or download to another folder (--dest)"
        )
    return False


def _progress(total: int, name: str):
    from nrstream.log import progress_bar

    # a bar on a terminal only; in a log or a pipe it would be lines of noise
    return progress_bar(total=total or None, unit="B", unit_scale=True, desc=name)


def written_by_download(folder: Path) -> dict | None:
    """The provenance an earlier :func:`safe_extract_tar` left in ``folder``, or ``None`` if it wrote none."""
    try:
        info = json.loads((Path(folder) / DOWNLOAD_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def check_replaceable(folder: Path) -> None:
    """Raise :class:`DownloadError` unless ``folder`` is absent or an earlier download wrote it."""
    folder = Path(folder)
    if (folder.exists() or folder.is_symlink()) and (folder.is_symlink() or written_by_download(folder) is None):
        raise DownloadError(
            f"{folder} already exists and was not written by 'nrstream data download'; it was left untouched: "
            "use it as the data root, move it away, or download to another folder (--dest)"
        )


def safe_extract_tar(archive: Path, dest: Path, provenance: dict | None = None) -> Path:
    """Unpack ``archive`` into a fresh folder ``dest``, atomically.

    Members with absolute paths, ``..`` components, links, or device files are refused
    (a tarball must not write outside ``dest``). The archive is unpacked into a temporary
    sibling folder that replaces ``dest`` only when complete; ``dest`` must not exist or
    must hold the :data:`DOWNLOAD_MARKER` of an earlier extraction, which is written last
    (with ``provenance``, e.g. the URL and checksum).

    Raises:
        DownloadError: ``dest`` exists and was not written by a download, or a member is unsafe.
    """
    dest = Path(dest)
    check_replaceable(dest)
    with atomic_folder(dest) as tmp:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts:
                        raise DownloadError(f"refusing to extract {archive}: unsafe member path {member.name!r}")
                    if not (member.isfile() or member.isdir()):
                        raise DownloadError(f"refusing to extract {archive}: {member.name!r} is not a file or folder")
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DataFileError(f"cannot extract {archive}: {' '.join(str(exc).split())}") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the destination's fault: atomic_folder names it as a full disk
            raise DataFileError(f"cannot extract {archive}: {' '.join(str(exc).split())}") from exc
        marker = {"archive": Path(archive).name, **(provenance or {})}
        (tmp / DOWNLOAD_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return dest
