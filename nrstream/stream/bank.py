"""Sample banks: one split's feature sequences as padded tensors on one device.

A stream is built by indexing a bank, never by looping over Python lists, so the
bank stores every sample of a split in a single zero-padded tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["SampleBank", "Dataset", "SPLITS"]

SPLITS = ("train", "validation", "test")


@dataclass
class SampleBank:
    """Labelled feature sequences of one split.

    Attributes:
        features: ``[N, L_max, F]`` float32, zero-padded after each sample's length.
        lengths: ``[N]`` int64, frames per sample, each in ``[1, L_max]``.
        labels: ``[N]`` int64 class indices in ``[0, len(class_names))``.
        class_names: the label vocabulary, shared by all splits of a data set.
    """

    features: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.features.dim() != 3:
            raise ValueError(f"features must be [N, L_max, F], got shape {tuple(self.features.shape)}")
        n = self.features.shape[0]
        if self.lengths.shape != (n,) or self.labels.shape != (n,):
            raise ValueError(
                f"lengths and labels must be [N]={n}, got {tuple(self.lengths.shape)} and {tuple(self.labels.shape)}"
            )
        if n == 0:
            raise ValueError("a sample bank needs at least one sample")
        if int(self.lengths.min()) < 1 or int(self.lengths.max()) > self.features.shape[1]:
            raise ValueError("every length must lie in [1, L_max]")

    @classmethod
    def from_sequences(
        cls,
        sequences: Sequence[torch.Tensor],
        labels: Sequence[int] | torch.Tensor,
        class_names: list[str],
    ) -> SampleBank:
        """Pad a list of ``[T_i, F]`` tensors into one bank."""
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
        features = torch.nn.utils.rnn.pad_sequence(
            [torch.as_tensor(s, dtype=torch.float32) for s in sequences], batch_first=True
        )
        return cls(features, lengths, torch.as_tensor(labels, dtype=torch.long), list(class_names))

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_size(self) -> int:
        return self.features.shape[2]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device: torch.device | str) -> SampleBank:
        return SampleBank(self.features.to(device), self.lengths.to(device), self.labels.to(device), self.class_names)

    def frames(self, sample: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """``features[sample, position]``: frames ``[..., F]`` for index tensors of one shape.

        A row gather on the flattened bank; on the CPU it is several times faster than
        advanced indexing with two index tensors (``benchmarks/throughput.py``).
        """
        features = self.features
        if not features.is_contiguous():
            return features[sample, position]
        sample, position = torch.broadcast_tensors(sample, position)
        rows = (sample * features.shape[1] + position).reshape(-1)
        return features.view(-1, features.shape[2]).index_select(0, rows).view(*sample.shape, features.shape[2])

    def non_finite(self) -> torch.Tensor:
        """``[N]`` bool: true for samples holding a NaN or infinite feature value.

        One ``isfinite`` pass, in slices of 4096 samples to bound the temporary mask on large banks.
        """
        if self.features.is_floating_point() is False:
            return torch.zeros(len(self), dtype=torch.bool, device=self.device)
        return torch.cat([~torch.isfinite(part).flatten(1).all(1) for part in torch.split(self.features, 4096)])

    def select(self, keep: torch.Tensor) -> SampleBank:
        """The bank of the samples where ``keep [N]`` (bool) is true, in order."""
        return SampleBank(self.features[keep], self.lengths[keep], self.labels[keep], self.class_names)

    def valid_mask(self) -> torch.Tensor:
        """``[N, L_max]`` bool, true on real (not padding) frames."""
        steps = torch.arange(self.features.shape[1], device=self.device)
        return steps[None, :] < self.lengths[:, None]

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature mean and standard deviation over real frames, each ``[F]``.

        Frames holding a NaN or infinite value are left out (one bad sample must not make
        every normalised sample NaN); with no finite frame at all, mean 0 and std 1.
        """
        frames = self.features[self.valid_mask()].double()
        frames = frames[torch.isfinite(frames).all(1)]
        if len(frames) == 0:
            ones = torch.ones(self.feature_size, device=self.device)
            return torch.zeros_like(ones), ones
        return frames.mean(0).float(), frames.std(0, unbiased=False).clamp_min(1e-8).float()


@dataclass
class Dataset:
    """What a data source builds: the three splits, optional noise recordings, and provenance.

    Attributes:
        splits: ``{"train", "validation", "test"}`` -> bank; all share ``class_names``.
        noise: optional per-split banks of noise recordings (labels ignored), cut into
            stream gaps by :class:`nrstream.stream.noise.RecordedNoise`; train and test should
            come from disjoint material.
        info: provenance for ``results.json``: at least ``source``; sizes are added here.
    """

    splits: dict[str, SampleBank]
    noise: dict[str, SampleBank] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"a Dataset needs the splits {SPLITS}; missing {missing}")
        names = {tuple(b.class_names) for b in self.splits.values()}
        if len(names) != 1:
            raise ValueError("all splits of a Dataset must share one class vocabulary")

    @property
    def class_names(self) -> list[str]:
        return self.splits["train"].class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_size(self) -> int:
        return self.splits["train"].feature_size

    def train_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split's per-feature mean and std (``[F]`` each), computed once."""
        if "_train_stats" not in self.__dict__:
            self.__dict__["_train_stats"] = self.splits["train"].feature_stats()
        return self.__dict__["_train_stats"]

    def sizes(self) -> dict[str, int]:
        return {name: len(bank) for name, bank in self.splits.items()}
