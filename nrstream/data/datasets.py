"""From a data-source name to a stream: the glue the env, engine and CLI share."""

from __future__ import annotations

import inspect
import json
import logging
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from nrstream.errors import DataFileError
from nrstream.plugin.registry import get_registry
from nrstream.stream.bank import Dataset, SampleBank
from nrstream.stream.noise import make_noise
from nrstream.stream.scene import Scene, linear_view
from nrstream.stream.schedule import ScheduleError
from nrstream.stream.settings import SettingError, StreamSettings
from nrstream.stream.stream import GapLengths, Stream

__all__ = [
    "load_dataset",
    "make_stream",
    "clear_dataset_cache",
    "check_finite",
    "source_options",
    "NonFiniteSamplesWarning",
]

log = logging.getLogger("nrstream.data.datasets")

_loaded: dict[str, Dataset] = {}


class NonFiniteSamplesWarning(UserWarning):
    """Samples holding NaN or infinite features were left out of a bank (``on_error: skip``)."""


def load_dataset(source: str, /, **config: Any) -> Dataset:
    """Build (once per process and config) the data set of a registered data source.

    Whatever plugin built it, every sample bank and noise bank is then checked for NaN and
    infinite features (:func:`check_finite`): a bad sample is refused with one line naming the
    source, split and sample index, or, with the option ``on_error: skip``, left out and counted
    (a warning, and ``info["non_finite_skipped"]``). ``on_error`` is a core option: it is passed on
    only to a source that takes it (the audio loaders apply the same rule to their files).
    """
    key = json.dumps([source, config], sort_keys=True, default=str)
    if key in _loaded:
        log.debug("data source %s %s: already loaded in this process", source, config)
    else:
        on_error = config.get("on_error", "raise")
        if on_error not in ("raise", "skip"):
            raise DataFileError(f"data source {source!r}: on_error must be 'raise' or 'skip', got {on_error!r}")
        registry = get_registry()
        options = source_options(registry.get("data_source", source).factory, config)
        dataset = registry.create("data_source", source, **options)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"data source {source!r} returned {type(dataset).__name__}, not nrstream.Dataset")
        dataset = check_finite(dataset, source, on_error)
        dataset.info.setdefault("source", source)
        dataset.info.setdefault("sizes", dataset.sizes())
        _loaded[key] = dataset
        log.debug("data source %s %s: %s", source, config, dataset.info.get("sizes"))
    return _loaded[key]


def clear_dataset_cache() -> None:
    _loaded.clear()


def source_options(factory: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` less the core's own ``on_error`` when the source's ``factory`` does not take it."""
    options = dict(options)
    if "on_error" not in options:
        return options
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return options
    if not any(p.name == "on_error" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        del options["on_error"]
    return options


def check_finite(dataset: Dataset, source: str, on_error: str = "raise") -> Dataset:
    """Refuse (``"raise"``) or leave out and count (``"skip"``) samples with NaN or infinite features.

    Checks every split and every noise bank in one ``isfinite`` pass each. A split left empty
    by skipping is refused all the same. Returns ``dataset`` itself when nothing was bad.

    Raises:
        DataFileError: one line naming the source, the split, how many samples and the first index.
    """
    banks = {("split", name): bank for name, bank in dataset.splits.items()}
    banks.update({("noise", name): bank for name, bank in dataset.noise.items()})
    kept: dict[tuple[str, str], SampleBank] = {}
    skipped: dict[str, int] = {}
    for (kind, name), bank in banks.items():
        bad = bank.non_finite()
        count = int(bad.sum())
        if count == 0:
            continue
        what = f"the {name} split" if kind == "split" else f"the {name} noise recordings"
        first = int(bad.nonzero()[0])
        message = (
            f"data source {source!r}: {count} of {len(bank)} samples of {what} hold NaN or infinite features "
            f"(first: sample {first})"
        )
        if on_error != "skip" or count == len(bank):
            fix = "fix the data (or set on_error: skip)" if on_error != "skip" else "nothing is left to use"
            raise DataFileError(f"{message}; {fix}")
        kept[(kind, name)] = bank.select(~bad)
        skipped[name if kind == "split" else f"noise {name}"] = count
        warnings.warn(f"{message}; skipped them (on_error: skip)", NonFiniteSamplesWarning, stacklevel=3)
    if not kept:
        return dataset
    splits = {n: kept.get(("split", n), b) for n, b in dataset.splits.items()}
    noise = {n: kept.get(("noise", n), b) for n, b in dataset.noise.items()}
    info = {**dataset.info, "non_finite_skipped": skipped}
    info.pop("sizes", None)
    return Dataset(splits, noise, info)


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
    speakers = _speakers(dataset, split, s)
    if background != "none":
        reference = dataset.splits["train"]
        sources = []
        # one background source per kind (and Gaussian scale) the phases use; one on a stationary stream
        for kind, scale in Scene.backgrounds_needed(s):
            stats = dataset.train_stats() if kind == "gaussian" else None
            scale = noise_scale if scale is None else scale
            try:
                source = make_noise(kind, reference, dataset.noise.get(split), scale=scale, seed=seed, stats=stats)
            except ValueError as exc:
                key = _phase_using(s, "background", kind)
                if key == "background":
                    raise
                raise SettingError(key, str(exc)) from None
            sources.append(source.to(device))
        scene = _scheduled(Scene, bank, sources, linear_view(dataset), s)
        gaps = GapLengths(gap_min, gap_max)
        return _scheduled(Stream, bank, None, num_lanes, gaps, seed=seed, shuffle=shuffle, scene=scene,
                          schedule=s.timeline, speakers=speakers)  # fmt: skip
    noise_source = None
    if s.max_gap > 0:
        # built on the CPU beside the training split, then moved: only the noise goes to the device
        reference = dataset.splits["train"]
        recordings = dataset.noise.get(split)
        stats = dataset.train_stats() if noise == "gaussian" else None
        noise_source = make_noise(noise, reference, recordings, scale=noise_scale, seed=seed, stats=stats).to(device)
    return _scheduled(
        Stream,
        bank,
        noise_source,
        num_lanes,
        GapLengths(gap_min, gap_max),
        seed=seed,
        shuffle=shuffle,
        schedule=s.timeline,
        speakers=speakers,
    )


def _speakers(dataset: Dataset, split: str, settings: StreamSettings) -> tuple[list[str], torch.Tensor] | None:
    """``(names, [N] speaker per sample)`` of ``split``, where a phase lists speakers (and the source has them)."""
    timeline = settings.timeline
    if timeline is None or all(p.speakers is None for p in timeline.phases):
        return None
    names, per_split = dataset.info.get("speakers"), dataset.info.get("sample_speaker") or {}
    if not names or split not in per_split:
        source = dataset.info.get("source", "this data source")
        try:
            timeline.speaker_indices(None, source=f"data source {source!r}")
        except ScheduleError as exc:
            raise SettingError(exc.key, exc.reason) from None
    return list(names), torch.as_tensor(per_split[split], dtype=torch.long)


def _phase_using(settings: StreamSettings, key: str, value: Any) -> str:
    """``schedule[i].stream.KEY`` of the first phase whose ``stream`` sets ``key`` to ``value``."""
    for i, phase in enumerate(settings.timeline.phases if settings.timeline is not None else ()):
        if phase.stream.get(key) == value:
            return f"schedule[{i}].stream.{key}"
    return key


def _scheduled(build: Any, *args: Any, **kwargs: Any) -> Any:
    """Build the stream; a schedule that does not fit the data is a :class:`SettingError` naming ``schedule[i].KEY``."""
    try:
        return build(*args, **kwargs)
    except ScheduleError as exc:
        raise SettingError(exc.key, exc.reason) from None
    except ValueError as exc:
        text = str(exc)
        if text.startswith("schedule["):
            key, _, reason = text.partition(": ")
            raise SettingError(key, reason) from None
        raise
