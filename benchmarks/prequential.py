"""Prequential throughput: frames per second of the prequential loop against the plain training loop.

Both loops run the same GRU, loss plugin (``--loss``, default ``ce_kl``), AdamW, gradient-norm
clip, lanes and chunk length on the same stream settings: a non-stationary stream (a
class-incremental schedule of ``--phases`` phases of ``--phase-frames`` frames, half the
classes each). The cases:

* ``train``: :func:`nrstream.lab.engine.train_step` (the engine's step: read a chunk, forward,
  loss, backward, clip, AdamW, scheduler, detach) on the scheduled stream;
* ``prequential``: the prequential loop's body (:mod:`nrstream.lab.prequential`): read a chunk,
  :func:`~nrstream.lab.prequential.prequential_step` (forward = the scored prediction, loss,
  backward, clip, optimiser step, detach), and the ``prequential_accuracy`` metric's update;
* ``train_stationary``: the engine's step on the same stream without its schedule (what the
  schedule's draws cost the stream).

The cases run in interleaved blocks of ``--seconds`` (``--repeats`` rounds, the order reversed
every other round; warm-up calls not timed; ``benchmarks/_common.py``); ``prequential/train`` is
taken per round and reported as its median with the min-max spread, wall clock and per CPU
second. Target: >= 0.8, met when the whole spread clears it.

    python benchmarks/prequential.py
    python benchmarks/prequential.py --device cuda --json results/prequential.json
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from _common import (
    add_common_options,
    interleave,
    loadavg_1min,
    machine,
    print_table,
    ratio,
    ratio_rows,
    setup,
    verdict,
    write_json,
)

from nrstream import Agent
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.lab.config import ContinualConfig, TrainConfig
from nrstream.lab.engine import make_optimizer, make_scheduler, train_step
from nrstream.lab.prequential import make_online_optimizer, prequential_step
from nrstream.plugin.protocols import prequential_reset, protocol_of
from nrstream.plugin.registry import get_registry
from nrstream.stream.settings import StreamSettings

TARGET = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=3.0, repeats=5)
    parser.add_argument("--loss", default="ce_kl", help="loss plugin (default %(default)s)")
    parser.add_argument("--phases", type=int, default=4, help="schedule phases (default %(default)s)")
    parser.add_argument("--phase-frames", type=int, default=2000, help="frames per phase (default %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3)
    return parser.parse_args(argv)


def settings_for(args, num_classes: int) -> StreamSettings:
    """Gaps 5..30 (the default stream), phases alternating between the two halves of the classes, repeating."""
    half = max(1, num_classes // 2)
    sets = [list(range(half)), list(range(half, num_classes))]
    schedule = [{"frames": args.phase_frames, "classes": sets[i % 2]} for i in range(args.phases)]
    return StreamSettings(schedule=schedule, schedule_repeat=True)


def _model(args, dataset, device):
    torch.manual_seed(args.seed)
    model = get_registry().create(
        "architecture", "gru", input_size=dataset.feature_size, num_classes=dataset.num_classes, hidden_size=args.hidden
    )
    return model.to(device).train()


def train_case(args, dataset, settings: StreamSettings, device):
    loss_fn = get_registry().create("loss", args.loss)
    protocol = protocol_of(loss_fn, args.loss)
    model = _model(args, dataset, device)
    train = TrainConfig(lr=args.lr)
    optimizer = make_optimizer(model, train)
    scheduler = make_scheduler(optimizer, "constant", total=1)
    stream = make_stream(dataset, "train", settings, num_lanes=args.batch, seed=args.seed, device=device)
    agent = Agent(model, protocol.train_reset)
    agent.reset(args.batch, device)

    def step() -> int:
        loss, _ = train_step(agent, stream, loss_fn, optimizer, scheduler, chunk_length=args.chunk,
                             grad_clip=train.grad_clip)  # fmt: skip
        float(loss)  # the engine reads the loss every step
        return args.batch * args.chunk

    return step


def prequential_case(args, dataset, settings: StreamSettings, device):
    loss_fn = get_registry().create("loss", args.loss)
    model = _model(args, dataset, device)
    continual = ContinualConfig(lr=args.lr, optimizer="adamw", weight_decay=TrainConfig().weight_decay)
    optimizer = make_online_optimizer(model, continual)
    stream = make_stream(dataset, "train", settings, num_lanes=args.batch, seed=args.seed, device=device)
    agent = Agent(model, prequential_reset(protocol_of(loss_fn, args.loss)))
    agent.reset(args.batch, device)
    phases = len(settings.timeline.phases)
    metric = get_registry().create("metric", "prequential_accuracy", phases=phases)

    def step() -> int:
        chunk = stream.next_chunk(args.chunk)
        loss, logits = prequential_step(agent, chunk, loss_fn, optimizer, grad_clip=continual.grad_clip)
        metric.update(chunk, logits)
        float(loss)
        return args.batch * args.chunk

    return step, metric


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    dataset = load_dataset("toy", feature_size=args.features, num_classes=args.classes)
    settings = settings_for(args, dataset.num_classes)
    print(
        f"prequential: toy, B={args.batch}, T={args.chunk}, GRU H={args.hidden}, loss {args.loss}, "
        f"{args.phases} phases x {args.phase_frames} frames, device={device}, {args.repeats} rounds of "
        f"{args.seconds:g} s blocks; load average {loadavg_1min()} at start",
        flush=True,
    )
    preq, metric = prequential_case(args, dataset, settings, device)
    cases = {
        "train": train_case(args, dataset, settings, device),
        "prequential": preq,
        "train_stationary": train_case(args, dataset, StreamSettings(), device),
    }
    measured = interleave(
        cases, device, seconds=args.seconds, repeats=args.repeats, progress=lambda s: print(s, flush=True)
    )
    results = measured["cases"]
    fps = {name: results[name]["fps"] for name in cases}
    spread = {
        "prequential/train": ratio(measured, "prequential", "train"),
        "scheduled/stationary train": ratio(measured, "train", "train_stationary"),
    }
    targets = {"prequential/train": TARGET}
    accuracy = metric.compute()["accuracy"]
    payload = {
        "benchmark": "prequential",
        "settings": {
            "source": "toy",
            "batch": args.batch,
            "chunk": args.chunk,
            "hidden": args.hidden,
            "features": dataset.feature_size,
            "classes": dataset.num_classes,
            "loss": args.loss,
            "phases": args.phases,
            "phase_frames": args.phase_frames,
            "seconds": args.seconds,
            "repeats": args.repeats,
        },
        "machine": machine(device),
        "command": "python benchmarks/prequential.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": measured["threads"],
        "load_1min_per_round": measured["load_1min"],
        "fps": fps,
        "ratios": {k: st["median"] for k, st in spread.items()},
        "ratio_spread": spread,
        "targets": {
            k: {"target": v, "verdict": verdict(spread[k], v), "met": verdict(spread[k], v) == "met"}
            for k, v in targets.items()
        },
        "check": {"prequential_accuracy": accuracy if accuracy is not None else math.nan},
        "cases": results,
    }
    print()
    print_table([(k, f"{v:>12,.0f} frames/s") for k, v in fps.items()], "frames per second (median over rounds)")
    print_table(ratio_rows(spread, targets), "ratios: median [min - max] over rounds")
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
