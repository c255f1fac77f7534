"""``toy``: a tiny synthetic data source that a recurrent network learns in seconds.

Each class has a random prototype sequence; a sample is its prototype, cut to a random
length near the class's own length, plus Gaussian jitter. Used by fast tests and as the
default of ``nrstream/Toy-v0``.
"""

from __future__ import annotations

import torch

from nrstream import hookimpl
from nrstream.stream.bank import Dataset, SampleBank


def load_toy(
    *,
    num_classes: int = 4,
    feature_size: int = 8,
    min_length: int = 6,
    max_length: int = 12,
    jitter: float = 0.5,
    train_size: int = 512,
    validation_size: int = 128,
    test_size: int = 256,
    seed: int = 0,
) -> Dataset:
    """Build the toy data set; every split is a function of ``seed`` alone.

    Args:
        num_classes: classes, each with one prototype ``[max_length, feature_size]``.
        min_length, max_length: sample lengths in frames (inclusive).
        jitter: standard deviation of the per-frame Gaussian added to the prototype.
    """
    if num_classes < 2:
        raise ValueError(f"toy needs num_classes >= 2, got {num_classes!r}")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"toy needs 1 <= min_length <= max_length, got {min_length!r}, {max_length!r}")
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, max_length, feature_size, generator=generator)
    class_length = torch.randint(min_length, max_length + 1, (num_classes,), generator=generator)

    def split(size: int) -> SampleBank:
        labels = torch.randint(0, num_classes, (size,), generator=generator)
        spread = torch.randint(-2, 3, (size,), generator=generator)
        lengths = (class_length[labels] + spread).clamp(min_length, max_length)
        features = prototypes[labels] + jitter * torch.randn(size, max_length, feature_size, generator=generator)
        features *= (torch.arange(max_length)[None, :] < lengths[:, None])[..., None]
        return SampleBank(features, lengths, labels, [f"class_{i}" for i in range(num_classes)])

    splits = {"train": split(train_size), "validation": split(validation_size), "test": split(test_size)}
    return Dataset(splits, info={"source": "toy", "seed": seed})


@hookimpl
def nrstream_register_data_sources(register):
    register("toy", load_toy)
