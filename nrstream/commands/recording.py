"""``nrstream data make-recording``: a long recording and its truth CSV (see :mod:`nrstream.deploy.recording`).

Registered under ``nrstream data`` by :mod:`nrstream.commands.data`; the work is done by
:func:`nrstream.deploy.recording.make_recording`. The scene options carry the
:class:`~nrstream.stream.settings.StreamSettings` names and defaults; ``--config CONFIG``
takes the source, its options and ``data.stream`` from an experiment config, so that the
recording is the same kind of signal as that config's training streams. Explicit options
win over the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from nrstream.commands.overrides import add_set_arguments, data_sets
from nrstream.errors import ConfigError
from nrstream.stream.settings import StreamSettings

__all__ = ["add_parser", "run_make_recording"]


def _trim(text: str) -> float | str | None:
    """``--trim-db``: a number, or none/null (keep the whole clip); ``keep`` (the default) keeps the setting."""
    word = text.strip().lower()
    if word in ("none", "null"):
        return None
    return "keep" if word == "keep" else float(text)


def add_parser(sub) -> None:
    """Add ``make-recording`` to the ``nrstream data`` sub-commands."""
    d = StreamSettings()
    p = sub.add_parser(
        "make-recording",
        help="write a long WAV of a split's words over its background noise, and a truth CSV",
        description="Words of one split spoken into a continuous background, an acoustic scene like the scene "
        "streams at the same data.stream settings (nrstream.deploy.recording). Defaults: StreamSettings', or the "
        "config's with --config; explicit options win.",
    )
    p.add_argument("source", nargs="?", help="audio data source, e.g. speech_commands or synth_speech (or --config)")
    p.add_argument(
        "--config",
        metavar="CONFIG",
        help="experiment config (file or bundled name): its data source, options and data.stream settings",
    )
    p.add_argument(
        "--like-agent",
        metavar="RUN",
        help="a trained agent (checkpoint folder, its best.pt/last.pt, or a run folder with one agent): its data "
        "source, options and the stream settings it was trained on (agent.json)",
    )
    p.add_argument("--split", default="test", help="train, validation or test (default test)")
    p.add_argument("--minutes", type=float, required=True, help="length of the recording")
    p.add_argument("--out", required=True, help="the WAV file to write (mono, the source's rate, 32-bit float)")
    p.add_argument("--truth", required=True, help="the ground-truth CSV to write (start_s,end_s,word,...)")
    p.add_argument(
        "--snr-db", type=float, nargs=2, metavar=("LOW", "HIGH"), help=f"word-to-background SNR (default {d.snr_db})"
    )
    p.add_argument(
        "--level-db", type=float, nargs=2, metavar=("LOW", "HIGH"), help=f"gain of the whole mix (default {d.level_db})"
    )
    p.add_argument("--gap-min", type=int, help=f"shortest gap, 10 ms frames (default {d.gap_min})")
    p.add_argument("--gap-max", type=int, help=f"longest gap, 10 ms frames (default {d.gap_max})")
    p.add_argument(
        "--trim-db",
        type=_trim,
        default="keep",
        help=f"voiced: frames within this of the loudest; none: whole clip (default {d.trim_db})",
    )
    p.add_argument("--tail", type=int, help=f"frames kept after each word's voiced part (default {d.tail})")
    add_set_arguments(
        p,
        "stream",
        f"--set snr_db=[0,10] --set tail=5 (names: {', '.join(StreamSettings.field_names())}; "
        "the flags above are the same settings)",
    )
    p.add_argument("--pcm16", action="store_true", help="16-bit PCM instead of 32-bit float (clips beyond full scale)")
    p.add_argument("--seed", type=int, default=0, help="seed of the words, gaps and mix (default: %(default)s)")
    p.set_defaults(func=run_make_recording)


def _source(args: argparse.Namespace, options: dict):
    """``(source, options, dataset or None, settings or None)`` from SOURCE / -o and ``--config``."""
    if args.like_agent is not None:
        if args.config is not None:
            raise ConfigError("make-recording: give --config or --like-agent, not both")
        from nrstream.artifacts.trained_agent import TrainedAgent

        agent = TrainedAgent.load(args.like_agent)
        settings = agent.stream.replace(background="recorded") if agent.stream is not None else None
        if args.source is not None:
            return args.source, options, None, settings
        return agent.source, {**dict(agent.data.get("options") or {}), **options}, None, settings
    if args.config is None:
        if args.source is None:
            raise ConfigError("make-recording needs a data SOURCE, --config CONFIG or --like-agent RUN")
        return args.source, options, None, None
    from nrstream.lab.config import load_config
    from nrstream.lab.loading import load_data

    config = load_config(args.config, check_plugins=False)
    settings = config.data.stream
    if args.source is not None:  # an explicit source replaces the config's, with -o options only
        return args.source, options, None, settings
    data = dataclasses.replace(config.data, options={**config.data.options, **options})
    loaded = load_data(dataclasses.replace(config, data=data))
    return loaded.source, loaded.options, loaded.dataset, settings


def _with_sets(settings: StreamSettings, changes: dict) -> StreamSettings:
    """``--set KEY=VALUE`` stream settings on top of ``settings``; a one-line error names the setting."""
    from nrstream.stream.settings import SettingError

    try:
        return settings.replace(**changes)
    except SettingError as exc:
        raise ConfigError(f"make-recording --set {exc.field}: {exc.reason}") from None


def run_make_recording(args: argparse.Namespace) -> int:
    from nrstream.deploy.recording import make_recording, recording_settings
    from nrstream.log import line_logger

    sets = data_sets(args.sets, "make-recording", "stream", ("options", "stream"))
    source, options, dataset, settings = _source(args, sets["options"])
    flags = {"gap_min": args.gap_min, "gap_max": args.gap_max, "snr_db": args.snr_db, "level_db": args.level_db}
    settings = recording_settings(settings, trim_db=args.trim_db, tail=args.tail, **flags)
    if sets["stream"]:
        settings = _with_sets(settings, sets["stream"])
    s = make_recording(
        source,
        minutes=args.minutes,
        out=args.out,
        truth=args.truth,
        split=args.split,
        settings=settings,
        subtype="PCM_16" if args.pcm16 else "FLOAT",
        seed=args.seed,
        options=options,
        dataset=dataset,
        notify=line_logger(logging.getLogger("nrstream.deploy.recording")),
    )
    print(f"{s.wav}: {s.seconds:.1f} s, {s.words} words from the {s.split} split of {s.source}; truth in {s.truth}")
    print(f"scene: {s.describe_settings()}, seed {s.settings['seed']}")
    if s.clipped_samples:
        print(f"nrstream: notice: {s.clipped_samples} samples clipped at full scale")
    return 0
