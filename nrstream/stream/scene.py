"""Acoustic-scene streams: a background under everything, samples mixed into it at an SNR.

The paper-style stream (``background: none``) puts each sample — a clip zero-padded to
1 s — between noise gaps, so "noise → clean clip → digital silence → noise" marks every
boundary. A scene stream has no such cue:

* **A continuous background.** Lane ``b`` reads its background without a break: segments
  of ``SEGMENT`` frames, each a run of a noise source's rows picked by hashing
  ``(seed, lane, segment)`` — switches unrelated to where samples lie.
* **Mixing in the linear domain.** Features are mapped to a linear domain
  (:class:`LinearView`), added, and mapped back. For log-mel features (``log(P + offset)``,
  standardised by the training split's statistics) the linear domain is mel power ``P``:
  ``x = log(level * (P_background + g * P_sample) + offset)``, standardised again — the usual
  additive approximation of mixing waveforms before the front end (the power of a sum is
  the sum of the powers plus a cross term that averages out over a mel band). For other
  features (toy, Fashion-MNIST rows) the features themselves are the linear domain
  (amplitudes): ``x = level * (background + sqrt(g) * sample)``.
* **SNR per sample.** ``g`` is set so that the sample's mean frame power over its voiced
  frames is ``snr`` dB above the background's mean frame power over the same frames, with
  ``snr`` uniform on ``snr_db`` (a counter hash, like every draw of the stream); frame power
  is the sum over bands of ``P`` (power view) or of ``x**2`` (amplitude view). ``level``
  (uniform in dB on ``level_db``) is drawn per lane and scales the whole mix.
* **Samples at their real extent.** A sample spans its voiced part — from the first to the
  last frame whose power is within ``trim_db`` of its loudest frame and clearly above the
  clip's own noise floor (:func:`voiced_extent`; power view only; the amplitude view keeps
  the whole sample) — plus ``tail`` frames, cut at the sample's
  length; its last frame is the decision frame. Frames after a clip's end (zero padding)
  are never read; padding inside the tail is silence in the power domain, so the frame is
  the background.

Which view a data set has is read from its ``info``: ``frontend`` (``kind == "log_mel"``,
``deltas == 0``, ``log_offset``) and ``normalization`` (``mean``, ``std``; absent or
``normalized: false`` when not standardised) — what the speech sources record. Others
(MFCC, deltas, images, the toy) get the amplitude view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nrstream.stream.bank import Dataset, SampleBank
from nrstream.stream.noise import NoiseSource, RecordedNoise
from nrstream.stream.settings import StreamSettings

__all__ = [
    "LinearView",
    "Scene",
    "linear_view",
    "voiced_extent",
    "SEGMENT",
    "FLOOR_QUANTILE",
    "FLOOR_DB",
    "FLOOR_SMOOTH",
]

#: background segment length in frames (a lane's background switches source every SEGMENT frames)
SEGMENT = 2000


@dataclass
class LinearView:
    """How features map to the linear domain in which signals add.

    ``power=True``: ``linear = exp(x * std + mean) - offset`` (mel power), frame power is the
    sum over bands. ``power=False``: ``linear = x`` (amplitudes), frame power is the sum of
    squares. ``mean``/``std`` are ``[F]``.
    """

    power: bool
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    offset: float = 0.0

    def to(self, device: torch.device | str) -> LinearView:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return LinearView(self.power, move(self.mean), move(self.std), self.offset)

    def to_linear(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` features → ``[..., F]`` linear values (float32)."""
        if not self.power:
            return x
        return torch.exp(x * self.std + self.mean).sub_(self.offset).clamp_min_(0.0)

    def from_linear_(self, linear: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_linear`, in place on ``linear``."""
        if not self.power:
            return linear
        return linear.add_(self.offset).log_().sub_(self.mean).div_(self.std)

    def frame_power(self, linear: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` linear values → ``[...]`` float64 frame power."""
        linear = linear.double()
        return linear.sum(-1) if self.power else linear.square().sum(-1)

    def gain(self, power_ratio: torch.Tensor) -> torch.Tensor:
        """The factor on linear values that scales frame power by ``power_ratio``."""
        return power_ratio if self.power else power_ratio.sqrt()


def linear_view(dataset: Dataset) -> LinearView:
    """The data set's linear view (see the module docstring), on the CPU."""
    info = dataset.info
    frontend = info.get("frontend") or {}
    if frontend.get("kind") != "log_mel" or frontend.get("deltas", 0) != 0:
        return LinearView(power=False)
    size = dataset.feature_size
    norm = info.get("normalization") if info.get("normalized", False) else None
    if info.get("normalized", False) and not norm:
        return LinearView(power=False)  # standardised, but the statistics to undo it are not known
    mean = torch.tensor(norm["mean"], dtype=torch.float32) if norm else torch.zeros(size)
    std = torch.tensor(norm["std"], dtype=torch.float32) if norm else torch.ones(size)
    return LinearView(True, mean, std, float(frontend.get("log_offset", 1e-6)))


def without_digital_silence(noise: RecordedNoise, view: LinearView) -> RecordedNoise:
    """The recordings with their digitally silent frames (every band below the log floor) cut out.

    Real recordings hold a few (a file's own zero padding, a muted stretch); a background
    must never go digitally silent, or the boundary cue comes back.
    """
    bank = noise.recordings
    kept = []
    for i in range(len(bank)):
        frames = bank.features[i, : int(bank.lengths[i])]
        loud = (view.to_linear(frames) > view.offset).any(-1)
        if loud.any():
            kept.append(frames[loud])
    if not kept:
        raise ValueError("the background recordings are digital silence throughout")
    if len(kept) == len(bank) and all(len(k) == int(n) for k, n in zip(kept, bank.lengths.tolist(), strict=True)):
        return noise
    return RecordedNoise(
        SampleBank.from_sequences([k.cpu() for k in kept], [0] * len(kept), bank.class_names).to(bank.device)
    )


#: the noise-floor rule of :func:`voiced_extent`: the floor is this quantile of a sample's frame powers ...
FLOOR_QUANTILE = 0.2
#: ... and a voiced frame's power, smoothed over FLOOR_SMOOTH frames, lies at least FLOOR_DB above it
FLOOR_DB = 6.0
FLOOR_SMOOTH = 5


def voiced_extent(
    bank: SampleBank, view: LinearView, trim_db: float | None, tail: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: first frame, frames kept, and voiced frames (each ``[N]`` int64).

    Voiced: from the first to the last *loud* frame (power view with ``trim_db``; else the
    whole sample). A frame is loud when its power is within ``trim_db`` of the sample's
    loudest frame **and** its power averaged over ``FLOOR_SMOOTH`` frames (centred) is at
    least ``FLOOR_DB`` above the sample's noise floor, the ``FLOOR_QUANTILE`` quantile of
    its frame powers. A clip with noise under the whole word (``synth_speech``'s default
    ``variation: hard``) has every frame within ``trim_db`` of the loudest, so the first
    condition alone made the extent the whole clip; the floor condition finds the word
    (``benchmarks/voiced_extent.py`` measures both). On a clip with digital silence beside
    the word (zero padding, clean renderings) the floor is zero and only ``trim_db`` acts,
    as before. Kept: the voiced frames plus ``tail``, cut at the sample's length.
    """
    lengths = bank.lengths
    if not view.power or trim_db is None:
        return torch.zeros_like(lengths), lengths.clone(), lengths.clone()
    valid = bank.valid_mask()
    power = view.frame_power(view.to_linear(bank.features)).masked_fill_(~valid, 0.0)  # [N, L]
    loud = power >= power.amax(1, keepdim=True) * 10.0 ** (-trim_db / 10.0)
    # the noise floor: the FLOOR_QUANTILE-th of each sample's valid frame powers (padding sorts last)
    ranked = power.masked_fill(~valid, math.inf).sort(1).values
    rank = ((lengths - 1).double() * FLOOR_QUANTILE).floor().long().clamp_min(0)
    floor = ranked.gather(1, rank[:, None])  # [N, 1]
    pad = FLOOR_SMOOTH // 2
    counts = torch.nn.functional.avg_pool1d(valid.double()[:, None], FLOOR_SMOOTH, 1, pad, count_include_pad=True)
    smooth = torch.nn.functional.avg_pool1d(power[:, None], FLOOR_SMOOTH, 1, pad, count_include_pad=True)
    smooth = (smooth / counts.clamp_min(1e-12))[:, 0]  # mean over the valid frames of each window
    loud &= smooth >= floor * 10.0 ** (FLOOR_DB / 10.0)
    loud &= valid
    steps = torch.arange(power.shape[1], device=power.device)
    first = torch.where(loud, steps, power.shape[1]).amin(1)
    last = torch.where(loud, steps, -1).amax(1)
    none = last < 0  # no loud frame (a silent sample): the whole sample
    first = torch.where(none, torch.zeros_like(first), first)
    voiced = torch.where(none, lengths, last - first + 1)
    kept = torch.minimum(voiced + tail, lengths - first)
    return first, kept, voiced


class Scene:
    """What a scene stream needs beside its events: linear tables, background, draws.

    Args:
        bank: the split the stream draws from.
        background: the source of the background (in feature space, like gap noise).
        view: the linear view of the features.
        settings: the stream's settings: ``snr_db``, ``level_db`` (``[low, high]`` in dB) and
            the sample extent rule ``trim_db``, ``tail`` (see :func:`voiced_extent`).
    """

    def __init__(self, bank: SampleBank, background: NoiseSource, view: LinearView, settings: StreamSettings) -> None:
        snr_db, level_db, trim_db, tail = settings.snr_db, settings.level_db, settings.trim_db, settings.tail
        if background.feature_size != bank.feature_size:
            raise ValueError(f"background has {background.feature_size} features, the bank {bank.feature_size}")
        device = bank.device
        self.view = view.to(device)
        if isinstance(background, RecordedNoise) and view.power:
            background = without_digital_silence(background, self.view)
        self.snr_db, self.level_db = (float(snr_db[0]), float(snr_db[1])), (float(level_db[0]), float(level_db[1]))
        self.trim_db, self.tail = trim_db, int(tail)
        self.first, self.kept, self.voiced = voiced_extent(bank, self.view, trim_db, tail)
        self.segment = max(SEGMENT, int(bank.lengths.max()))
        features = bank.features.reshape(-1, bank.feature_size)
        with torch.no_grad():
            self.sample_rows = self.view.to_linear(features).float().contiguous()
            self.background = background
            self.background_rows = self.view.to_linear(background.segment_table(self.segment).to(device)).float()
            # mean power of each sample's voiced frames; prefix sums of the background's frame power
            power = self.view.frame_power(self.sample_rows).view(len(bank), -1)
            steps = torch.arange(power.shape[1], device=device)
            voiced = (steps >= self.first[:, None]) & (steps < (self.first + self.voiced)[:, None])
            self.sample_power = (power * voiced).sum(1) / self.voiced.clamp_min(1)
            row_power = self.view.frame_power(self.background_rows)
            if not bool((row_power > 0).any()):
                raise ValueError("the background has no power (e.g. silence of zero features): the SNR is undefined")
            self.background_cumsum = torch.cat([row_power.new_zeros(1), torch.cumsum(row_power, 0)])

    def window_power(self, starts: torch.Tensor, frame: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """Mean background frame power over ``length`` frames from absolute frame ``frame``.

        ``starts(j)`` gives the segment table row of each lane's background segment ``j``;
        here ``starts`` is a pair ``(row of segment frame // S, row of the next segment)``,
        each shaped like ``frame``. ``length <= S``: at most two segments are touched.
        """
        s = self.segment
        cum = self.background_cumsum
        inside = frame % s
        first_part = torch.minimum(length, s - inside)
        a = starts[0] + inside
        total = cum[a + first_part] - cum[a]
        second = length - first_part
        total = total + cum[starts[1] + second] - cum[starts[1]]
        return total / length.clamp_min(1)

    def gains(self, snr_uniform: torch.Tensor, sid: torch.Tensor, background_power: torch.Tensor) -> torch.Tensor:
        """Linear gains of samples ``sid`` at SNRs drawn from uniforms in ``[0, 1)`` (float32)."""
        low, high = self.snr_db
        snr = low + (high - low) * snr_uniform
        ratio = 10.0 ** (snr / 10.0) * background_power / self.sample_power[sid].clamp_min(1e-30)
        return self.view.gain(ratio).float()

    def levels(self, uniform: torch.Tensor) -> torch.Tensor:
        """Gains on linear values for per-lane levels from uniforms in ``[0, 1)`` (float32)."""
        low, high = self.level_db
        return self.view.gain(10.0 ** ((low + (high - low) * uniform) / 10.0)).float()

    def mix(
        self, sample_row: torch.Tensor, background_row: torch.Tensor, gain: torch.Tensor, level: torch.Tensor
    ) -> torch.Tensor:
        """``[B, T, F]`` frames: ``level * (background + gain * sample)``, back in feature space.

        ``sample_row``, ``background_row``, ``gain``: ``[B, T]``; ``level``: ``[B, 1]``.
        """
        size = self.sample_rows.shape[1]
        x = self.background_rows.index_select(0, background_row.reshape(-1))
        sample = self.sample_rows.index_select(0, sample_row.reshape(-1))
        x.addcmul_(sample, gain.reshape(-1, 1))
        x.view(gain.shape[0], -1).mul_(level)  # one factor per lane: a row scale of [B, T * F]
        return self.view.from_linear_(x).view(*gain.shape, size)


def db(x: float | torch.Tensor) -> float | torch.Tensor:
    """Power ratio → dB."""
    return 10.0 * torch.log10(x) if isinstance(x, torch.Tensor) else 10.0 * math.log10(x)
