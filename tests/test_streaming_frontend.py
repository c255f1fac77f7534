"""The streaming front end gives the offline FeatureFrontend's features, block by block."""

from __future__ import annotations

import math

import pytest
import torch

from nrstream.data.audio import FeatureFrontend, read_wav
from nrstream.data.streaming_frontend import StreamingFrontend

BLOCKS = (1, 160, 1000, 16000)
CONFIGS = (
    {},  # the default: 40 log-mel bands, 30 ms / 10 ms
    {"kind": "mfcc", "n_mfcc": 13, "deltas": 2},
    {"n_mels": 20, "deltas": 1, "hop_ms": 30.0, "window_ms": 25.0},
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def streamed(fe: StreamingFrontend, signal: torch.Tensor, block: int) -> torch.Tensor:
    parts = [fe.push(signal[i : i + block]) for i in range(0, len(signal), block)]
    return torch.cat([*parts, fe.flush()])


@pytest.fixture(scope="module")
def real_signal(speech_sample) -> torch.Tensor:
    """Three real clips of different words back to back (3 s of 16 kHz audio)."""
    clips = [sorted((speech_sample / w).glob("*.wav"))[0] for w in ("yes", "cat", "down")]
    return torch.cat([read_wav(c) for c in clips])


def synthetic_signal(seconds: float, seed: int = 0) -> torch.Tensor:
    """A chirp over coloured noise with a stretch of digital silence in it."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    t = torch.arange(n) / 16000
    wave = 0.3 * torch.sin(2 * math.pi * (200 + 1500 * t) * t) + 0.05 * torch.randn(n, generator=g)
    wave[n // 3 : n // 3 + 2000] = 0.0
    return wave


@pytest.mark.parametrize("config", CONFIGS, ids=["log_mel", "mfcc_d2", "hop30_d1"])
@pytest.mark.parametrize("block", BLOCKS)
def test_equals_offline_on_real_clips(real_signal, config, block):
    offline = FeatureFrontend(**config)
    signal = real_signal[:8000] if block == 1 else real_signal  # block 1: 8000 pushes are plenty
    expected = offline(signal)
    got = streamed(StreamingFrontend(offline), signal, block)
    assert got.shape == expected.shape == (1 + len(signal) // offline.hop_length, offline.feature_size)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("block", BLOCKS)
def test_equals_offline_on_a_synthesised_recording(block):
    offline = FeatureFrontend()
    signal = synthetic_signal(0.5 if block == 1 else 4.0)
    got = streamed(StreamingFrontend(offline), signal, block)
    torch.testing.assert_close(got, offline(signal), atol=1e-4, rtol=0)


def test_frames_appear_once_their_window_is_complete(real_signal):
    """Frame t comes out exactly when t * hop + latency samples (at least n_fft // 2 + 1) have arrived."""
    for config in CONFIGS:
        fe = StreamingFrontend(FeatureFrontend(**config))
        emitted = 0
        for n in range(1, 6000, 37):
            emitted += fe.push(real_signal[fe.samples_seen : n]).shape[0]
            expected = 0 if n <= fe.pad else max(0, (n - fe.latency_samples) // fe.hop + 1)
            assert emitted == expected, (config, n)


def test_memory_is_bounded(real_signal):
    """Only a window of overlap is kept, however long the signal."""
    fe = StreamingFrontend(FeatureFrontend(kind="mfcc", deltas=2))
    for _ in range(20):
        fe.push(real_signal)
    kept = fe._buf.numel() + fe._tail.numel() + sum(s.buf.shape[0] for s in fe._deltas)
    assert kept < fe.n_fft + fe.pad + 1 + 2 * 6


def test_normalisation_is_the_data_sources(real_signal):
    offline = FeatureFrontend()
    feats = offline(real_signal)
    mean, std = feats.mean(0), feats.std(0)
    got = streamed(StreamingFrontend(offline, mean=mean, std=std), real_signal, 1000)
    torch.testing.assert_close(got, (feats - mean) / std, atol=1e-4, rtol=0)


def test_flush_resets_and_a_second_signal_matches():
    offline = FeatureFrontend()
    fe = StreamingFrontend(offline)
    a, b = synthetic_signal(1.0, 1), synthetic_signal(0.7, 2)
    streamed(fe, a, 160)
    torch.testing.assert_close(streamed(fe, b, 333), offline(b), atol=1e-4, rtol=0)


def test_short_signals():
    offline = FeatureFrontend()
    fe = StreamingFrontend(offline)
    assert fe.flush().shape == (0, 40)  # nothing pushed
    signal = synthetic_signal(0.02)  # 320 samples: just past the reflect padding's need
    torch.testing.assert_close(streamed(fe, signal, 50), offline(signal), atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError):  # too short to reflect-pad: the offline front end's own error
        streamed(fe, signal[:100], 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="both mean and std"):
        StreamingFrontend(FeatureFrontend(), mean=torch.zeros(40))
    with pytest.raises(ValueError, match="40 values"):
        StreamingFrontend(FeatureFrontend(), mean=torch.zeros(13), std=torch.ones(13))
    assert StreamingFrontend({"n_mels": 20, "n_mfcc": None}).feature_size == 20


def test_equals_offline_on_a_make_recording_scene(speech_sample, tmp_path):
    """A recording made by make-recording (words over a running background), read back in blocks."""
    import soundfile

    from nrstream.deploy.recording import make_recording

    s = make_recording(
        "speech_commands",
        minutes=0.1,
        out=tmp_path / "r.wav",
        truth=tmp_path / "r.csv",
        options={"root": str(speech_sample)},
    )
    signal = torch.from_numpy(soundfile.read(str(s.wav), dtype="float32")[0])
    offline = FeatureFrontend()
    for block in (160, 1000, 16000):
        torch.testing.assert_close(
            streamed(StreamingFrontend(offline), signal, block), offline(signal), atol=1e-4, rtol=0
        )
