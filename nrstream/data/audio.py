"""Audio in: WAV reading and the one feature frontend every audio source uses.

- :func:`read_wav` reads a file with soundfile (scipy as a fallback), mixes any number of
  channels down to mono and resamples to the target rate with
  ``torchaudio.functional.resample``. torchaudio's own I/O is not used: its backends
  change between releases.
- :func:`fix_length` pads with zeros or centre-crops to a fixed number of samples.
- :class:`FeatureFrontend` turns ``[N, samples]`` waveforms into ``[N, frames, F]``
  log-mel or MFCC features, optionally with deltas.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchaudio

from nrstream.errors import DataFileError

__all__ = ["FeatureFrontend", "read_wav", "fix_length"]


def _to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype.kind == "f":
        return data.astype(np.float32, copy=False)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))


def read_wav(path: str | Path, sample_rate: int = 16000) -> torch.Tensor:
    """Read a WAV file as mono float32 in ``[-1, 1]`` at ``sample_rate`` Hz.

    Returns:
        ``[samples]`` float32. Multi-channel audio is averaged over channels; any other
        rate is resampled (band-limited sinc interpolation).

    Raises:
        DataFileError: the file is missing (or a dangling link), not a regular file, unreadable, holds no samples,
            or holds NaN or infinite samples (a float WAV can); names the file.
    """
    import soundfile

    try:
        mode = os.stat(path).st_mode  # follows links: a dangling one is missing too
    except OSError:
        kind = "a link to a missing file" if os.path.islink(path) else "missing"
        raise DataFileError(f"audio file {path} is {kind}") from None
    if not stat.S_ISREG(mode):  # a folder, a pipe (reading would wait forever), a device
        raise DataFileError(f"audio file {path} is not a regular file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as first:  # soundfile rejects a few valid WAV variants scipy reads
        from scipy.io import wavfile

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", wavfile.WavFileWarning)
                rate, raw = wavfile.read(str(path))
            data = _to_float(raw)
        except Exception:
            reason = " ".join(str(first).split())  # one line, whatever the library said
            raise DataFileError(f"cannot read audio file {path}: {reason}") from first
        if data.ndim == 1:
            data = data[:, None]
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise DataFileError(f"audio file {path} holds no samples")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise DataFileError(
            f"audio file {path} holds {bad} NaN or infinite samples; repair or remove it (or set on_error: skip)"
        )
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1), dtype=np.float32))
    if rate != sample_rate:
        wave = torchaudio.functional.resample(wave, int(rate), int(sample_rate))
    return wave


def fix_length(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """Zero-pad at the end, or crop around the centre, to ``samples`` along the last axis."""
    n = wave.shape[-1]
    if n < samples:
        return torch.nn.functional.pad(wave, (0, samples - n))
    start = (n - samples) // 2
    return wave[..., start : start + samples]


class FeatureFrontend(torch.nn.Module):
    """Log-mel or MFCC features from waveforms.

    Args:
        kind: ``"log_mel"`` (natural log of mel power + ``log_offset``) or ``"mfcc"``.
        sample_rate: input rate in Hz.
        window_ms: analysis window length in milliseconds (Hann window).
        hop_ms: hop between frames in milliseconds.
        n_mels: mel bands.
        n_mfcc: cepstral coefficients kept for ``"mfcc"`` (default ``n_mels``).
        deltas: 0, 1 or 2: append first (and second) temporal differences.
        n_fft: FFT size; default the next power of two at least the window length.
        f_min, f_max: mel filter bank range in Hz (``f_max`` default Nyquist).
        log_offset: added before the logarithm of ``"log_mel"``.

    Shapes:
        ``forward(wave [N, samples]) -> [N, frames, F]`` float32, where
        ``frames = 1 + samples // hop`` (centred frames, ``hop = round(hop_ms * sample_rate / 1000)``)
        and ``F = (n_mels or n_mfcc) * (1 + deltas)``. A ``[samples]`` input gives ``[frames, F]``.
        With the defaults a 1 s clip at 16 kHz gives ``[101, 40]``.
    """

    def __init__(
        self,
        *,
        kind: Literal["log_mel", "mfcc"] = "log_mel",
        sample_rate: int = 16000,
        window_ms: float = 30.0,
        hop_ms: float = 10.0,
        n_mels: int = 40,
        n_mfcc: int | None = None,
        deltas: int = 0,
        n_fft: int | None = None,
        f_min: float = 20.0,
        f_max: float | None = None,
        log_offset: float = 1e-6,
    ) -> None:
        super().__init__()
        if kind not in ("log_mel", "mfcc"):
            raise ValueError(f"kind must be 'log_mel' or 'mfcc', got {kind!r}")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        if not window_ms > 0 or not hop_ms > 0:
            raise ValueError(f"window_ms and hop_ms must be positive, got {window_ms!r} and {hop_ms!r}")
        if not isinstance(n_mels, int) or n_mels < 1:
            raise ValueError(f"n_mels must be a positive int, got {n_mels!r}")
        if n_mfcc is not None and (not isinstance(n_mfcc, int) or not 1 <= n_mfcc <= n_mels):
            raise ValueError(f"n_mfcc must be an int in [1, n_mels={n_mels}], got {n_mfcc!r}")
        if deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {deltas!r}")
        win_length = round(window_ms * sample_rate / 1000)
        hop_length = round(hop_ms * sample_rate / 1000)
        if win_length < 2 or hop_length < 1:
            raise ValueError(f"window_ms={window_ms!r} / hop_ms={hop_ms!r} are too short at {sample_rate} Hz")
        if n_fft is None:
            n_fft = 2 ** math.ceil(math.log2(win_length))
        if n_fft < win_length:
            raise ValueError(f"n_fft must be at least the window length ({win_length} samples), got {n_fft!r}")
        nyquist = sample_rate / 2
        f_max = nyquist if f_max is None else f_max
        if not 0 <= f_min < f_max <= nyquist:
            raise ValueError(f"need 0 <= f_min < f_max <= {nyquist}, got f_min={f_min!r}, f_max={f_max!r}")
        self.kind = kind
        self.sample_rate = sample_rate
        self.window_ms = float(window_ms)
        self.hop_ms = float(hop_ms)
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc if n_mfcc is not None else n_mels
        self.deltas = deltas
        self.n_fft = n_fft
        self.f_min = float(f_min)
        self.f_max = float(f_max)
        self.log_offset = float(log_offset)
        self.hop_length = hop_length
        melkwargs = dict(
            n_fft=n_fft, win_length=win_length, hop_length=hop_length, n_mels=n_mels, f_min=f_min, f_max=f_max
        )
        if kind == "mfcc":
            self.transform = torchaudio.transforms.MFCC(
                sample_rate=sample_rate, n_mfcc=self.n_mfcc, log_mels=True, melkwargs=melkwargs
            )
        else:
            self.transform = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, **melkwargs)
        self.compute_deltas = torchaudio.transforms.ComputeDeltas()

    @property
    def feature_size(self) -> int:
        return (self.n_mfcc if self.kind == "mfcc" else self.n_mels) * (1 + self.deltas)

    def num_frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length

    def params(self) -> dict[str, Any]:
        """The configuration, as plain values: the cache key and ``Dataset.info`` use it."""
        return {
            "kind": self.kind,
            "sample_rate": self.sample_rate,
            "window_ms": self.window_ms,
            "hop_ms": self.hop_ms,
            "n_mels": self.n_mels,
            "n_mfcc": self.n_mfcc if self.kind == "mfcc" else None,
            "deltas": self.deltas,
            "n_fft": self.n_fft,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "log_offset": self.log_offset,
        }

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        single = wave.dim() == 1
        if single:
            wave = wave[None]
        if wave.dim() != 2:
            raise ValueError(f"expected waveforms [N, samples], got shape {tuple(wave.shape)}")
        spec = self.transform(wave.float())  # [N, bands, frames]
        if self.kind == "log_mel":
            spec = torch.log(spec + self.log_offset)
        parts = [spec]
        for _ in range(self.deltas):
            parts.append(self.compute_deltas(parts[-1]))
        feats = torch.cat(parts, dim=1).transpose(1, 2).contiguous()  # [N, frames, F]
        return feats[0] if single else feats

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params().items())
