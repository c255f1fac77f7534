"""From a data-source name to a stream: the glue the env, engine and CLI share."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import torch

from nrstream.plugin.registry import get_registry
from nrstream.stream.bank import Dataset
from nrstream.stream.noise import make_noise
from nrstream.stream.scene import Scene, linear_view
from nrstream.stream.settings import StreamSettings
from nrstream.stream.stream import GapLengths, Stream

__all__ = ["load_dataset", "make_stream", "clear_dataset_cache"]

log = logging.getLogger("nrstream.data.datasets")

_loaded: dict[str, Dataset] = {}


def load_dataset(source: str, /, **config: Any) -> Dataset:
    """Build (once per process and config) the data set of a registered data source."""
    key = json.dumps([source, config], sort_keys=True, default=str)
    if key in _loaded:
        log.debug("data source %s %s: already loaded in this process", source, config)
    else:
        dataset = get_registry().create("data_source", source, **config)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"data source {source!r} returned {type(dataset).__name__}, not nrstream.Dataset")
        dataset.info.setdefault("source", source)
        dataset.info.setdefault("sizes", dataset.sizes())
        _loaded[key] = dataset
        log.debug("data source %s %s: %s", source, config, dataset.info.get("sizes"))
    return _loaded[key]


def clear_dataset_cache() -> None:
    _loaded.clear()


def make_stream(
    dataset: Dataset,
    split: str,
    settings: StreamSettings | Mapping[str, Any] | None = None,
    *,
    num_lanes: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    shuffle: bool = True,
    **changes: Any,
) -> Stream:
    """A stream over one split of ``dataset``, laid out as ``settings`` say.

    Args:
        split: ``train``, ``validation`` or ``test``.
        settings: :class:`~nrstream.stream.settings.StreamSettings`, a mapping of some of its
            fields, or ``None``; missing fields keep StreamSettings' defaults (gaps of 5..30
            frames of Gaussian noise, no background). Gaps are filled by ``noise``; with a
            ``background`` the stream is an acoustic scene (:mod:`nrstream.stream.scene`).
        num_lanes: ``B``, the independent lanes.
        seed: the stream is a pure function of it (and ``B``).
        device: where the chunks' tensors live.
        shuffle: draw samples in a seeded random order (``False``: bank order).
        changes: single fields on top of ``settings`` (``gap_min=0, gap_max=0``).

    Raises:
        SettingError: an unknown or invalid setting (one line naming it).
        ValueError: an unknown split.
    """
    s = StreamSettings.coerce(settings, **changes)
    gap_min, gap_max, noise, noise_scale, background = s.gap_min, s.gap_max, s.noise, s.noise_scale, s.background
    if split not in dataset.splits:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(dataset.splits)}")
    bank = dataset.splits[split].to(device)
    if background != "none":
        reference = dataset.splits["train"]
        stats = dataset.train_stats() if background == "gaussian" else None
        source = make_noise(
            background, reference, dataset.noise.get(split), scale=noise_scale, seed=seed, stats=stats
        ).to(device)
        scene = Scene(bank, source, linear_view(dataset), s)
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
