"""``nrstream data make-recording``: a long recording and its truth CSV (see :mod:`nrstream.recording`).

Registered under ``nrstream data`` by :mod:`nrstream.commands.data`; the work is done by
:func:`nrstream.recording.make_recording`.
"""

from __future__ import annotations

import argparse

import yaml

from nrstream.errors import ConfigError

__all__ = ["add_parser", "run_make_recording"]


def add_parser(sub) -> None:
    """Add ``make-recording`` to the ``nrstream data`` sub-commands."""
    p = sub.add_parser(
        "make-recording",
        help="write a long WAV of a split's words over its background noise, and a truth CSV",
        description="Words of one split spoken into a continuous background (nrstream.recording).",
    )
    p.add_argument("source", help="audio data source, e.g. speech_commands or synth_speech")
    p.add_argument("--split", default="test", help="train, validation or test (default test)")
    p.add_argument("--minutes", type=float, required=True, help="length of the recording")
    p.add_argument("--out", required=True, help="the WAV file to write (mono, the source's rate, 32-bit float)")
    p.add_argument("--truth", required=True, help="the ground-truth CSV to write (start_s,end_s,word,...)")
    p.add_argument("--snr-db", type=float, nargs=2, default=(0.0, 20.0), metavar=("LOW", "HIGH"))
    p.add_argument("--level-db", type=float, nargs=2, default=(-6.0, 6.0), metavar=("LOW", "HIGH"))
    p.add_argument("--gap-s", type=float, nargs=2, default=(0.5, 2.0), metavar=("LOW", "HIGH"))
    p.add_argument("--trim-db", type=float, default=40.0, help="voiced: frames within this of the loudest")
    p.add_argument("--tail", type=int, default=10, help="frames (10 ms) of each clip kept after its voiced part")
    p.add_argument("--pcm16", action="store_true", help="16-bit PCM instead of 32-bit float (clips beyond full scale)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="source option (YAML)")
    p.set_defaults(func=run_make_recording)


def run_make_recording(args: argparse.Namespace) -> int:
    from nrstream.recording import make_recording

    options = {}
    for pair in args.option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option must be KEY=VALUE, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    s = make_recording(
        args.source,
        minutes=args.minutes,
        out=args.out,
        truth=args.truth,
        split=args.split,
        snr_db=args.snr_db,
        level_db=args.level_db,
        gap_s=args.gap_s,
        trim_db=args.trim_db,
        tail=args.tail,
        subtype="PCM_16" if args.pcm16 else "FLOAT",
        seed=args.seed,
        options=options,
    )
    print(f"{s.wav}: {s.seconds:.1f} s, {s.words} words from the {s.split} split of {s.source}; truth in {s.truth}")
    if s.clipped_samples:
        print(f"nrstream: notice: {s.clipped_samples} samples clipped at full scale")
    return 0
