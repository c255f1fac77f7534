"""From a data-source name to a stream: the glue the env, engine and CLI share."""

from __future__ import annotations

import json
from typing import Any

import torch

from nrstream.plugin.registry import get_registry
from nrstream.stream.bank import Dataset
from nrstream.stream.noise import make_noise
from nrstream.stream.scene import Scene, linear_view
from nrstream.stream.stream import GapLengths, Stream

__all__ = ["load_dataset", "make_stream", "clear_dataset_cache"]

_loaded: dict[str, Dataset] = {}


def load_dataset(source: str, /, **config: Any) -> Dataset:
    """Build (once per process and config) the data set of a registered data source."""
    key = json.dumps([source, config], sort_keys=True, default=str)
    if key not in _loaded:
        dataset = get_registry().create("data_source", source, **config)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"data source {source!r} returned {type(dataset).__name__}, not nrstream.Dataset")
        dataset.info.setdefault("source", source)
        dataset.info.setdefault("sizes", dataset.sizes())
        _loaded[key] = dataset
    return _loaded[key]


def clear_dataset_cache() -> None:
    _loaded.clear()


def make_stream(
    dataset: Dataset,
    split: str,
    *,
    num_lanes: int,
    seed: int = 0,
    gap_min: int = 0,
    gap_max: int = 0,
    noise: str = "gaussian",
    noise_scale: float = 1.0,
    shuffle: bool = True,
    device: torch.device | str = "cpu",
    background: str = "none",
    snr_db: tuple[float, float] | list[float] = (0.0, 20.0),
    level_db: tuple[float, float] | list[float] = (-6.0, 6.0),
    trim_db: float | None = 40.0,
    tail: int = 10,
) -> Stream:
    """A stream over one split of ``dataset``.

    Args:
        split: ``train``, ``validation`` or ``test``.
        gap_min, gap_max: noise gap lengths in frames, uniform, 0 allowed.
        noise: ``gaussian`` (scaled to the training split's feature statistics),
            ``silence`` or ``recorded`` (the source's noise recordings for this split).
        background: ``none`` (the paper-style stream), or ``recorded``, ``gaussian``,
            ``silence`` (the same sources as ``noise``, running under everything): an
            acoustic scene (:mod:`nrstream.stream.scene`) with ``snr_db``, ``level_db``, ``trim_db``
            and ``tail`` as in :class:`nrstream.stream.settings.StreamSettings`.
    """
    if split not in dataset.splits:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(dataset.splits)}")
    bank = dataset.splits[split].to(device)
    if background != "none":
        reference = dataset.splits["train"]
        stats = dataset.train_stats() if background == "gaussian" else None
        source = make_noise(
            background, reference, dataset.noise.get(split), scale=noise_scale, seed=seed, stats=stats
        ).to(device)
        scene = Scene(bank, source, linear_view(dataset), tuple(snr_db), tuple(level_db), trim_db, tail)
        gaps = GapLengths(gap_min, gap_max)
        return Stream(bank, None, num_lanes, gaps, seed=seed, shuffle=shuffle, scene=scene)
    noise_source = None
    if gap_max > 0:
        # built on the CPU beside the training split, then moved: only the noise goes to the device
        reference = dataset.splits["train"]
        recordings = dataset.noise.get(split)
        stats = dataset.train_stats() if noise == "gaussian" else None
        noise_source = make_noise(noise, reference, recordings, scale=noise_scale, seed=seed, stats=stats).to(device)
    return Stream(bank, noise_source, num_lanes, GapLengths(gap_min, gap_max), seed=seed, shuffle=shuffle)
