"""Evaluation speed: one agent's whole evaluation against the raw model over the same frames.

The evaluation is :func:`nrstream.lab.evaluation.evaluate_agent`, what ``nrstream evaluate``
runs per agent and reset policy (via :func:`nrstream.lab.experiment.evaluate_job`): every
configured length ``n`` on ``lanes_for_length(n, min_decisions, test size)`` lanes of the
test split, each to its ``n``-th decision, then the endless run feeding the metric plugins.
The config is ``configs/quickstart.yaml`` (real Fashion-MNIST rows, F = 28, 10 classes);
the GRU is untrained (speed does not depend on the weights).

The raw model is ``model(x, state)`` under ``torch.inference_mode`` over pre-built random
tensors of exactly the shapes ``[B, T, F]`` the evaluation fed its model (recorded by a
forward pre-hook during the warm-up evaluation), a fresh state per length as in the
evaluation. ``evaluation / raw`` is the evaluation's speed over the raw forward's on the same
frames (target >= 0.8): what the stream, the Agent, the scoring and the metrics cost.

    python benchmarks/evaluation.py --threads 1
    python benchmarks/evaluation.py --min-decisions 2000 --endless-samples 200 --json evaluation.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from _common import machine, print_table, sync, write_json

from nrstream.lab.config import load_config
from nrstream.lab.evaluation import evaluate_agent
from nrstream.lab.loading import load_data
from nrstream.plugin.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"), help="(default quickstart)")
    parser.add_argument("--policy", default="never", choices=("never", "oracle"), help="reset policy")
    parser.add_argument("--hidden", type=int, default=128, help="GRU hidden size (default %(default)s)")
    parser.add_argument("--min-decisions", type=int, default=None, help="evaluate.min_decisions (default: config's)")
    parser.add_argument("--endless-samples", type=int, default=None, help="evaluate.endless_samples (config's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements; median (%(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"evaluation benchmark: load average {os.getloadavg()[0]:.2f} at start", flush=True)
    overrides = [f"run.seed={args.seed}", f"run.device={args.device}"]
    if args.min_decisions is not None:
        overrides.append(f"evaluate.min_decisions={args.min_decisions}")
    if args.endless_samples is not None:
        overrides.append(f"evaluate.endless_samples={args.endless_samples}")
    config = load_config(args.config, overrides=overrides)
    dataset = load_data(config).dataset
    torch.manual_seed(args.seed)
    model = get_registry().create(
        "architecture",
        "gru",
        input_size=dataset.feature_size,
        num_classes=dataset.num_classes,
        hidden_size=args.hidden,
    )
    model = model.to(device).eval()

    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_pre_hook(lambda _m, inputs: shapes.append(tuple(inputs[0].shape)))
    evaluate_agent(model, dataset, config, args.policy, device)  # warm-up, records the shapes
    hook.remove()
    frames = sum(b * t for b, t, _ in shapes)
    tensors = {s: torch.randn(s, device=device) for s in Counter(shapes)}

    @torch.inference_mode()
    def raw() -> None:
        state, batch = None, None
        for shape in shapes:
            if shape[0] != batch:  # a new length (new lanes): a fresh state, as the Agent does
                state, batch = model.initial_state(shape[0], device), shape[0]
            _, state = model(tensors[shape], state)

    def evaluation() -> dict:
        return evaluate_agent(model, dataset, config, args.policy, device)

    seconds: dict[str, list[float]] = {"evaluation": [], "raw": []}
    parts: list[dict] = []
    for r in range(args.repeats):
        for name, fn in (("evaluation", evaluation), ("raw", raw)):
            sync(device)
            began = time.perf_counter()
            out = fn()
            sync(device)
            seconds[name].append(time.perf_counter() - began)
            if name == "evaluation":
                parts.append(
                    {
                        "lengths_s": sum(v.seconds for v in out["by_length"].values()),
                        "endless_s": out["endless"]["seconds"],
                    }
                )
            print(f"  round {r + 1}: {name} {seconds[name][-1]:.2f} s", flush=True)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = median["raw"] / median["evaluation"]
    ev = config.evaluate
    payload = {
        "benchmark": "evaluation",
        "settings": {
            "config": str(args.config),
            "policy": args.policy,
            "arch": f"gru(hidden_size={args.hidden})",
            "lengths": list(ev.lengths),
            "min_decisions": ev.min_decisions,
            "endless_lanes": ev.endless_lanes,
            "endless_samples": ev.endless_samples,
            "chunk_length": ev.chunk_length,
            "features": dataset.feature_size,
            "classes": dataset.num_classes,
            "repeats": args.repeats,
        },
        "machine": machine(device),
        "frames": frames,
        "model_calls": len(shapes),
        "seconds": median,
        "seconds_all": seconds,
        "parts": parts,
        "fps": {k: frames / v for k, v in median.items()},
        "ratios": {"evaluation/raw": ratio},
        "targets": {"evaluation/raw": {"target": TARGET, "met": ratio >= TARGET}},
    }
    print()
    print_table(
        [
            ("frames (all lengths + endless run)", f"{frames:>12,}"),
            ("model calls", f"{len(shapes):>12,}"),
            (
                "evaluation, median",
                f"{median['evaluation']:>10.2f} s = {frames / median['evaluation']:>10,.0f} frames/s",
            ),
            ("raw model forward, median", f"{median['raw']:>10.2f} s = {frames / median['raw']:>10,.0f} frames/s"),
            ("evaluation / raw", f"{ratio:8.3f}  (target >= {TARGET:g}: {'met' if ratio >= TARGET else 'MISSED'})"),
        ],
        f"evaluating one agent ({args.policy}): {list(ev.lengths)} x >= {ev.min_decisions} decisions + endless run",
    )
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
