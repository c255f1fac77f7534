"""Noise sources for the gaps between samples.

A gap is addressed by a 32-bit ``key`` (drawn per gap by the stream) and the frame
offset inside the gap, so noise, like the rest of the stream, is a pure function of the
stream's seed and never depends on how the stream is read.
"""

from __future__ import annotations

import torch

from nrstream.bank import SampleBank

__all__ = ["NoiseSource", "GaussianNoise", "SilenceNoise", "RecordedNoise", "make_noise", "NOISE_KINDS"]


class NoiseSource:
    """Maps gap keys and in-gap offsets to feature frames."""

    feature_size: int

    def frames(self, key: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """``key``, ``offset``: int64 ``[...]`` → float32 frames ``[..., F]``."""
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
