"""On-disk cache of computed features.

An entry is one ``torch.save`` file named after a key: the hash of the source files
(path, size and modification time of each) and of the parameters that produced it (the
feature frontend's, the loader's). Changing a file or a parameter changes the key, so a
stale entry is never found. Entries are written to a temporary file and moved into place
with ``os.replace``; an entry that cannot be read back, or whose stored key differs from
its name, is treated as a miss, deleted and rebuilt.

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

    ``params`` must be JSON-serialisable (values that are not are hashed by ``repr``).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True, default=repr).encode())
    for path in sorted(os.fspath(f) for f in files):
        st = os.stat(path)
        digest.update(f"\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _entry(namespace: str, key: str) -> Path:
    return cache_dir() / namespace / f"{key}.pt"


def load(namespace: str, key: str) -> Any | None:
    """The object stored under ``namespace/key``, or ``None`` on a miss or a corrupt entry."""
    import torch

    path = _entry(namespace, key)
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != _FORMAT or blob.get("key") != key:
            raise ValueError("entry does not match its key")
        return blob["payload"]
    except Exception as exc:  # any unreadable entry is rebuilt, never trusted
        warnings.warn(
            f"cache entry {path} is unreadable ({type(exc).__name__}: {exc}); rebuilding", CacheWarning, stacklevel=2
        )
        path.unlink(missing_ok=True)
        return None


def save(namespace: str, key: str, payload: Any) -> Path:
    """Store ``payload`` (tensors, lists, dicts, str, numbers) atomically; returns the path."""
    import torch

    path = _entry(namespace, key)
    with atomic_file(path) as tmp:
        torch.save({"format": _FORMAT, "key": key, "payload": payload}, tmp)
    return path


def cached(namespace: str, key: str, build: Callable[[], Any]) -> tuple[Any, bool]:
    """``(payload, hit)``: the stored payload, or ``build()``'s result after storing it."""
    payload = load(namespace, key)
    if payload is not None:
        return payload, True
    payload = build()
    save(namespace, key, payload)
    return payload, False
