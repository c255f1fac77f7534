"""Sequential Fashion-MNIST: each 28x28 image read row by row or pixel by pixel.

Data: the four official IDX files (gzipped or not). With the ``root`` option they are
read from ``root`` (or its torchvision layout ``root/FashionMNIST/raw``) and nowhere else:
a ``root`` missing any of them is an error that names what is missing. Without it they
are looked for in this order:

1. ``$NRSTREAM_DATA/fashion-mnist``;
2. ``/usr/share/datasets/fashion-mnist`` (Debian: ``apt-get install dataset-fashion-mnist``);
3. ``$NRSTREAM_DATA/FashionMNIST/raw`` (where torchvision downloads it);
4. ``~/.cache/nrstream/fashion-mnist`` (``$NRSTREAM_CACHE``; where ``nrstream data
   download fashion_mnist`` puts it when ``$NRSTREAM_DATA`` is unset).

Splits: ``test`` is the official 10,000 test images; ``validation`` is
``validation_size`` images drawn from the official 60,000 training images by a seeded
permutation (deterministic), ``train`` the rest. Pixels are scaled to [0, 1] and then
standardised with the mean and standard deviation of the ``train`` split. Images with a
NaN or infinite pixel (possible in a float IDX file) are an error naming the file, or are
skipped with a counted warning (``on_error="skip"``).

Fashion-MNIST is by Zalando Research, MIT license.
"""

from __future__ import annotations

import functools
import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from nrstream import DataNotFoundError, hookimpl
from nrstream.data.cache import cache_dir
from nrstream.data.datafiles import already_downloaded, data_root, download, download_root, missing_data_message
from nrstream.errors import DataFileError, DownloadError
from nrstream.plugin.contracts import DataSource
from nrstream.stream.bank import Dataset, SampleBank

__all__ = ["load_fashion_mnist", "download_fashion_mnist", "read_idx", "CLASS_NAMES", "SkippedImagesWarning"]


class SkippedImagesWarning(UserWarning):
    """Images with NaN or infinite pixels were skipped (``on_error="skip"``)."""


CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: where the official files are served; ``download_fashion_mnist`` appends the file names
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

#: MD5 of the official gzipped files (as published by Zalando Research)
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8d0aad5d3f9f",
    "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
}

#: system-wide install locations (Debian package ``dataset-fashion-mnist``)
SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]

HOW_TO_GET = ["apt-get install dataset-fashion-mnist", "nrstream data download fashion_mnist"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (``.gz`` or raw) into an array of its declared shape and dtype.

    Raises:
        DataFileError: the file is truncated, corrupt or not IDX; names the file.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a corrupt deflate stream inside the .gz
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataFileError(f"cannot read IDX file {path}: {reason}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataFileError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"IDX file {path} is truncated (header)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataFileError(
            f"IDX file {path} is truncated or corrupt: shape {shape} needs {expected} bytes, has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def candidate_dirs(root: str | Path | None = None) -> list[Path]:
    """Every folder searched, in order: only ``root`` (and its torchvision layout) when it is given."""
    if root is not None:
        root = Path(root).expanduser()
        return [root, root / "FashionMNIST" / "raw"]
    dirs: list[Path] = []
    env = data_root()
    if env is not None:
        dirs.append(env / "fashion-mnist")
    dirs += SYSTEM_DIRS
    if env is not None:
        dirs.append(env / "FashionMNIST" / "raw")
    dirs.append(cache_dir() / "fashion-mnist")
    return list(dict.fromkeys(dirs))


def _locate(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_files(root: str | Path | None = None) -> dict[str, Path]:
    """The four IDX files from the first folder that has all of them.

    Raises:
        DataNotFoundError: none has; for an explicit ``root``, the message names the files
            missing there (never falls back to another location).
    """
    searched = candidate_dirs(root)
    for folder in searched:
        found = {key: _locate(folder, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    if root is None:
        raise DataNotFoundError(missing_data_message("Fashion-MNIST", searched, HOW_TO_GET))
    folder = searched[0]
    if not folder.is_dir():
        missing = "does not exist"
    else:
        names = [stem + "[.gz]" for stem in FILES.values() if _locate(folder, stem) is None]
        missing = f"misses {', '.join(names)} (nor are all four in {searched[1]})"
    raise DataNotFoundError(
        f"Fashion-MNIST root {folder} (data option 'root') {missing}; put the four IDX files there (get them "
        f"with: {' or '.join(HOW_TO_GET)}), or remove 'root' to search the default places"
    )


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    return read_idx(path)


def _read(path: Path) -> np.ndarray:
    st = os.stat(path)
    return _read_cached(str(path), st.st_size, st.st_mtime_ns)


def _pair(images_path: Path, labels_path: Path, on_error: str = "raise") -> tuple[np.ndarray, np.ndarray, int]:
    """``(images [N, 28, 28], labels [N], skipped)``: a checked pair of IDX files."""
    images, labels = _read(images_path), _read(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFileError(f"{images_path} must hold [N, 28, 28] images, has shape {images.shape}")
    if labels.shape != (images.shape[0],):
        raise DataFileError(f"{labels_path} has {labels.shape} labels for {images.shape[0]} images in {images_path}")
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise DataFileError(f"{labels_path} holds label {int(labels.max())}, outside 0..9")
    if images.dtype.kind != "f":
        return images, labels, 0
    finite = np.isfinite(images).reshape(len(images), -1).all(axis=1)  # a float IDX file can hold NaN/Inf
    bad = np.flatnonzero(~finite)
    if len(bad) and on_error == "raise":
        raise DataFileError(
            f"{images_path} holds {len(bad)} images with NaN or infinite pixels (first: image {int(bad[0])}); "
            "repair the file (or set on_error: skip)"
        )
    return images[finite], labels[finite], len(bad)


def load_fashion_mnist(
    *,
    mode: str = "rows",
    validation_size: int = 5000,
    seed: int = 0,
    root: str | None = None,
    normalize: bool = True,
    on_error: str = "raise",
) -> Dataset:
    """Build the Fashion-MNIST data set.

    Args:
        mode: ``"rows"`` (28 steps of 28 features) or ``"pixels"`` (784 steps of 1 feature).
        validation_size: images moved from the official training set into ``validation``.
        seed: seed of the permutation that picks the validation images.
        root: a folder holding the four IDX files, searched first.
        normalize: standardise with the train split's pixel mean and standard deviation.
        on_error: ``"raise"`` on an image with a NaN or infinite pixel, or ``"skip"`` it
            with a counted warning.

    Returns:
        A :class:`~nrstream.stream.bank.Dataset` whose banks hold ``[N, 28, 28]`` or ``[N, 784, 1]``
        float32 features and labels 0..9 (``CLASS_NAMES``).
    """
    if mode not in ("rows", "pixels"):
        raise ValueError(f"mode must be 'rows' or 'pixels', got {mode!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    files = find_files(root)
    train_images, train_labels, skipped_train = _pair(files["train_images"], files["train_labels"], on_error)
    test_images, test_labels, skipped_test = _pair(files["test_images"], files["test_labels"], on_error)
    if skipped_train + skipped_test:
        warnings.warn(
            f"skipped {skipped_train + skipped_test} images with NaN or infinite pixels "
            f"({skipped_train} in {files['train_images']}, {skipped_test} in {files['test_images']})",
            SkippedImagesWarning,
            stacklevel=2,
        )
    n = train_images.shape[0]
    if not isinstance(validation_size, int) or not 1 <= validation_size < n:
        raise ValueError(f"validation_size must be an int in [1, {n - 1}], got {validation_size!r}")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(order[:validation_size]), np.sort(order[validation_size:])

    train_x = torch.from_numpy(train_images[train_idx].astype(np.float32)).div_(255.0)
    mean, std = (float(train_x.mean()), float(train_x.std())) if normalize else (0.0, 1.0)
    shape = (28, 28) if mode == "rows" else (784, 1)

    def bank(images: np.ndarray | torch.Tensor, labels: np.ndarray) -> SampleBank:
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(images.astype(np.float32)).div_(255.0)
        x = x.sub_(mean).div_(std).reshape(len(x), *shape)
        lengths = torch.full((len(x),), shape[0], dtype=torch.long)
        return SampleBank(x, lengths, torch.from_numpy(labels.astype(np.int64)), list(CLASS_NAMES))

    splits = {
        "train": bank(train_x, train_labels[train_idx]),
        "validation": bank(train_images[val_idx], train_labels[val_idx]),
        "test": bank(test_images, test_labels),
    }
    folder = files["train_images"].parent
    info = {
        "source": "fashion_mnist",
        "root": str(folder),
        "files": {key: str(path) for key, path in files.items()},
        "mode": mode,
        "validation_size": validation_size,
        "seed": seed,
        "normalization": {"mean": mean, "std": std},
        "sizes": {name: len(b) for name, b in splits.items()},
        "skipped": skipped_train + skipped_test,
        "license": "MIT (Zalando Research)",
    }
    return Dataset(splits=splits, info=info)


def download_fashion_mnist(
    dest: str | Path | None = None, *, base_url: str | None = None, progress: bool = True
) -> Path:
    """Download and verify the four official files into ``dest/fashion-mnist``; returns that folder.

    ``dest`` defaults to ``$NRSTREAM_DATA``, else ``~/.cache/nrstream``; ``<default>/fashion-mnist``
    is on the search path. Each file is checked against :data:`CHECKSUMS` and written
    atomically; files already present with the right checksum are kept, and a different
    file under one of the four names is refused, never overwritten.
    """
    parent = Path(dest).expanduser() if dest is not None else download_root()
    if parent.exists() and not parent.is_dir():
        raise DownloadError(f"--dest {parent} is a file, not a folder; pass a folder to download into")
    dest = parent / "fashion-mnist"
    base = base_url or BASE_URL
    if not base.endswith("/"):
        base += "/"
    for name, checksum in CHECKSUMS.items():  # refuse a foreign file before downloading anything
        already_downloaded(dest / name, checksum)
    for name, checksum in CHECKSUMS.items():
        download(base + name, dest / name, checksum, progress=progress)
    return dest


@hookimpl
def nrstream_register_data_sources(register):
    register("fashion_mnist", DataSource(load=load_fashion_mnist, download=download_fashion_mnist))
