"""Training throughput per loss: frames per second of stream + forward + backward + AdamW step.

The step is the training engine's (``nrstream.engine.train_agent``) without its
checkpointing: the next chunk of the train-split stream, the agent's forward, the loss
plugin, ``backward``, ``AdamW.step``, and the state detached between chunks (truncated
BPTT). Each loss gets the protocol it declares:

* ``reset`` (segmented): clean samples back to back (gap 0), oracle resets at every start;
* ``ce`` and ``ce_kl`` (continual): noise gaps (the env's defaults, ``--gap-min``/``--gap-max``),
  the state carried across everything.

Frames = lanes x frames per chunk. Warm-up steps are not timed; each figure is the median
of ``--repeats`` interleaved measurements. The ratio ``ce_kl / ce`` is what the adaptive
loss costs over plain cross-entropy on the same stream (target >= 0.95).

    python benchmarks/training.py
    python benchmarks/training.py --device cuda --json results/training.json
"""

from __future__ import annotations

import argparse
import math
import sys

import gymnasium
import torch
from _common import add_common_options, interleaved_medians, machine, print_table, setup, write_json

from nrstream import Agent
from nrstream.datasets import load_dataset, make_stream
from nrstream.plugins import get_registry

LOSSES = ("reset", "ce", "ce_kl")
TARGET = 0.95


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=4.0, repeats=3)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), help="loss plugins (default %(default)s)")
    parser.add_argument("--gap-min", type=int, default=5, help="continual protocol gaps (default %(default)s)")
    parser.add_argument("--gap-max", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
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


def training_case(args, dataset, loss_name: str, device: torch.device):
    loss_fn = get_registry().create("loss", loss_name)
    protocol = loss_fn.protocol
    if protocol == "segmented":
        gaps, reset_policy = (0, 0), "oracle"
    elif protocol == "continual":
        gaps, reset_policy = (args.gap_min, args.gap_max), "never"
    else:
        raise ValueError(f"loss {loss_name!r} declares an unknown protocol {protocol!r}")
    torch.manual_seed(args.seed)
    model = (
        get_registry()
        .create(
            "architecture",
            "gru",
            input_size=dataset.feature_size,
            num_classes=dataset.num_classes,
            hidden_size=args.hidden,
        )
        .to(device)
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    stream = make_stream(
        dataset, "train", num_lanes=args.batch, seed=args.seed, gap_min=gaps[0], gap_max=gaps[1], device=device
    )
    agent = Agent(model, reset_policy)
    agent.reset(args.batch, device)
    needs_hidden = bool(getattr(loss_fn, "needs_hidden", False))
    last = {"loss": math.nan}
    frames = args.batch * args.chunk

    def step() -> int:
        chunk = stream.next_chunk(args.chunk)
        aux = {} if needs_hidden else None
        logits = agent.observe(chunk, aux=aux)
        loss = loss_fn(logits, chunk, aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        agent.detach()
        last["loss"] = float(loss.detach())  # the engine reads the loss every step too
        return frames

    info = {"protocol": protocol, "reset_policy": reset_policy, "gap_min": gaps[0], "gap_max": gaps[1]}
    return step, info, last


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    dataset, source, options = dataset_for(args)
    print(
        f"training: {args.env_id} ({source}), B={args.batch}, T={args.chunk}, GRU H={args.hidden}, device={device}, "
        f"{args.repeats} x {args.seconds:g} s per figure",
        flush=True,
    )
    cases, infos, lasts = {}, {}, {}
    for name in args.losses:
        cases[name], infos[name], lasts[name] = training_case(args, dataset, name, device)
    results = interleaved_medians(
        cases, device, seconds=args.seconds, repeats=args.repeats, progress=lambda s: print(s, flush=True)
    )
    for name in cases:
        results[name].update(infos[name])
        results[name]["last_loss"] = lasts[name]["loss"]
    fps = {name: r["fps"] for name, r in results.items()}
    ratios = {}
    if "ce" in fps and "ce_kl" in fps:
        ratios["ce_kl/ce"] = fps["ce_kl"] / fps["ce"]
    if "ce" in fps and "reset" in fps:
        ratios["reset/ce"] = fps["reset"] / fps["ce"]
    payload = {
        "benchmark": "training",
        "settings": {
            "env_id": args.env_id,
            "source": source,
            "source_options": options,
            "batch": args.batch,
            "chunk": args.chunk,
            "hidden": args.hidden,
            "features": dataset.feature_size,
            "classes": dataset.num_classes,
            "optimizer": f"AdamW(lr={args.lr})",
            "seconds": args.seconds,
            "repeats": args.repeats,
        },
        "machine": machine(device),
        "fps": fps,
        "ratios": ratios,
        "targets": {"ce_kl/ce": {"target": TARGET, "met": ratios["ce_kl/ce"] >= TARGET}}
        if "ce_kl/ce" in ratios
        else {},
        "cases": results,
    }
    print()
    print_table(
        [
            (f"{k} ({infos[k]['protocol']}, reset {infos[k]['reset_policy']})", f"{v:>12,.0f} frames/s")
            for k, v in fps.items()
        ],
        "training frames per second (median)",
    )
    rows = []
    for key, value in ratios.items():
        verdict = f"  (target >= {TARGET:g}: {'met' if value >= TARGET else 'MISSED'})" if key == "ce_kl/ce" else ""
        rows.append((key, f"{value:8.3f}{verdict}"))
    if rows:
        print_table(rows, "ratios")
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
