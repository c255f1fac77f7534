"""The feature front end, computed incrementally from blocks of samples of any size.

:class:`StreamingFrontend` gives exactly the features of :class:`nrstream.data.audio.FeatureFrontend`
(the offline front end every audio data source uses) for audio that arrives in pieces: a
microphone, stdin, or a file too long to hold in memory. It keeps only the few samples and
frames of overlap it needs, never the whole signal.

Equivalence with the offline front end (the definition the tests check):

* The offline front end frames the signal *centred*: torchaudio reflect-pads ``n_fft // 2``
  samples at both ends, and frame ``t`` is centred on sample ``t * hop``. A signal of ``N``
  samples gives ``1 + N // hop`` frames.
* The left reflect padding only needs samples ``1 .. n_fft // 2``, so the streaming front
  end reproduces it exactly once it has seen ``n_fft // 2 + 1`` samples.
* Frame ``t`` is emitted as soon as its window is complete: once ``t * hop + latency``
  samples have arrived (and at least ``n_fft // 2 + 1``), where
  ``latency = n_fft // 2 + 2 * deltas * hop`` (the delta features need two later
  frames each) is :attr:`StreamingFrontend.latency_samples` (256 samples, 16 ms, with the
  defaults).
* The last frames need the right reflect padding, i.e. knowing that the signal has ended:
  :meth:`StreamingFrontend.flush` emits them. ``push`` over all blocks followed by
  ``flush`` gives every one of the ``1 + N // hop`` offline frames; without ``flush``, the
  frames emitted so far are a prefix of them. So there is no interior-only comparison:
  every frame matches (the tests allow 1e-4; on the CPU they are bitwise equal or within
  float rounding of the same torch ops).
* Deltas (torchaudio ``ComputeDeltas``, window 5, replicate padding at both ends) are
  reproduced the same way: replicate padding at the start, look-ahead in the interior,
  replicate padding at :meth:`flush`.
* Normalisation: ``mean`` and ``std`` (``[F]``, the train split's statistics the data
  sources standardise with) are applied as ``(x - mean) / std`` after the features, the
  same operation as ``build_dataset``'s ``normalize``.

A signal shorter than ``n_fft // 2 + 1`` samples (under 16 ms with the defaults) cannot be
reflect-padded by the offline front end either; :meth:`flush` then hands it to the offline
front end, which raises the same error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from nrstream.data.audio import FeatureFrontend

__all__ = ["StreamingFrontend", "unusable_mask", "MAX_ABS"]

_DELTA_HALF = 2  # torchaudio ComputeDeltas(win_length=5): two frames on each side
_DELTA_DENOM = 10.0  # n (n + 1) (2n + 1) / 3 for n = 2


class _DeltaStage:
    """Append the delta of the last ``channels`` features to each frame, with 2 frames of look-ahead.

    Input frames ``[k, D]``; output frames ``[k', D + channels]`` lagging two frames behind,
    until :meth:`flush` replicates the last frame, as ``compute_deltas(mode="replicate")`` does.
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.buf: torch.Tensor | None = None  # 2 frames of left context + pending frames

    def _emit(self, final: bool) -> torch.Tensor:
        buf = self.buf
        if final:
            buf = torch.cat([buf, buf[-1:].expand(_DELTA_HALF, -1)])
        n = buf.shape[0] - 2 * _DELTA_HALF  # frames with both neighbours present
        if n <= 0:
            return buf.new_zeros(0, buf.shape[1] + self.channels)
        c = buf[:, -self.channels :]
        delta = (c[3 : 3 + n] - c[1 : 1 + n]) + 2.0 * (c[4 : 4 + n] - c[0:n])
        out = torch.cat([buf[2 : 2 + n], delta / _DELTA_DENOM], dim=1)
        self.buf = None if final else buf[n:]
        return out

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[0] == 0:
            return frames.new_zeros(0, frames.shape[1] + self.channels)
        if self.buf is None:
            self.buf = torch.cat([frames[:1].expand(_DELTA_HALF, -1), frames])
        else:
            self.buf = torch.cat([self.buf, frames])
        return self._emit(final=False)

    def flush(self, width: int) -> torch.Tensor:
        if self.buf is None:
            return torch.zeros(0, width + self.channels)
        return self._emit(final=True)


#: samples beyond this magnitude are not audio (a float WAV's full scale is 1.0): treated as unusable
MAX_ABS = 1e4


def unusable_mask(block: torch.Tensor) -> torch.Tensor | None:
    """``[samples]`` bool, true on usable samples (finite, within ``±MAX_ABS``); ``None`` when all are.

    One vectorised pass: ``abs(x) <= MAX_ABS`` is false for NaN and for both infinities.
    """
    usable = block.abs() <= MAX_ABS
    return None if bool(usable.all()) else usable


class StreamingFrontend:
    """Incremental :class:`~nrstream.data.audio.FeatureFrontend` (see the module docstring).

    Args:
        frontend: the offline front end, or its parameters (``FeatureFrontend.params()``).
        mean, std: optional ``[F]`` train statistics; features are returned standardised.

    Shapes:
        ``push(block [samples]) -> [frames, F]`` float32, ``frames >= 0``; ``flush() -> [frames, F]``.
        Frame ``t`` is centred at ``t * hop`` samples (:meth:`frame_time`).

    Example::

        fe = StreamingFrontend(FeatureFrontend())
        feats = torch.cat([fe.push(block) for block in blocks] + [fe.flush()])  # == FeatureFrontend()(signal)
    """

    def __init__(
        self,
        frontend: FeatureFrontend | Mapping[str, Any] | None = None,
        *,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ) -> None:
        if frontend is None or isinstance(frontend, Mapping):
            params = {k: v for k, v in dict(frontend or {}).items() if v is not None}
            frontend = FeatureFrontend(**params)
        self.offline = frontend
        mel = frontend.transform.MelSpectrogram if frontend.kind == "mfcc" else frontend.transform
        spec = mel.spectrogram
        if not spec.center or spec.pad_mode != "reflect" or spec.pad != 0 or spec.normalized:
            raise ValueError("StreamingFrontend expects the centred, reflect-padded framing of FeatureFrontend")
        self._mel = mel
        self._spec = spec
        self.n_fft = int(spec.n_fft)
        self.hop = int(spec.hop_length)
        self.pad = self.n_fft // 2
        self.feature_size = frontend.feature_size
        base = frontend.n_mfcc if frontend.kind == "mfcc" else frontend.n_mels
        self._base = base
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is not None:
            mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
            std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
            if mean.numel() != self.feature_size or std.numel() != self.feature_size:
                raise ValueError(
                    f"mean and std must have {self.feature_size} values (the front end's features), "
                    f"got {mean.numel()} and {std.numel()}"
                )
        self.mean, self.std = mean, std
        self.reset()

    # ------------------------------------------------------------------ public

    @property
    def sample_rate(self) -> int:
        return self.offline.sample_rate

    @property
    def latency_samples(self) -> int:
        """Frame ``t`` is emitted once ``t * hop + latency_samples`` samples have arrived."""
        return self.pad + _DELTA_HALF * self.offline.deltas * self.hop

    def frame_time(self, index: int | torch.Tensor) -> float | torch.Tensor:
        """Centre of frame ``index`` in seconds from the start of the signal."""
        return index * self.hop / self.sample_rate

    def reset(self) -> None:
        """Forget everything: the next block starts a new signal."""
        self._raw: list[torch.Tensor] = []  # samples before the left padding could be built
        self._raw_len = 0
        self._buf: torch.Tensor | None = None  # padded signal from the next frame's start
        self._tail = torch.zeros(0)  # last pad + 1 raw samples, for the right reflect padding
        self._deltas = [_DeltaStage(self._base) for _ in range(self.offline.deltas)]
        self.samples_seen = 0
        self.frames_emitted = 0
        self.unusable_samples = 0

    @torch.no_grad()
    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Feed ``block [samples]`` (float, any length, 0 allowed); returns the frames now complete.

        NaN or infinite samples (and any beyond ``±MAX_ABS``, far outside audio's ``[-1, 1]``) become
        silence and are counted in :attr:`unusable_samples`: one bad sample would otherwise make every
        frame it touches, and a never-reset agent's state, NaN for good.
        """
        block = torch.as_tensor(block, dtype=torch.float32).reshape(-1)
        usable = unusable_mask(block)
        if usable is not None:
            self.unusable_samples += int((~usable).sum())
            block = torch.where(usable, block, torch.zeros((), dtype=block.dtype))
        self.samples_seen += block.numel()
        if block.numel():
            self._tail = torch.cat([self._tail, block])[-(self.pad + 1) :]
        if self._buf is None:
            self._raw.append(block)
            self._raw_len += block.numel()
            if self._raw_len <= self.pad:
                return self._finish(self._empty())
            raw = torch.cat(self._raw)
            self._raw = []
            left = raw[1 : self.pad + 1].flip(0)  # reflect: x[pad], ..., x[1]
            self._buf = torch.cat([left, raw])
        else:
            self._buf = torch.cat([self._buf, block])
        return self._finish(self._frames())

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """The signal has ended: emit the remaining frames (right reflect padding), then reset."""
        if self._buf is None:
            if self._raw_len == 0:
                self.reset()
                return self._empty()
            raw = torch.cat(self._raw)
            self.reset()
            return self._normalise(self.offline(raw))  # too short to stream; the offline error applies
        right = self._tail[-self.pad - 1 : -1].flip(0)  # reflect: x[N-2], ..., x[N-1-pad]
        self._buf = torch.cat([self._buf, right])
        out = self._frames()
        width = self._base
        for stage in self._deltas:
            if out.shape[0]:
                out = stage.push(out)
            else:
                out = out.new_zeros(0, width + stage.channels)
            out = torch.cat([out, stage.flush(width)])
            width += stage.channels
        out = self._normalise(out)
        self.reset()
        return out

    # ------------------------------------------------------------------ internals

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self._base)

    def _frames(self) -> torch.Tensor:
        """Base features ``[k, n_mels or n_mfcc]`` of every complete window in the buffer."""
        buf = self._buf
        k = 0 if buf.numel() < self.n_fft else 1 + (buf.numel() - self.n_fft) // self.hop
        if k == 0:
            return self._empty()
        used = buf[: (k - 1) * self.hop + self.n_fft]
        self._buf = buf[k * self.hop :]
        spec = self._spec
        window = spec.window
        stft = torch.stft(
            used,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=spec.win_length,
            window=window,
            center=False,
            normalized=False,
            onesided=spec.onesided,
            return_complex=True,
        )  # [bins, k]
        power = stft.abs().pow(spec.power)
        mels = self._mel.mel_scale(power)  # [n_mels, k]
        fe = self.offline
        if fe.kind == "mfcc":
            mels = torch.log(mels + 1e-6)  # torchaudio MFCC(log_mels=True)
            feats = torch.matmul(mels.transpose(0, 1), fe.transform.dct_mat)  # [k, n_mfcc]
        else:
            feats = torch.log(mels + fe.log_offset).transpose(0, 1)
        return feats.contiguous()

    def _finish(self, base: torch.Tensor) -> torch.Tensor:
        out = base
        for stage in self._deltas:
            out = stage.push(out) if out.shape[0] else out.new_zeros(0, out.shape[1] + stage.channels)
        return self._normalise(out)

    def _normalise(self, feats: torch.Tensor) -> torch.Tensor:
        self.frames_emitted += feats.shape[0]
        if self.mean is None:
            return feats
        return (feats - self.mean) / self.std
