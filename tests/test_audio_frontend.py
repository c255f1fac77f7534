"""The feature frontend, WAV reading, the feature cache and the data-file helpers."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import numpy as np
import pytest
import soundfile
import torch

from nrstream.data import cache
from nrstream.data.audio import FeatureFrontend, fix_length, read_wav
from nrstream.data.datafiles import download, safe_extract_tar
from nrstream.errors import DataFileError, DownloadError


def test_default_frontend_gives_101_frames_of_40_log_mels():
    fe = FeatureFrontend()
    out = fe(torch.randn(3, 16000))
    assert out.shape == (3, 101, 40) and out.dtype == torch.float32
    assert fe.num_frames(16000) == 101 and fe.feature_size == 40
    assert fe(torch.randn(16000)).shape == (101, 40)


def test_mfcc_with_deltas():
    fe = FeatureFrontend(kind="mfcc", n_mfcc=13, deltas=2, hop_ms=20.0)
    assert fe(torch.randn(2, 16000)).shape == (2, 51, 39)
    assert fe.params()["n_mfcc"] == 13


@pytest.mark.parametrize(
    "kwargs, quoted",
    [
        ({"kind": "fbank"}, "'fbank'"),
        ({"deltas": 3}, "3"),
        ({"n_mels": 20, "n_mfcc": 30}, "30"),
        ({"window_ms": 0}, "0"),
        ({"n_fft": 64}, "64"),
        ({"f_max": 9000.0}, "9000"),
    ],
)
def test_frontend_rejects_bad_config_quoting_the_value(kwargs, quoted):
    with pytest.raises(ValueError, match=quoted):
        FeatureFrontend(**kwargs)


def test_fix_length_pads_and_centre_crops():
    assert fix_length(torch.ones(10), 16).tolist() == [1.0] * 10 + [0.0] * 6
    assert fix_length(torch.arange(10.0), 4).tolist() == [3.0, 4.0, 5.0, 6.0]


def test_read_wav_resamples_and_mixes_down(tmp_path):
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(tmp_path / "mono8k.wav", tone, 8000, subtype="PCM_16")
    wave = read_wav(tmp_path / "mono8k.wav", 16000)
    assert wave.shape == (16000,)
    assert abs(float(wave.abs().max()) - 0.5) < 0.02

    stereo = np.stack([tone, np.zeros_like(tone)], axis=1)
    soundfile.write(tmp_path / "stereo.wav", stereo, 8000, subtype="FLOAT")
    mixed = read_wav(tmp_path / "stereo.wav", 8000)
    assert torch.allclose(mixed, torch.from_numpy(tone) / 2, atol=1e-6)


def test_unreadable_wav_names_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(DataFileError, match="broken.wav"):
        read_wav(bad)


def test_cache_roundtrip_stale_and_corrupt(tmp_cache, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    key = cache.fingerprint([src], {"n_mels": 40})
    assert cache.fingerprint([src], {"n_mels": 41}) != key
    calls = []

    def build():
        calls.append(1)
        return {"x": torch.arange(3)}

    payload, hit = cache.cached("t", key, build)
    assert not hit and payload["x"].tolist() == [0, 1, 2]
    payload, hit = cache.cached("t", key, build)
    assert hit and len(calls) == 1

    entry = tmp_cache / "t" / f"{key}.pt"
    entry.write_bytes(entry.read_bytes()[:20])  # truncated: must be rebuilt, not trusted
    with pytest.warns(cache.CacheWarning, match="rebuilding"):
        payload, hit = cache.cached("t", key, build)
    assert not hit and len(calls) == 2 and payload["x"].tolist() == [0, 1, 2]

    src.write_bytes(b"abcd")  # the source changed: a new key
    assert cache.fingerprint([src], {"n_mels": 40}) != key
    assert not [p for p in (tmp_cache / "t").iterdir() if p.name.endswith(".part")]


def test_download_verifies_checksum_and_writes_atomically(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"payload")
    good = "md5:" + hashlib.md5(b"payload").hexdigest()
    dest = tmp_path / "out" / "blob.bin"
    assert download(src.as_uri(), dest, good, progress=False).read_bytes() == b"payload"
    bad_dest = tmp_path / "out" / "other.bin"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(src.as_uri(), bad_dest, "sha256:" + "0" * 64, progress=False)
    assert sorted(os.listdir(tmp_path / "out")) == ["blob.bin"]


def test_safe_extract_refuses_escaping_members(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DownloadError, match="unsafe"):
        safe_extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()
