"""Noise sources for the gaps between samples.

A gap is addressed by a 32-bit ``key`` (drawn per gap by the stream) and the frame
offset inside the gap, so noise, like the rest of the stream, is a pure function of the
stream's seed and never depends on how the stream is read.

Besides ``frames(key, offset)``, each source can lay its frames out as one table of rows in
which a gap is a run of consecutive rows (:meth:`NoiseSource.segment_table`,
:meth:`NoiseSource.segment_start`): the stream then gathers sample and noise frames with one
row gather instead of building both and selecting.
"""

from __future__ import annotations

import torch

from nrstream.stream.bank import SampleBank

__all__ = ["NoiseSource", "GaussianNoise", "SilenceNoise", "RecordedNoise", "make_noise", "NOISE_KINDS"]


class NoiseSource:
    """Maps gap keys and in-gap offsets to feature frames."""

    feature_size: int

    def frames(self, key: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """``key``, ``offset``: int64 ``[...]`` → float32 frames ``[..., F]``."""
        raise NotImplementedError

    def segment_table(self, max_length: int) -> torch.Tensor:
        """``[R, F]`` rows such that, for a gap of at most ``max_length`` frames,
        ``frames(key, offset) == table[segment_start(key) + offset]``."""
        raise NotImplementedError

    def segment_start(self, key: torch.Tensor, max_length: int) -> torch.Tensor:
        """``key`` int64 ``[...]`` → the row of ``segment_table(max_length)`` holding the gap's
        first frame, int64 ``[...]``."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> NoiseSource:
        raise NotImplementedError


class GaussianNoise(NoiseSource):
    """Independent Gaussian frames, ``mean + scale * std * z`` per feature.

    Frames are read from a fixed pool of ``pool_size`` standard-normal frames drawn from
    ``seed``; each gap starts at a random pool position. Drawing per frame from a counter
    hash would cost F hashes per frame; a pool costs one gather.

    Args:
        mean, std: ``[F]`` feature statistics, usually the training bank's.
        scale: noise level relative to the data's spread.
    """

    def __init__(
        self, mean: torch.Tensor, std: torch.Tensor, scale: float = 1.0, seed: int = 0, pool_size: int = 16384
    ) -> None:
        if scale < 0:
            raise ValueError(f"noise scale must be >= 0, got {scale!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size!r}")
        self.feature_size = int(mean.shape[-1])
        self.mean, self.std, self.scale, self.seed = mean.float(), std.float(), float(scale), int(seed)
        generator = torch.Generator().manual_seed(self.seed)
        pool = torch.randn(pool_size, self.feature_size, generator=generator)
        self.pool = (self.mean + self.scale * self.std * pool).to(mean.device)

    def frames(self, key: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        index = (key + offset) % self.pool.shape[0]
        # index_select: a row gather, several times faster on the CPU than pool[index]
        return self.pool.index_select(0, index.reshape(-1)).view(*index.shape, self.feature_size)

    def segment_table(self, max_length: int) -> torch.Tensor:
        # the pool, then its first rows again, so that a gap never wraps inside the table
        size = self.pool.shape[0]
        rows = torch.arange(size + max(max_length - 1, 0), device=self.pool.device) % size
        return self.pool.index_select(0, rows)

    def segment_start(self, key: torch.Tensor, max_length: int) -> torch.Tensor:
        return key % self.pool.shape[0]

    def to(self, device: torch.device | str) -> GaussianNoise:
        moved = object.__new__(GaussianNoise)
        moved.__dict__.update(self.__dict__)
        moved.mean, moved.std, moved.pool = self.mean.to(device), self.std.to(device), self.pool.to(device)
        return moved


class SilenceNoise(NoiseSource):
    """A constant frame: zeros, or e.g. the features of a silent waveform."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value.float().reshape(-1)
        self.feature_size = int(self.value.shape[0])

    def frames(self, key: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return self.value.expand(*key.shape, self.feature_size)

    def segment_table(self, max_length: int) -> torch.Tensor:
        return self.value.expand(max(max_length, 1), self.feature_size).contiguous()

    def segment_start(self, key: torch.Tensor, max_length: int) -> torch.Tensor:
        return torch.zeros_like(key)

    def to(self, device: torch.device | str) -> SilenceNoise:
        return SilenceNoise(self.value.to(device))


class RecordedNoise(NoiseSource):
    """Segments cut from noise recordings (e.g. Speech Commands ``_background_noise_``).

    A gap picks one recording and a start inside it from its key, then reads on,
    wrapping around inside that recording if the gap outlasts it.
    """

    def __init__(self, recordings: SampleBank) -> None:
        self.recordings = recordings
        self.feature_size = recordings.feature_size

    def frames(self, key: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        bank = self.recordings
        which = key % len(bank)
        length = bank.lengths[which]
        position = ((key // len(bank)) + offset) % length
        return bank.frames(which, position)

    def _extended(self, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows per recording in the segment table and the row where each begins."""
        extended = self.recordings.lengths + max(max_length - 1, 0)
        return extended, torch.cumsum(extended, 0) - extended

    def segment_table(self, max_length: int) -> torch.Tensor:
        # each recording followed by its first frames again (as often as needed), so that a
        # gap's frames are consecutive rows however often it wraps round its recording
        bank = self.recordings
        extended, starts = self._extended(max_length)
        which = torch.repeat_interleave(torch.arange(len(bank), device=bank.device), extended)
        within = torch.arange(len(which), device=bank.device) - starts[which]
        return bank.frames(which, within % bank.lengths[which])

    def segment_start(self, key: torch.Tensor, max_length: int) -> torch.Tensor:
        bank = self.recordings
        which = key % len(bank)
        return self._extended(max_length)[1][which] + (key // len(bank)) % bank.lengths[which]

    def to(self, device: torch.device | str) -> RecordedNoise:
        return RecordedNoise(self.recordings.to(device))


NOISE_KINDS = ("gaussian", "silence", "recorded")


def make_noise(
    kind: str,
    reference: SampleBank,
    recordings: SampleBank | None = None,
    *,
    scale: float = 1.0,
    seed: int = 0,
    value: float | torch.Tensor | None = None,
    stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> NoiseSource:
    """Build a noise source by name.

    Args:
        kind: ``gaussian`` (statistics of ``reference``), ``silence`` (``value``, default
            zeros) or ``recorded`` (segments of ``recordings``).
        reference: the bank whose feature statistics set the Gaussian's mean and spread,
            and whose device the noise lives on.
        stats: ``reference.feature_stats()`` when the caller has it already.
    """
    if kind == "gaussian":
        mean, std = reference.feature_stats() if stats is None else stats
        return GaussianNoise(mean, std, scale=scale, seed=seed).to(reference.device)
    if kind == "silence":
        fill = torch.zeros(reference.feature_size) if value is None else torch.as_tensor(value, dtype=torch.float32)
        return SilenceNoise(fill.expand(reference.feature_size).clone()).to(reference.device)
    if kind == "recorded":
        if recordings is None:
            raise ValueError("noise 'recorded' needs noise recordings, and this data source provides none")
        return RecordedNoise(recordings).to(reference.device)
    raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
