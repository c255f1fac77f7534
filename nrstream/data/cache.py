"""On-disk cache of computed features.

An entry is one ``torch.save`` file named after a key: the hash of the source files
(path, size and modification time of each) and of the parameters that produced it (the
feature frontend's, the loader's). Changing a file or a parameter changes the key, so a
stale entry is never found. Entries are written to a temporary file and moved into place
with ``os.replace``; an entry that cannot be read back, whose stored key differs from its
name, or whose payload the caller's ``check`` rejects, is treated as a miss: one
:class:`CacheWarning` line says it is not a valid cache entry, and it is rebuilt. Entries
are read with ``torch.load(weights_only=True)``: a file holding code is refused, never run.

The cache never stops a run: if it cannot be written (read-only, full disk, a file where
its folder should be), a :class:`CacheWarning` says so and the result is used uncached.

The folder is ``$NRSTREAM_CACHE``, else ``~/.cache/nrstream``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from nrstream.atomic import atomic_file

__all__ = ["cache_dir", "fingerprint", "load", "save", "cached", "CacheWarning"]

_FORMAT = 1


class CacheWarning(UserWarning):
    """A cache entry was corrupt or unreadable and is being rebuilt."""


def cache_dir() -> Path:
    """``$NRSTREAM_CACHE``, else ``~/.cache/nrstream`` (not created here)."""
    value = os.environ.get("NRSTREAM_CACHE", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "nrstream"


def fingerprint(files: Iterable[str | os.PathLike], params: Mapping[str, Any]) -> str:
    """A hex key for ``files`` (path, size, mtime of each, in sorted order) and ``params``.

    ``params`` must be JSON-serialisable (values that are not are hashed by ``repr``). A file
    that cannot be stat'ed (a dangling link) is hashed as missing; reading it is what fails.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True, default=repr).encode())
    for path in sorted(os.fspath(f) for f in files):
        try:
            st = os.stat(path)
        except OSError:  # a dangling link or a vanished file: its reader reports it, by name
            digest.update(f"\0{path}\0missing".encode())
            continue
        digest.update(f"\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _entry(namespace: str, key: str) -> Path:
    return cache_dir() / namespace / f"{key}.pt"


def _invalid(path: Path, why: str) -> None:
    warnings.warn(f"{path} is not a valid cache entry ({why}); rebuilding it", CacheWarning, stacklevel=3)
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache: the rebuilt result is used uncached


def load(namespace: str, key: str, check: Callable[[Any], bool] | None = None) -> Any | None:
    """The object stored under ``namespace/key``, or ``None`` on a miss or an invalid entry.

    ``check(payload)`` may reject a payload of the wrong structure (return ``False`` or
    raise); a rejected, unreadable or foreign entry gives one :class:`CacheWarning`.
    """
    import torch

    path = _entry(namespace, key)
    try:
        if not path.is_file():
            return None
    except OSError:
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        warnings.warn(f"cannot read cache entry {path} ({exc.strerror or exc}); rebuilding", CacheWarning, stacklevel=2)
        return None
    except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt, never trusted
        # not torch's text: for a file holding code it advises weights_only=False, which would run that code
        _invalid(path, "it is truncated, corrupt, or holds more than tensors and plain data")
        return None
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT or blob.get("key") != key or "payload" not in blob:
        _invalid(path, "its header does not match its name")
        return None
    try:
        ok = check is None or bool(check(blob["payload"]))
    except Exception:  # a check that fails on a malformed payload rejects it
        ok = False
    if not ok:
        _invalid(path, "its payload is incomplete")
        return None
    return blob["payload"]


def save(namespace: str, key: str, payload: Any) -> Path:
    """Store ``payload`` (tensors, lists, dicts, str, numbers) atomically; returns the path.

    Raises:
        nrstream.atomic.WriteError: the cache cannot be written (also an ``OSError``).
    """
    import torch

    path = _entry(namespace, key)
    with atomic_file(path) as tmp:
        torch.save({"format": _FORMAT, "key": key, "payload": payload}, tmp)
    return path


def cached(
    namespace: str, key: str, build: Callable[[], Any], check: Callable[[Any], bool] | None = None
) -> tuple[Any, bool]:
    """``(payload, hit)``: the stored payload, or ``build()``'s result after storing it.

    A cache that cannot be written gives a :class:`CacheWarning` and the built payload,
    uncached; it never fails the caller.
    """
    payload = load(namespace, key, check)
    if payload is not None:
        return payload, True
    payload = build()
    try:
        save(namespace, key, payload)
    except OSError as exc:
        warnings.warn(f"{exc}; running without the feature cache", CacheWarning, stacklevel=2)
    return payload, False
