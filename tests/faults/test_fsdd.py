"""Fault injection for the ``fsdd`` source and its options (issue 24), as for Speech Commands in test_data.py.

Each case damages one file of a 40-recording copy of the shared FSDD subset (or gives a bad
option) and runs ``nrstream data info fsdd``: one line naming the file or option, exit 2,
no traceback, the user's files untouched.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from nrstream_plugins.data import fsdd

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot
from nrstream.data.datasets import clear_dataset_cache


@pytest.fixture(autouse=True)
def _fresh_datasets():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


@pytest.fixture
def fsdd_root(fsdd_sample, fault_home) -> Path:
    """Two speakers x ten digits x takes 0, 5, 10, 11: every split non-empty."""
    root = fault_home / "fsdd"
    (root / "recordings").mkdir(parents=True)
    for digit in range(10):
        for speaker in ("george", "jackson"):
            for take in (0, 5, 10, 11):
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy2(fsdd_sample / "recordings" / name, root / "recordings" / name)
    return root


def _info(main_in_process, root: Path, *options: str):
    opts = [x for o in (f"root={root}", *options) for x in ("-o", o)]
    return main_in_process("data", "info", "fsdd", *opts)


def test_fsdd_root_that_does_not_exist(main_in_process, fault_home):
    line = assert_one_line_error(_info(main_in_process, fault_home / "nowhere"), str(fault_home / "nowhere"))
    assert "does not exist" in line


def test_fsdd_root_without_recordings_folder(main_in_process, fault_home):
    (fault_home / "empty").mkdir()
    line = assert_one_line_error(_info(main_in_process, fault_home / "empty"), str(fault_home / "empty"))
    assert "no recordings/ folder" in line


def test_fsdd_flipped_byte_names_the_file(main_in_process, fsdd_root):
    path = fsdd_root / "recordings" / "4_jackson_10.wav"
    data = bytearray(path.read_bytes())
    data[2000] ^= 0x80
    path.write_bytes(bytes(data))
    before = snapshot(fsdd_root)
    line = assert_one_line_error(_info(main_in_process, fsdd_root), str(path))
    assert "SHA-256" in line
    assert_nothing_lost(before, fsdd_root, allow_new=False)


def test_fsdd_file_not_in_the_release(main_in_process, fsdd_root):
    path = fsdd_root / "recordings" / "4_jackson_50.wav"  # takes run 0-49
    shutil.copy2(fsdd_root / "recordings" / "4_jackson_10.wav", path)
    line = assert_one_line_error(_info(main_in_process, fsdd_root), str(path))
    assert "not a recording of FSDD v1.0.10" in line and "verify: false" in line


def test_fsdd_misnamed_file(main_in_process, fsdd_root):
    path = fsdd_root / "recordings" / "four_jackson.wav"
    shutil.copy2(fsdd_root / "recordings" / "4_jackson_10.wav", path)
    line = assert_one_line_error(_info(main_in_process, fsdd_root), str(path))
    assert "{digit}_{speaker}_{index}.wav" in line
    result = _info(main_in_process, fsdd_root, "on_error=skip")
    warning = [line for line in result.stderr.splitlines() if line.startswith("nrstream: warning:")]
    assert result.returncode == 0 and len(warning) == 1 and "skipped 1 " in warning[0], str(result)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_fsdd_non_finite_samples_of_unverified_recordings(main_in_process, fsdd_root, value):
    path = fsdd_root / "recordings" / "2_george_11.wav"
    wave = (0.1 * np.sin(np.arange(4000) / 5.0)).astype(np.float32)
    wave[[10, 300]] = value
    soundfile.write(path, wave, 8000, subtype="FLOAT")
    line = assert_one_line_error(_info(main_in_process, fsdd_root, "verify=false"), str(path))
    assert "2 NaN or infinite samples" in line


def test_fsdd_non_audio_bytes(main_in_process, fsdd_root):
    path = fsdd_root / "recordings" / "2_george_11.wav"
    path.write_bytes(b"<html>404 not found</html>" * 40)
    assert_one_line_error(_info(main_in_process, fsdd_root), str(path))  # the checksum catches it
    assert_one_line_error(_info(main_in_process, fsdd_root, "verify=false"), str(path))  # and so does the reader


def test_fsdd_dangling_symlink(main_in_process, fsdd_root, fault_home):
    link = fsdd_root / "recordings" / "0_lucas_0.wav"  # a release file, so the checksum list knows it
    link.symlink_to(fault_home / "deleted.wav")
    line = assert_one_line_error(_info(main_in_process, fsdd_root), str(link))
    assert "link to a missing file" in line


def test_fsdd_noise_dir_missing_or_empty(main_in_process, fsdd_root, fault_home):
    line = assert_one_line_error(_info(main_in_process, fsdd_root, f"noise_dir={fault_home / 'no'}"), "noise_dir")
    assert str(fault_home / "no") in line
    (fault_home / "quiet").mkdir()
    line = assert_one_line_error(_info(main_in_process, fsdd_root, f"noise_dir={fault_home / 'quiet'}"), "noise_dir")
    assert "no .wav recordings" in line


def test_fsdd_nan_in_a_noise_recording(main_in_process, fsdd_root, fault_home):
    noise = fault_home / "noise"
    noise.mkdir()
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    wave[500] = math.nan
    soundfile.write(noise / "hum.wav", wave, 16000, subtype="FLOAT")
    assert_one_line_error(_info(main_in_process, fsdd_root, f"noise_dir={noise}"), str(noise / "hum.wav"))


def test_fsdd_unknown_speaker_option(main_in_process, fsdd_root):
    line = assert_one_line_error(_info(main_in_process, fsdd_root, "split=speakers", "test_speakers=theo"), "theo")
    assert "george, jackson" in line


def test_fsdd_download_onto_a_file(main_in_process, fault_home):
    (fault_home / "afile").write_text("x")
    line = assert_one_line_error(main_in_process("data", "download", "fsdd", "--dest", fault_home / "afile"))
    assert "is a file" in line
    assert fsdd.FOLDER not in {p.name for p in fault_home.iterdir()}
