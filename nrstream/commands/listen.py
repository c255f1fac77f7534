"""``nrstream listen RUN AUDIO [--agent ARCH/LOSS ...]``: detections on a recording.

The work is :mod:`nrstream.deploy.listen`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nrstream.commands.export import RUN_HELP
from nrstream.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "listen",
        help="run trained agents, never reset, over a recording and print the words they detect",
        description="Stream AUDIO (a sound file, or '-' for raw 16 kHz s16le mono PCM on stdin) through the "
        "agents of a run folder (or the agent of a checkpoint), carrying their state forever, and print one line "
        "per detection.",
    )
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("audio", metavar="AUDIO", help="a WAV (any length, rate, channels) or '-' for stdin")
    p.add_argument(
        "--agent",
        action="append",
        metavar="ARCH/LOSS",
        help="agent of the run (repeatable; optional when RUN holds one agent, as a checkpoint does)",
    )
    p.add_argument("--truth", help="truth CSV (start_s,end_s,word): score the detections and draw a DET figure")
    p.add_argument("--det", help="where the DET figure goes (default: AUDIO with .det.png; det.png for stdin)")
    p.add_argument(
        "--format", choices=("table", "jsonl"), default="table", help="one line per detection (default: %(default)s)"
    )
    p.add_argument(
        "--threshold", type=float, default=0.7, help="smoothed top posterior needed to fire (default: %(default)s)"
    )
    p.add_argument(
        "--smooth-frames", type=int, default=10, help="posterior moving-average window, frames (default: %(default)s)"
    )
    p.add_argument(
        "--max-entropy",
        type=float,
        default=0.5,
        help="normalised entropy above which: don't know (default: %(default)s)",
    )
    p.add_argument(
        "--refractory", type=float, default=0.5, help="seconds after a detection with no other (default: %(default)s)"
    )
    p.add_argument(
        "--frames-per-call",
        type=int,
        default=None,
        metavar="K",
        help="call the model on K frames (K x 10 ms) at a time, state carried: a decision waits up to K - 1 hops "
        "(default: one call per 1 s audio block)",
    )
    p.set_defaults(func=run)


def _line(fmt: str, label: str, d, many: bool) -> str:
    if fmt == "jsonl":
        line = {"agent": label, "time_s": d.time_s, "word": d.word, "confidence": round(d.confidence, 4)}
        if d.after_reset:
            line["after_reset"] = True
        return _json(line)
    who = f"{label:<14} " if many else ""
    note = "  (after a state reset)" if d.after_reset else ""
    return f"{who}{d.time_s:10.2f} s  {d.word:<12} {d.confidence:.3f}{note}"


def _json(value) -> str:
    """Strict JSON, one line: NaN and infinities become ``null``, as in ``results.json``."""
    from nrstream.artifacts.results import json_safe

    return json.dumps(json_safe(value), allow_nan=False)


def run(args: argparse.Namespace) -> int:
    from nrstream.artifacts.run_folder import check_output_files
    from nrstream.artifacts.trained_agent import TrainedAgent
    from nrstream.deploy.detector import DetectorSettings, plot_det
    from nrstream.deploy.listen import audio_blocks, listen, score_listening
    from nrstream.deploy.recording import read_truth

    try:
        settings = DetectorSettings(
            threshold=args.threshold,
            smooth_frames=args.smooth_frames,
            max_entropy=args.max_entropy,
            refractory_s=args.refractory,
        )
    except ValueError as exc:
        raise ConfigError(f"listen: {exc}") from None
    agents = [TrainedAgent.load(args.run, label) for label in dict.fromkeys(args.agent or [None])]
    truth = read_truth(args.truth, [w for a in agents for w in a.class_names]) if args.truth else None
    det = (
        Path(args.det)
        if args.det
        else (Path("det.png") if args.audio == "-" else Path(args.audio).with_suffix(".det.png"))
    )
    if truth is not None:  # the DET figure is written at the end: its path is checked now
        check_output_files({"--det": det}, {"AUDIO": args.audio, "--truth": args.truth, "RUN": args.run})
    rates = {a.frontend.get("sample_rate", 16000) for a in agents}
    if len(rates) != 1:
        raise ConfigError(f"the agents expect different sample rates {sorted(rates)}; listen to them one at a time")
    blocks = audio_blocks(args.audio, rates.pop())  # a file is opened and checked here
    many = len(agents) > 1
    if args.format == "table":
        print(f"{'agent':<14} " * many + f"{'time':>12}  {'word':<12} confidence")

    def show(label, d):
        print(_line(args.format, label, d, many), flush=True)

    result = listen(
        agents, blocks, settings, record=truth is not None, on_detection=show, frames_per_call=args.frames_per_call
    )
    if truth is None:
        return 0
    scored = score_listening(agents, result, truth, settings)
    curves, rows = {s.label: s.det for s in scored}, [(s.label, s.score) for s in scored]
    plot_det(curves, det, title=f"{Path(args.audio).name if args.audio != '-' else 'stdin'}: DET")
    if args.format == "jsonl":
        for label, s in rows:
            line = {"agent": label, "score": s.to_dict(), "threshold": settings.threshold}
            line.update(unusable_s=round(result.unusable_s, 4), state_resets=len(result.resets.get(label, [])))
            print(_json(line))
    else:
        print(
            f"\nscore at threshold {settings.threshold} over {result.seconds / 60:.1f} min "
            f"({rows[0][1].targets} target words):"
        )
        print(
            f"{'agent':<14} {'hits':>5} {'misses':>6} {'false alarms':>12} {'recall':>7} "
            f"{'precision':>9} {'FA/hour':>8}"
        )
        for label, s in rows:
            print(
                f"{label:<14} {s.hits:>5} {s.misses:>6} {s.false_alarms:>12} {s.recall:>7.3f} {s.precision:>9.3f} "
                f"{s.false_alarms_per_hour:>8.1f}"
            )
        if result.unusable_s or any(result.resets.values()):
            resets = sum(len(v) for v in result.resets.values())
            print(
                f"unusable audio: {result.unusable_s:.2f} s of {result.seconds:.1f} s replaced by silence; "
                f"state resets: {resets}"
            )
    print(f"nrstream: DET figure: {det}", file=sys.stderr)
    return 0
