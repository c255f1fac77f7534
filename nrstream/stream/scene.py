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
* **Phases change the scene** (:mod:`nrstream.stream.schedule`). On a scheduled stream a
  phase may change ``snr_db``, ``level_db`` and the ``background`` kind (and, for a
  Gaussian background, its ``noise_scale``). Each follows the phase of the stream *event*
  (a gap and its sample: the phase of the frame the event begins at, :class:`Chunk.phase
  <nrstream.stream.stream.Chunk>`): a sample's SNR is drawn from its event's phase's range
  (the same hashed uniform as on a stationary stream, mapped into that range); the background
  under an event's frames is its phase's kind (every kind's table is read at the same
  position: the lane's segment hash picks a row in each); a lane's level over an event's
  frames is ``low + (high - low) * u_b`` of that phase's ``level_db``, ``u_b`` drawn once per
  lane, so a level shift moves every lane while each keeps its place in the range. A blend
  therefore mixes the two phases' domains event by event, with the blend's fraction, as it
  mixes class sets; the level and background change where an event (its gap) begins, never
  inside a sample. A schedule that changes none of these reads the stationary scene's
  draws, byte for byte.
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
from collections.abc import Sequence
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
        background: the source of the background (in feature space, like gap noise); on a
            schedule whose phases change the background, one source per entry of
            :meth:`backgrounds_needed` (in its order).
        view: the linear view of the features.
        settings: the stream's settings: ``snr_db``, ``level_db`` (``[low, high]`` in dB), the
            sample extent rule ``trim_db``, ``tail`` (see :func:`voiced_extent`), and the
            schedule whose phases may change the first two and the background
            (:meth:`StreamSettings.phase_scenes`).
    """

    def __init__(
        self,
        bank: SampleBank,
        background: NoiseSource | Sequence[NoiseSource],
        view: LinearView,
        settings: StreamSettings,
    ) -> None:
        trim_db, tail = settings.trim_db, settings.tail
        phases = settings.phase_scenes()
        needed = self.backgrounds_needed(settings)
        sources = [background] if isinstance(background, NoiseSource) else list(background)
        if len(sources) != len(needed):
            raise ValueError(f"the scene needs {len(needed)} background sources ({needed}), got {len(sources)}")
        for source in sources:
            if source.feature_size != bank.feature_size:
                raise ValueError(f"background has {source.feature_size} features, the bank {bank.feature_size}")
        device = bank.device
        self.view = view.to(device)
        sources = [
            without_digital_silence(s, self.view) if isinstance(s, RecordedNoise) and view.power else s for s in sources
        ]
        # per phase: its background source, SNR range and level range; tables only where phases differ
        self.phase_background = torch.tensor([needed.index(key) for key, _, _ in phases], device=device)
        self.snr_db, self.level_db = phases[0][1], phases[0][2]
        snr, level = [p[1] for p in phases], [p[2] for p in phases]
        as_table = lambda ranges: torch.tensor(ranges, dtype=torch.float64, device=device)  # noqa: E731
        self.snr_table = None if len(set(snr)) == 1 else as_table(snr)  # [P, 2] dB
        self.level_table = None if len(set(level)) == 1 else as_table(level)
        self.trim_db, self.tail = trim_db, int(tail)
        self.first, self.kept, self.voiced = voiced_extent(bank, self.view, trim_db, tail)
        self.segment = max(SEGMENT, int(bank.lengths.max()))
        features = bank.features.reshape(-1, bank.feature_size)
        with torch.no_grad():
            self.sample_rows = self.view.to_linear(features).float().contiguous()
            self.background, self.backgrounds = sources[0], sources
            # every source's segment table, one after another: source j's rows start at background_base[j]
            tables = [self.view.to_linear(s.segment_table(self.segment).to(device)).float() for s in sources]
            self.background_base = [0]
            for table in tables[:-1]:
                self.background_base.append(self.background_base[-1] + table.shape[0])
            self.background_rows = tables[0] if len(tables) == 1 else torch.cat(tables)
            # mean power of each sample's voiced frames; prefix sums of the background's frame power
            power = self.view.frame_power(self.sample_rows).view(len(bank), -1)
            steps = torch.arange(power.shape[1], device=device)
            voiced = (steps >= self.first[:, None]) & (steps < (self.first + self.voiced)[:, None])
            self.sample_power = (power * voiced).sum(1) / self.voiced.clamp_min(1)
            row_power = self.view.frame_power(self.background_rows)
            sizes = [table.shape[0] for table in tables]
            self._require_power(row_power, sizes, needed, phases, settings)
            self.background_cumsum = torch.cat([row_power.new_zeros(1), torch.cumsum(row_power, 0)])

    def _require_power(
        self,
        row_power: torch.Tensor,
        sizes: list[int],
        needed: list[tuple[str, float | None]],
        phases: list[tuple[tuple[str, float | None], tuple[float, float], tuple[float, float]]],
        settings: StreamSettings,
    ) -> None:
        """Every background source needs some power, or the SNR is undefined; the error names the phase that set it.

        ``needed`` as :meth:`backgrounds_needed` and ``phases`` as :meth:`StreamSettings.phase_scenes` give them.
        """
        for j, (base, size) in enumerate(zip(self.background_base, sizes, strict=True)):
            if bool((row_power[base : base + size] > 0).any()):
                continue
            reason = "the background has no power (e.g. silence of zero features): the SNR is undefined"
            user = next(i for i, (key, _, _) in enumerate(phases) if key == needed[j])
            if settings.timeline is not None and "background" in settings.timeline.phases[user].stream:
                raise ValueError(f"schedule[{user}].stream.background: {needed[j][0]}: {reason}")
            raise ValueError(reason)

    @staticmethod
    def backgrounds_needed(settings: StreamSettings) -> list[tuple[str, float | None]]:
        """The distinct ``(kind, noise_scale or None)`` backgrounds of the phases, in order of first use."""
        return list(dict.fromkeys(key for key, _, _ in settings.phase_scenes()))

    def background_starts(self, key: torch.Tensor) -> torch.Tensor:
        """``[S, ...]``: per background source, the row of its segment with hash ``key`` (``[...]`` int64)."""
        pairs = zip(self.backgrounds, self.background_base, strict=True)
        return torch.stack([s.segment_start(key, self.segment) + base for s, base in pairs])

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

    def gains(
        self,
        snr_uniform: torch.Tensor,
        sid: torch.Tensor,
        background_power: torch.Tensor,
        phase: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Linear gains of samples ``sid`` at SNRs drawn from uniforms in ``[0, 1)`` (float32).

        ``phase`` (like ``sid``): each sample's schedule phase, whose ``snr_db`` range it is
        drawn from; needed when phases change the range.
        """
        if self.snr_table is None:
            low, high = self.snr_db
        else:
            if phase is None:
                raise ValueError("the phases change snr_db: gains need each sample's phase")
            low, high = self.snr_table[phase].unbind(-1)
        snr = low + (high - low) * snr_uniform
        ratio = 10.0 ** (snr / 10.0) * background_power / self.sample_power[sid].clamp_min(1e-30)
        return self.view.gain(ratio).float()

    def levels(self, uniform: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` gains on linear values: per lane (uniform ``[B]`` in ``[0, 1)``) and phase (float32).

        ``P`` is 1 unless the phases change ``level_db``: then column ``p`` is the lane's level
        in phase ``p``'s range (the same uniform, so each lane keeps its place in the range).
        """
        low, high = self.level_db if self.level_table is None else self.level_table.unbind(1)  # floats or [P]
        return self.view.gain(10.0 ** ((low + (high - low) * uniform[:, None]) / 10.0)).float()

    def mix(
        self, sample_row: torch.Tensor, background_row: torch.Tensor, gain: torch.Tensor, level: torch.Tensor
    ) -> torch.Tensor:
        """``[B, T, F]`` frames: ``level * (background + gain * sample)``, back in feature space.

        ``sample_row``, ``background_row``, ``gain``: ``[B, T]``; ``level``: ``[B, 1]`` (one per
        lane) or ``[B, T]`` (per frame: phases that change ``level_db``).
        """
        size = self.sample_rows.shape[1]
        x = self.background_rows.index_select(0, background_row.reshape(-1))
        sample = self.sample_rows.index_select(0, sample_row.reshape(-1))
        x.addcmul_(sample, gain.reshape(-1, 1))
        if level.shape[1] == 1:
            x.view(gain.shape[0], -1).mul_(level)  # one factor per lane: a row scale of [B, T * F]
        else:
            x.mul_(level.reshape(-1, 1))
        return self.view.from_linear_(x).view(*gain.shape, size)


def db(x: float | torch.Tensor) -> float | torch.Tensor:
    """Power ratio → dB."""
    return 10.0 * torch.log10(x) if isinstance(x, torch.Tensor) else 10.0 * math.log10(x)
