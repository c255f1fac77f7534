"""The fashion_mnist data source: IDX parsing, modes, splits, errors and download."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from nrstream_plugins.data import fashion_mnist as fm

from nrstream import DataNotFoundError
from nrstream.errors import DataFileError, DownloadError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def _tiny_set(folder: Path, n_train: int = 20, n_test: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    _write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)))
    _write_idx(folder / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)), gz=True)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10, gz=True)
    return folder


@needs_debian
def test_idx_parsing_of_the_official_files():
    images = fm.read_idx(DEBIAN / "train-images-idx3-ubyte.gz")
    labels = fm.read_idx(DEBIAN / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))
    assert fm.read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    assert np.bincount(fm.read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz")).tolist() == [1000] * 10


@needs_debian
def test_rows_mode_default_splits_and_normalisation(tmp_cache):
    data = fm.load_fashion_mnist()
    assert data.sizes() == {"train": 55000, "validation": 5000, "test": 10000}
    assert data.splits["train"].features.shape == (55000, 28, 28)
    assert data.class_names == fm.CLASS_NAMES and data.info["root"] == str(DEBIAN)
    train = data.splits["train"].features
    assert abs(float(train.mean())) < 1e-3 and abs(float(train.std()) - 1) < 1e-3
    pixels = fm.load_fashion_mnist(mode="pixels")
    assert pixels.splits["test"].features.shape == (10000, 784, 1)
    assert pixels.splits["test"].lengths.unique().tolist() == [784]
    assert np.allclose(pixels.splits["test"].features.reshape(-1, 28, 28), data.splits["test"].features)


def test_validation_split_is_deterministic_and_disjoint(tmp_path, tmp_cache):
    root = _tiny_set(tmp_path / "fm")
    a = fm.load_fashion_mnist(root=str(root), validation_size=5, seed=1, normalize=False)
    b = fm.load_fashion_mnist(root=str(root), validation_size=5, seed=1, normalize=False)
    c = fm.load_fashion_mnist(root=str(root), validation_size=5, seed=2, normalize=False)
    assert a.sizes() == {"train": 15, "validation": 5, "test": 6}
    assert (a.splits["validation"].features == b.splits["validation"].features).all()
    assert not (a.splits["validation"].features == c.splits["validation"].features).all()
    rows = {tuple(r.flatten().tolist()) for r in a.splits["train"].features}
    assert not rows & {tuple(r.flatten().tolist()) for r in a.splits["validation"].features}


def test_torchvision_layout_under_nrstream_data(tmp_path, tmp_cache, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIRS", [])
    root = _tiny_set(tmp_cache.parent / "data" / "FashionMNIST" / "raw")
    assert fm.load_fashion_mnist(validation_size=2).info["root"] == str(root)


def test_missing_data_lists_every_path_and_both_remedies(tmp_path, tmp_cache, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIRS", [tmp_path / "system"])
    with pytest.raises(DataNotFoundError) as err:
        fm.load_fashion_mnist()
    message = str(err.value)
    for path in fm.candidate_dirs():
        assert str(path) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "nrstream data download fashion_mnist" in message
    assert "\n" not in message


def test_truncated_file_is_named(tmp_path, tmp_cache):
    root = _tiny_set(tmp_path / "fm")
    path = root / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.*truncated"):
        fm.load_fashion_mnist(root=str(root), validation_size=2)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte.gz"):
        fm.read_idx(root / "t10k-labels-idx1-ubyte.gz")


@needs_debian
def test_download_checks_checksums_against_local_mirror(tmp_path, tmp_cache, monkeypatch):
    # The Debian files are recompressed, so their checksums differ from the official ones:
    # point the table at them to exercise the same code path.
    sums = {name: "sha256:" + hashlib.sha256((DEBIAN / name).read_bytes()).hexdigest() for name in fm.CHECKSUMS}
    monkeypatch.setattr(fm, "CHECKSUMS", sums)
    dest = fm.download_fashion_mnist(tmp_path / "dl", base_url=DEBIAN.as_uri(), progress=False)
    assert sorted(p.name for p in dest.iterdir()) == sorted(sums)
    assert fm.find_files(dest)["train_images"] == dest / "train-images-idx3-ubyte.gz"

    mirror = tmp_path / "mirror"
    shutil.copytree(DEBIAN, mirror)
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fm.download_fashion_mnist(tmp_path / "dl2", base_url=mirror.as_uri(), progress=False)
    assert not (tmp_path / "dl2" / "t10k-labels-idx1-ubyte.gz").exists()
