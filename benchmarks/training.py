"""Training throughput per loss: frames per second of the engine's own training step.

Each step is :func:`nrstream.lab.engine.train_step`, the one the engine runs (no copy of it
here): the next chunk of the train-split stream, the agent's forward, the loss plugin on
float32 logits, ``backward``, gradient-norm clipping (``--grad-clip``, the engine's
default), ``AdamW.step``, the learning-rate scheduler step, and the state detached
between chunks (truncated BPTT). Each loss gets its protocol's stream and reset policy
from the protocol table (:mod:`nrstream.plugin.protocols`); the configured stream of a protocol
that uses one is :class:`~nrstream.stream.settings.StreamSettings` (the defaults, or
``--gap-min``/``--gap-max``).

Every architecture family (``--archs``: ``rnn``, ``gru``, ``lstm``, ``ssm``, ``snn``, each
with ``hidden_size = --hidden``) is trained with every loss (``--losses``), and each pair is
also run as a bare PyTorch loop (:func:`bare_case`: same model, loss, AdamW, clip and
scheduler on one pre-built chunk, no stream). ``ARCH/LOSS/bare`` is the engine's speed over
that loop's (target >= 0.9): what the stream and the engine's bookkeeping cost;
``ARCH/ce_kl/ce`` is what the adaptive loss costs over plain cross-entropy on the same stream
(target >= 0.95).

Frames = lanes x frames per chunk. Warm-up steps are not timed. The cases run in
alternating short blocks of ``--seconds`` for ``--repeats`` rounds
(:func:`_common.interleave`); each ratio is the median of the per-round ratios with its
min-max spread, ``met`` only when the whole spread clears the target. The load and the
thread counts are recorded beside every figure.

    python benchmarks/training.py --threads 2
    python benchmarks/training.py --archs gru --losses ce ce_kl --device cuda --json results/training.json
"""

from __future__ import annotations

import argparse
import math
import sys

import gymnasium
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
from nrstream.agent import detach_state
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.lab.config import TrainConfig
from nrstream.lab.engine import make_optimizer, make_scheduler, train_step
from nrstream.plugin.protocols import protocol_of
from nrstream.plugin.registry import get_registry
from nrstream.stream.settings import StreamSettings

LOSSES = ("reset", "ce", "ce_kl")
ARCHS = ("rnn", "gru", "lstm", "ssm", "snn")
TARGET = 0.95
BARE_TARGET = 0.9  # engine step / the bare PyTorch loop (issue 12 target 2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=0.5, repeats=5)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), help="loss plugins (default %(default)s)")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), help="architectures (default %(default)s)")
    defaults, train = StreamSettings(), TrainConfig()
    parser.add_argument("--gap-min", type=int, default=defaults.gap_min, help="configured stream (default %(default)s)")
    parser.add_argument("--gap-max", type=int, default=defaults.gap_max)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--grad-clip", type=float, default=train.grad_clip, help="as train.grad_clip (%(default)s)")
    return parser.parse_args(argv)


def dataset_for(args):
    """The data set behind ``--env-id`` (the toy source sized by ``--features``/``--classes``)."""
    try:
        spec = gymnasium.spec(args.env_id)
    except gymnasium.error.Error as error:
        sys.exit(f"error: {error}")
    source = spec.kwargs["source"]
    options = {"feature_size": args.features, "num_classes": args.classes} if source == "toy" else {}
    return load_dataset(source, **options), source, options


def _shared_setup(args, dataset, arch: str, loss_name: str, device: torch.device):
    """What both cases train with: the loss, its protocol's stream settings, the seeded GRU, the train config."""
    loss_fn = get_registry().create("loss", loss_name)
    protocol = protocol_of(loss_fn, loss_name)
    settings = protocol.stream_settings(StreamSettings(gap_min=args.gap_min, gap_max=args.gap_max))
    torch.manual_seed(args.seed)
    model = get_registry().create(
        "architecture", arch, input_size=dataset.feature_size, num_classes=dataset.num_classes, hidden_size=args.hidden
    )
    model.to(device).train()
    return loss_fn, protocol, settings, model, TrainConfig(lr=args.lr, grad_clip=args.grad_clip)


def training_case(args, dataset, arch: str, loss_name: str, device: torch.device):
    loss_fn, protocol, settings, model, train = _shared_setup(args, dataset, arch, loss_name, device)
    optimizer = make_optimizer(model, train)
    scheduler = make_scheduler(optimizer, train.schedule, total=10**9)  # the engine's cosine, far from its end
    stream = make_stream(
        dataset, "train", num_lanes=args.batch, seed=args.seed, device=device, **settings.stream_options()
    )
    agent = Agent(model, protocol.train_reset)
    agent.reset(args.batch, device)
    last = {"loss": math.nan}
    frames = args.batch * args.chunk

    def step() -> int:
        loss, _ = train_step(
            agent, stream, loss_fn, optimizer, scheduler, chunk_length=args.chunk, grad_clip=train.grad_clip
        )
        last["loss"] = float(loss)  # the engine reads the loss every step too
        return frames

    info = {
        "protocol": protocol.name,
        "reset_policy": protocol.train_reset,
        "gap_min": settings.gap_min,
        "gap_max": settings.gap_max,
        "grad_clip": train.grad_clip,
        "schedule": train.schedule,
    }
    return step, info, last


def bare_case(args, dataset, arch: str, loss_name: str, device: torch.device):
    """The same training step written as a plain PyTorch loop: no stream, no Agent, no engine.

    The same registry model (same seed), loss plugin, AdamW, gradient-norm clip and cosine
    scheduler as :func:`training_case`, on ONE pre-built chunk ``x [B, T, F]`` drawn once from
    the same stream before timing (with its labels and sample starts, which the loss reads;
    the ``oracle`` reset mask is passed as the engine would). What the engine costs on top of
    this loop is the stream read and the Agent/step bookkeeping.
    """
    loss_fn, protocol, settings, model, train = _shared_setup(args, dataset, arch, loss_name, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / 10**9)))
    chunk = make_stream(
        dataset, "train", num_lanes=args.batch, seed=args.seed, device=device, **settings.stream_options()
    ).next_chunk(args.chunk)
    x, reset = chunk.x, (chunk.start if protocol.train_reset == "oracle" else None)
    aux = {} if getattr(loss_fn, "needs_hidden", False) else None
    state = {"h": model.initial_state(args.batch, device)}
    frames = args.batch * args.chunk

    def step() -> int:
        logits, new_state = model(x, state["h"], reset=reset, aux=aux)
        loss = loss_fn(logits.float(), chunk, aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        scheduler.step()
        state["h"] = detach_state(new_state)
        float(loss)
        return frames

    return step


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    dataset, source, options = dataset_for(args)
    print(
        f"training: {args.env_id} ({source}), B={args.batch}, T={args.chunk}, H={args.hidden}, device={device}, "
        f"{args.repeats} rounds of {args.seconds:g} s blocks; load average {loadavg_1min()} at start",
        flush=True,
    )
    cases, infos, lasts = {}, {}, {}
    for arch in args.archs:
        for name in args.losses:
            key = f"{arch}/{name}"
            # engine and bare loop side by side: their two blocks of a round are adjacent
            cases[key], infos[key], lasts[key] = training_case(args, dataset, arch, name, device)
            cases[f"bare:{key}"] = bare_case(args, dataset, arch, name, device)
    measured = interleave(
        cases, device, seconds=args.seconds, repeats=args.repeats, progress=lambda s: print(s, flush=True)
    )
    results = measured["cases"]
    keys = list(infos)
    for key in keys:
        results[key].update(infos[key])
        results[key]["last_loss"] = lasts[key]["loss"]
    fps = {key: results[key]["fps"] for key in keys}
    bare_fps = {key: results[f"bare:{key}"]["fps"] for key in keys}
    spread = {f"{key}/bare": ratio(measured, key, f"bare:{key}") for key in keys}
    targets = {f"{key}/bare": BARE_TARGET for key in keys}
    for arch in args.archs:
        if f"{arch}/ce" in fps and f"{arch}/ce_kl" in fps:
            spread[f"{arch}/ce_kl/ce"] = ratio(measured, f"{arch}/ce_kl", f"{arch}/ce")
            targets[f"{arch}/ce_kl/ce"] = TARGET
        if f"{arch}/ce" in fps and f"{arch}/reset" in fps:
            spread[f"{arch}/reset/ce"] = ratio(measured, f"{arch}/reset", f"{arch}/ce")
    payload = {
        "benchmark": "training",
        "settings": {
            "env_id": args.env_id,
            "source": source,
            "source_options": options,
            "batch": args.batch,
            "chunk": args.chunk,
            "hidden": args.hidden,
            "archs": list(args.archs),
            "losses": list(args.losses),
            "features": dataset.feature_size,
            "classes": dataset.num_classes,
            "optimizer": f"AdamW(lr={args.lr}, weight_decay={TrainConfig().weight_decay}), grad clip {args.grad_clip}",
            "seconds": args.seconds,
            "repeats": args.repeats,
        },
        "machine": machine(device),
        "command": "python benchmarks/training.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": measured["threads"],
        "load_1min_per_round": measured["load_1min"],
        "fps": fps,
        "bare_fps": bare_fps,
        "ratios": {k: st["median"] for k, st in spread.items()},
        "ratio_spread": spread,
        "targets": {
            k: {"target": v, "verdict": verdict(spread[k], v), "met": verdict(spread[k], v) == "met"}
            for k, v in targets.items()
        },
        "cases": results,
    }
    print()
    width = max(len(k) for k in keys)
    print("training frames per second (median over rounds): engine train_step | bare PyTorch loop (pre-built chunk)")
    for key in keys:
        info = infos[key]
        print(
            f"  {key:<{width}s}  {fps[key]:>10,.0f} | {bare_fps[key]:>10,.0f}   "
            f"({info['protocol']}, reset {info['reset_policy']})"
        )
    print_table(ratio_rows(spread, targets), "ratios: median [min - max] over rounds")
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
