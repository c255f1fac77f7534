"""The endless stream: ``B`` independent lanes of ``gap, sample, gap, sample, ...``.

Lane ``b``'s ``k``-th *event* is a noise gap followed by one sample. Every property of an
event (gap length, which sample, where its noise starts) is drawn by hashing
``(seed, lane, k)`` (:mod:`nrstream.counter_rng`), so the stream is a pure function of its
seed: any chunk size, any device, the same frames. A chunk is assembled by indexing —
``searchsorted`` over the cumulative event lengths — with no per-frame Python loop.

Samples are drawn without replacement: the ``j``-th draw of the whole stream
(``j = k * B + b``) is position ``j mod N`` of a fresh permutation per pass over the
bank, so ``ceil(N / B)`` samples per lane cover the split exactly once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from nrstream import counter_rng
from nrstream.bank import SampleBank
from nrstream.noise import NoiseSource

__all__ = ["GapLengths", "Chunk", "Stream"]

# salts that keep the independent draws of one event apart
_GAP, _NOISE, _ORDER = 1, 2, 3


@dataclass(frozen=True)
class GapLengths:
    """Noise gap lengths in frames, uniform on ``[min, max]`` (``0`` allowed)."""

    min: int = 0
    max: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and isinstance(self.max, int)) or not 0 <= self.min <= self.max:
            raise ValueError(f"gap lengths need integers 0 <= min <= max, got min={self.min!r}, max={self.max!r}")


@dataclass
class Chunk:
    """``T`` consecutive frames of every lane.

    Attributes:
        x: ``[B, T, F]`` float32 features.
        label: ``[B, T]`` int64, the class on sample frames, ``-1`` on noise frames.
        mask: ``[B, T]`` bool, ``m_t``: true on informative (sample) frames.
        start: ``[B, T]`` bool, first frame of a sample (where an oracle resets).
        end: ``[B, T]`` bool, last frame of a sample: the decision frame that is scored.
        sample_index: ``[B, T]`` int64, samples this lane has started so far (1 on its
            first sample, 0 on the gap before it).
        sample_id: ``[B, T]`` int64, the sample's row in its bank, ``-1`` on noise.
    """

    x: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    sample_index: torch.Tensor
    sample_id: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def length(self) -> int:
        return self.x.shape[1]

    def to(self, device: torch.device | str) -> Chunk:
        return Chunk(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index) -> Chunk:
        """Slice lanes and frames alike, e.g. ``chunk[:, 10:20]``."""
        return Chunk(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(chunks: list[Chunk], dim: int = 1) -> Chunk:
        return Chunk(**{f.name: torch.cat([getattr(c, f.name) for c in chunks], dim) for f in fields(Chunk)})

    @classmethod
    def from_info(cls, obs, info: dict) -> Chunk:
        """The chunk behind a vector env's ``(obs, info)``, e.g. to feed a loss plugin.

        ``obs [B, T, F]`` with info values ``[B, T]``, or ``obs [B, F]`` with ``[B]`` (one
        frame per step, ``-v1`` ids): a frame axis is added. Tensors or numpy arrays (on the
        observation's device). ``sample_id`` is ``-1`` where ``info`` carries none.
        """
        x = torch.as_tensor(obs)
        single_frame = x.dim() == 2

        def field(name: str) -> torch.Tensor:
            value = torch.as_tensor(info[name], device=x.device)
            return value[:, None] if single_frame else value

        label = field("label")
        sample_id = field("sample_id") if "sample_id" in info else torch.full_like(label, -1)
        return cls(
            x=x[:, None] if single_frame else x,
            label=label,
            mask=field("mask"),
            start=field("start"),
            end=field("end"),
            sample_index=field("sample_index"),
            sample_id=sample_id,
        )


class Stream:
    """An endless, batched stream over one sample bank.

    Args:
        bank: the split to draw samples from; the stream lives on its device.
        noise: fills the gaps; may be ``None`` only when ``gaps.max == 0``.
        num_lanes: ``B``, independent lanes read in lockstep.
        gaps: gap length distribution.
        seed: the whole stream is a function of ``(seed, B)`` and its inputs.
        shuffle: draw samples in a fresh random order per pass (else bank order).

    Example::

        >>> chunk = stream.next_chunk(100)
        >>> chunk.x.shape                    # (B, 100, F)
    """

    def __init__(
        self,
        bank: SampleBank,
        noise: NoiseSource | None,
        num_lanes: int,
        gaps: GapLengths = GapLengths(),
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if num_lanes < 1:
            raise ValueError(f"num_lanes must be >= 1, got {num_lanes!r}")
        if noise is None and gaps.max > 0:
            raise ValueError("a stream with noise gaps needs a noise source")
        if noise is not None and noise.feature_size != bank.feature_size:
            raise ValueError(f"noise has {noise.feature_size} features, the bank {bank.feature_size}")
        self.bank, self.noise, self.gaps = bank, noise, gaps
        self.num_lanes, self.seed, self.shuffle = int(num_lanes), int(seed), bool(shuffle)
        self.device = bank.device
        self._lanes = torch.arange(self.num_lanes, device=self.device)
        self._min_event = gaps.min + int(bank.lengths.min())
        self._orders: dict[int, torch.Tensor] = {}
        self.event = torch.zeros(self.num_lanes, dtype=torch.long, device=self.device)
        self.offset = torch.zeros(self.num_lanes, dtype=torch.long, device=self.device)
        self.frames_read = 0

    def __repr__(self) -> str:
        return (
            f"Stream(num_lanes={self.num_lanes}, samples={len(self.bank)}, gaps=[{self.gaps.min}, {self.gaps.max}], "
            f"seed={self.seed}, device={self.device}, frames_read={self.frames_read})"
        )

    @property
    def feature_size(self) -> int:
        return self.bank.feature_size

    @property
    def num_classes(self) -> int:
        return self.bank.num_classes

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._orders:
            n = len(self.bank)
            ids = torch.arange(n, device=self.device)
            if self.shuffle:
                keys = counter_rng.hash32(self.seed, _ORDER, epoch, ids)
                ids = torch.argsort(keys, stable=True)
            self._orders[epoch] = ids
        return self._orders[epoch]

    def _sample_ids(self, draw: torch.Tensor) -> torch.Tensor:
        n = len(self.bank)
        epoch, index = draw // n, draw % n
        first, last = torch.stack(torch.aminmax(epoch)).tolist()  # one device sync, not two
        for old in [e for e in self._orders if e < first]:
            del self._orders[old]
        orders = torch.cat([self._order(e) for e in range(first, last + 1)])
        return orders[(epoch - first) * n + index]

    def next_chunk(self, length: int) -> Chunk:
        """The next ``length`` frames of every lane; lanes keep their place across calls."""
        if length < 1:
            raise ValueError(f"chunk length must be >= 1, got {length!r}")
        steps = torch.arange(length, device=self.device)
        # enough events to cover the offset into the current one plus `length` more frames
        num_events = math.ceil(length / self._min_event) + 1
        lane = self._lanes[:, None]
        k = self.event[:, None] + torch.arange(num_events, device=self.device)
        gap = counter_rng.randint(self.gaps.min, self.gaps.max, self.seed, _GAP, lane, k)
        sid = self._sample_ids(k * self.num_lanes + lane)
        sample_len = self.bank.lengths[sid]
        event_len = gap + sample_len
        ends = torch.cumsum(event_len, dim=1)
        begins = ends - event_len

        rel = self.offset[:, None] + steps
        j = torch.searchsorted(ends, rel, right=True)
        offset = rel - begins.gather(1, j)
        gap_j = gap.gather(1, j)
        is_sample = offset >= gap_j
        position = offset - gap_j
        sample = sid.gather(1, j)

        x = self.bank.frames(sample, position.clamp_min(0))
        if self.noise is not None and self.gaps.max > 0:
            key = counter_rng.hash32(self.seed, _NOISE, lane, k).gather(1, j)
            x = torch.where(is_sample[..., None], x, self.noise.frames(key, offset))
        chunk = Chunk(
            x=x,
            label=torch.where(is_sample, self.bank.labels[sample], -1),
            mask=is_sample,
            start=is_sample & (position == 0),
            end=is_sample & (position == sample_len.gather(1, j) - 1),
            sample_index=self.event[:, None] + j + is_sample.long(),
            sample_id=torch.where(is_sample, sample, -1),
        )

        advance = torch.searchsorted(ends, (self.offset + length)[:, None], right=True)
        self.offset = self.offset + length - begins.gather(1, advance).squeeze(1)
        self.event = self.event + advance.squeeze(1)
        self.frames_read += length
        return chunk

    def state_dict(self) -> dict:
        """Where every lane stands; with the constructor arguments, enough to resume exactly."""
        return {"event": self.event.cpu(), "offset": self.offset.cpu(), "frames_read": self.frames_read}

    def load_state_dict(self, state: dict) -> None:
        self.event = state["event"].to(self.device)
        self.offset = state["offset"].to(self.device)
        self.frames_read = int(state["frames_read"])
