"""Fault injection, data side (issue 11): damaged, missing and non-finite data files.

Each case damages one real file of a tiny Fashion-MNIST set (IDX files written here) or of
a small copy of the real Speech Commands sample, then runs ``nrstream data info`` (in this
process where the CLI behaves the same; in a subprocess where the promise is about the
console script) and asserts the one-line error naming the file, exit 2, no traceback, and
that the user's files are untouched. Under ``on_error: skip`` the damaged item is skipped
with a counted warning and every statistic stays finite.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from nrstream_plugins.data import fashion_mnist as fm
from nrstream_plugins.data import speech_commands as sc

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot
from nrstream.data.datasets import clear_dataset_cache
from nrstream.stream.bank import SampleBank


@pytest.fixture(autouse=True)
def _fresh_datasets():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


# ------------------------------------------------------------------ Fashion-MNIST


def _write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool | None = None) -> Path:
    dtype = {0x08: np.uint8, 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(dtype).tobytes()
    gz = path.suffix == ".gz" if gz is None else gz
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.fixture
def fmnist(fault_home, monkeypatch) -> Path:
    """A tiny Fashion-MNIST root (20 train, 6 test images; two files gzipped); no system copy is searched."""
    monkeypatch.setattr(fm, "SYSTEM_DIRS", [fault_home / "no-system-copy"])
    fm._read_cached.cache_clear()
    root = fault_home / "fm"
    root.mkdir()
    rng = np.random.default_rng(0)
    _write_idx(root / "train-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(root / "train-labels-idx1-ubyte", np.arange(20) % 10)
    _write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (6, 28, 28)))
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(6) % 10)
    return root


def _fm_info(main_in_process, root: Path, *options: str):
    opts = [x for o in ("validation_size=2", f"root={root}", *options) for x in ("-o", o)]
    return main_in_process("data", "info", "fashion_mnist", *opts)


def test_fmnist_tiny_set_loads(main_in_process, fmnist):
    result = _fm_info(main_in_process, fmnist)
    assert result.returncode == 0, str(result)
    assert f"root:     {fmnist}" in result.stdout and "train:" in result.stdout


def test_fmnist_empty_root_is_an_error_not_a_fallback(main_in_process, fault_home, monkeypatch):
    # a complete copy on the default search path must NOT be used instead of the explicit root
    monkeypatch.setattr(fm, "SYSTEM_DIRS", [])
    fm._read_cached.cache_clear()
    empty = fault_home / "empty"
    empty.mkdir()
    fallback = fault_home / "data" / "fashion-mnist"
    fallback.mkdir()
    for name in fm.FILES.values():
        (fallback / name).write_bytes(b"would be loaded by a silent fallback")
    result = _fm_info(main_in_process, empty)
    line = assert_one_line_error(result, str(empty), "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte")
    assert "misses" in line and str(fallback) not in line


@pytest.mark.parametrize("stem", list(fm.FILES.values()))
def test_fmnist_root_missing_one_file_names_it(main_in_process, fmnist, stem):
    victim = fm._locate(fmnist, stem)
    victim.unlink()
    line = assert_one_line_error(_fm_info(main_in_process, fmnist), str(fmnist), stem)
    others = [s for s in fm.FILES.values() if s != stem]
    assert not any(o in line for o in others)  # names only what is missing


def test_fmnist_root_that_does_not_exist(main_in_process, fault_home):
    line = assert_one_line_error(_fm_info(main_in_process, fault_home / "nowhere"), str(fault_home / "nowhere"))
    assert "does not exist" in line


def test_fmnist_corrupt_deflate_stream(main_in_process, fmnist):
    path = fmnist / "t10k-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[10] |= 0b110  # first deflate block header (after the 10-byte gzip header): reserved block type 11
    path.write_bytes(bytes(data))
    with pytest.raises(zlib.error):  # the fault really is a deflate error
        gzip.decompress(bytes(data))
    before = snapshot(fmnist)
    assert_one_line_error(_fm_info(main_in_process, fmnist), str(path))
    assert_nothing_lost(before, fmnist, allow_new=False)


def test_fmnist_truncated_gzip(main_in_process, fmnist):
    path = fmnist / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    assert_one_line_error(_fm_info(main_in_process, fmnist), str(path))


def test_fmnist_truncated_idx(main_in_process, fmnist):
    path = fmnist / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    line = assert_one_line_error(_fm_info(main_in_process, fmnist), str(path))
    assert "truncated" in line


def test_fmnist_wrong_magic(main_in_process, fmnist):
    path = fmnist / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])
    line = assert_one_line_error(_fm_info(main_in_process, fmnist), str(path))
    assert "magic" in line


def test_fmnist_gz_name_on_plain_bytes(main_in_process, fmnist):
    path = fmnist / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    assert_one_line_error(_fm_info(main_in_process, fmnist), str(path))


def test_fmnist_label_count_mismatch(main_in_process, fmnist):
    _write_idx(fmnist / "train-labels-idx1-ubyte", np.arange(19) % 10)
    assert_one_line_error(_fm_info(main_in_process, fmnist), "train-labels-idx1-ubyte", "train-images-idx3-ubyte")


def _float_images(root: Path, value: float, at: list[int]) -> Path:
    images = np.random.default_rng(1).integers(0, 256, (20, 28, 28)).astype(np.float32)
    for i in at:
        images[i, 3, 4] = value
    return _write_idx(root / "train-images-idx3-ubyte", images, code=0x0D)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_fmnist_non_finite_pixels_name_the_file(main_in_process, fmnist, value):
    path = _float_images(fmnist, value, [3, 7])
    line = assert_one_line_error(_fm_info(main_in_process, fmnist), str(path))
    assert "2 images" in line and "image 3" in line and "on_error: skip" in line


def test_fmnist_non_finite_pixels_skipped_with_a_count(fmnist):
    _float_images(fmnist, math.nan, [3, 7])
    with pytest.warns(fm.SkippedImagesWarning, match="skipped 2 images"):
        data = fm.load_fashion_mnist(root=str(fmnist), validation_size=2, on_error="skip")
    assert data.info["skipped"] == 2 and sum(data.sizes().values()) == 18 + 6
    for bank in data.splits.values():
        assert torch.isfinite(bank.features).all()
    assert math.isfinite(data.info["normalization"]["mean"]) and math.isfinite(data.info["normalization"]["std"])


def test_feature_stats_ignore_non_finite_frames():
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [math.nan, 1e9]]])
    bank = SampleBank(features, torch.tensor([2, 2]), torch.tensor([0, 1]), ["a", "b"])
    mean, std = bank.feature_stats()
    finite = features.reshape(-1, 2)[:3].double()
    assert torch.allclose(mean, finite.mean(0).float()) and torch.allclose(std, finite.std(0, unbiased=False).float())


# ------------------------------------------------------------------ Speech Commands


def _sc_info(main_in_process, root: Path, *options: str):
    opts = [x for o in (f"root={root}", *options) for x in ("-o", o)]
    return main_in_process("data", "info", "speech_commands", *opts)


def test_speech_commands_noise_dir_that_is_not_a_folder(main_in_process, speech_root, fault_home):
    line = assert_one_line_error(_sc_info(main_in_process, speech_root, f"noise_dir={fault_home / 'nowhere'}"),
                                 "noise_dir")  # fmt: skip
    assert str(fault_home / "nowhere") in line and "not a folder" in line


def _float_wav(path: Path, values: dict[int, float], rate: int = 16000) -> Path:
    wave = (0.1 * np.sin(np.arange(rate) / 7.0)).astype(np.float32)
    for i, v in values.items():
        wave[i] = v
    soundfile.write(path, wave, rate, subtype="FLOAT")
    return path


def _train_clip(root: Path, word: str = "cat") -> Path:
    return sorted((root / word).glob("*.wav"))[2]  # the third clip of a word is in the train split


def test_speech_root_empty_is_an_error_not_a_fallback(main_in_process, speech_root, fault_home):
    # a complete data set on the default search path must NOT be used instead of the explicit root
    shutil.copytree(speech_root, fault_home / "data" / "speech_commands_v0.02")
    empty = fault_home / "empty"
    empty.mkdir()
    line = assert_one_line_error(_sc_info(main_in_process, empty), str(empty), "validation_list.txt")
    assert "speech_commands_v0.02" not in line


def test_speech_root_missing_one_list_names_it(main_in_process, speech_root):
    (speech_root / "testing_list.txt").unlink()
    line = assert_one_line_error(_sc_info(main_in_process, speech_root), str(speech_root), "testing_list.txt")
    assert "validation_list.txt" not in line


def test_speech_root_that_does_not_exist(main_in_process, fault_home):
    line = assert_one_line_error(_sc_info(main_in_process, fault_home / "nowhere"), str(fault_home / "nowhere"))
    assert "does not exist" in line


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_speech_non_finite_samples_name_the_file(main_in_process, speech_root, value):
    path = _float_wav(_train_clip(speech_root), {100: value, 2000: value, 3000: 0.5})
    before = snapshot(speech_root)
    line = assert_one_line_error(_sc_info(main_in_process, speech_root), str(path))
    assert "2 NaN or infinite samples" in line
    assert_nothing_lost(before, speech_root, allow_new=False)


def test_speech_samples_so_large_the_features_overflow(main_in_process, speech_root):
    path = _float_wav(_train_clip(speech_root), {i: 3e38 for i in range(0, 16000, 50)})
    line = assert_one_line_error(_sc_info(main_in_process, speech_root), str(path))
    assert "NaN or infinite features" in line


def test_speech_nan_clip_skipped_keeps_every_sample_finite(speech_root, fault_home):
    _float_wav(_train_clip(speech_root), {100: math.nan})
    with pytest.warns(sc.SkippedClipsWarning, match="skipped 1 unreadable or non-finite"):
        data = sc.load_speech_commands(root=str(speech_root), on_error="skip")
    assert data.info["skipped"] == 1 and data.sizes() == {"train": 3, "validation": 4, "test": 4}
    for bank in [*data.splits.values(), *data.noise.values()]:
        assert torch.isfinite(bank.features).all()


def test_speech_nan_in_a_noise_recording(main_in_process, speech_root):
    noise = speech_root / sc.NOISE_FOLDER / "white_noise.wav"
    wave, rate = soundfile.read(noise, dtype="float32")
    wave[5000] = math.nan
    soundfile.write(noise, wave, rate, subtype="FLOAT")
    assert_one_line_error(_sc_info(main_in_process, speech_root), str(noise))
    with pytest.warns(sc.SkippedClipsWarning, match="skipped 1 "):
        data = sc.load_speech_commands(root=str(speech_root), on_error="skip")
    assert data.noise == {} and all(torch.isfinite(b.features).all() for b in data.splits.values())


def test_speech_dangling_symlink_named(main_in_process, speech_root, fault_home):
    link = speech_root / "cat" / "0badc0de_nohash_0.wav"
    link.symlink_to(fault_home / "deleted.wav")
    line = assert_one_line_error(_sc_info(main_in_process, speech_root), str(link))
    assert "link to a missing file" in line


def test_speech_dangling_symlink_skipped_with_a_count(main_in_process, speech_root, fault_home):
    (speech_root / "cat" / "0badc0de_nohash_0.wav").symlink_to(fault_home / "deleted.wav")
    result = _sc_info(main_in_process, speech_root, "on_error=skip")
    assert result.returncode == 0 and "Traceback" not in result.stderr, str(result)
    warning = [line for line in result.stderr.splitlines() if line.startswith("nrstream: warning:")]
    assert len(warning) == 1 and "skipped 1 " in warning[0] and "0badc0de_nohash_0.wav" in warning[0]


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_speech_wav_that_is_not_a_regular_file(main_in_process, speech_root, kind):
    """A named pipe would block the reader forever; a link to /dev/zero would never end."""
    path = speech_root / "yes" / "fifo0000_nohash_0.wav"
    {"fifo": os.mkfifo, "folder": os.mkdir, "device": lambda p: os.symlink("/dev/zero", p)}[kind](path)
    line = assert_one_line_error(_sc_info(main_in_process, speech_root), str(path))
    assert "not a regular file" in line


def test_speech_non_audio_bytes_named_wav(main_in_process, speech_root):
    path = speech_root / "yes" / "feedface_nohash_0.wav"
    path.write_bytes(b"<html>404 not found</html>" * 40)
    assert_one_line_error(_sc_info(main_in_process, speech_root), str(path))


def test_speech_zero_byte_wav(main_in_process, speech_root):
    path = speech_root / "no" / "00000000_nohash_0.wav"
    path.write_bytes(b"")
    assert_one_line_error(_sc_info(main_in_process, speech_root), str(path))


def test_speech_wav_header_without_samples(main_in_process, speech_root):
    path = speech_root / "no" / "00000001_nohash_0.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    line = assert_one_line_error(_sc_info(main_in_process, speech_root), str(path))
    assert "no samples" in line


def test_data_info_refuses_non_finite_features_from_any_source(cli):
    """The console script itself: a source's own checks may miss NaN (here a NaN option of the toy
    source), and ``data info`` must still not exit 0."""
    line = assert_one_line_error(cli("data", "info", "toy", "-o", "jitter=.nan"), "'toy'", "train split")
    assert "NaN or infinite features" in line
