"""The data an experiment runs on: ``data.source``, or ``data.fallback`` when the source finds no data.

Shared by the experiment, ``nrstream train``, ``nrstream make-recording`` and the executors' workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from nrstream.data.datasets import load_dataset
from nrstream.errors import ConfigError, DataNotFoundError
from nrstream.lab.config import Config
from nrstream.log import line_logger
from nrstream.stream.bank import Dataset
from nrstream.stream.schedule import ScheduleError

__all__ = ["LoadedData", "load_data"]


@dataclass
class LoadedData:
    """The data set that served, and where it came from (for ``results.json``)."""

    dataset: Dataset
    source: str
    options: dict
    fallback_used: bool = False
    reason: str = ""

    def describe(self) -> dict:
        info = dict(self.dataset.info)
        info.update(
            source=self.source,
            options=self.options,
            fallback_used=self.fallback_used,
            sizes=self.dataset.sizes(),
            num_classes=self.dataset.num_classes,
            feature_size=self.dataset.feature_size,
            noise_recordings={k: len(v) for k, v in self.dataset.noise.items()},
        )
        if self.fallback_used:
            info["fallback_reason"] = self.reason
        return info


def load_data(config: Config, notify: Callable[[str], None] | None = None) -> LoadedData:
    """Load ``data.source``; when it finds no data, ``data.fallback`` (with a notice)."""
    data = config.data
    try:
        loaded = LoadedData(load_dataset(data.source, **data.options), data.source, dict(data.options))
    except DataNotFoundError as exc:
        if data.fallback == "none":
            raise
        (notify or _stderr)(
            f"nrstream: notice: data source {data.source!r} found no data; using fallback {data.fallback!r} "
            f"({str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        )
        dataset = load_dataset(data.fallback, **data.fallback_options)
        loaded = LoadedData(dataset, data.fallback, dict(data.fallback_options), True, str(exc))
    if data.stream.noise == "recorded" and data.stream.gap_max > 0 and not loaded.dataset.noise:
        raise ConfigError(
            f"{config.path}: data.stream.noise: 'recorded' needs noise recordings, and data source "
            f"{loaded.source!r} provides none; use 'gaussian' or 'silence'"
        )
    timeline = data.stream.timeline
    # the stream's background, then each phase's own: 'recorded' needs the source's noise recordings
    backgrounds = [("background", data.stream.background, "'gaussian' or 'none'")]
    backgrounds += [(f"schedule[{i}].stream.background", p.stream.get("background"), "'gaussian'")
                    for i, p in enumerate(timeline.phases if timeline is not None else ())]  # fmt: skip
    for key, kind, instead in backgrounds:
        if kind == "recorded" and not loaded.dataset.noise:
            raise ConfigError(
                f"{config.path}: data.stream.{key}: 'recorded' needs noise recordings, and data source "
                f"{loaded.source!r} provides none; use {instead}"
            )
    if timeline is not None:  # class and speaker names can only be checked against the data set that served
        info = loaded.dataset.info
        try:
            timeline.class_indices(loaded.dataset.splits["train"].class_names)
            timeline.speaker_indices(info.get("speakers"), source=f"data source {loaded.source!r}")
        except ScheduleError as exc:
            raise ConfigError(f"{config.path}: data.stream.{exc.key}: {exc.reason}") from None
    return loaded


_stderr = line_logger(logging.getLogger("nrstream.lab.loading"))
