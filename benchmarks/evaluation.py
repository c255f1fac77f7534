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
evaluation; for the ``oracle`` policy it is passed the very reset masks ``[B, T]`` the
evaluation passed (``raw_reset``). ``evaluation / raw`` (``never``) and
``evaluation_oracle / raw_reset`` (``oracle``) are the evaluation's speed over the raw
forward's on the same frames (target >= 0.95 each): what the stream, the Agent, the scoring
and the metrics cost.

The four cases run in alternating blocks of one call each for ``--repeats`` rounds
(:func:`_common.interleave`); a ratio is the median of the per-round ratios with its
min-max spread, ``met`` only when the whole spread clears the target.

    python benchmarks/evaluation.py --threads 1
    python benchmarks/evaluation.py --min-decisions 2000 --endless-samples 200 --json evaluation.json
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
from _common import interleave, loadavg_1min, machine, print_table, ratio, ratio_rows, verdict, write_json

from nrstream.lab.config import load_config
from nrstream.lab.evaluation import evaluate_agent
from nrstream.lab.loading import load_data
from nrstream.plugin.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"evaluation/raw": 0.95, "evaluation_oracle/raw_reset": 0.95}
POLICIES = {"never": ("evaluation", "raw"), "oracle": ("evaluation_oracle", "raw_reset")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"), help="(default quickstart)")
    parser.add_argument(
        "--policy", default="both", choices=("never", "oracle", "both"), help="reset policy (default %(default)s)"
    )
    parser.add_argument("--hidden", type=int, default=128, help="GRU hidden size (default %(default)s)")
    parser.add_argument("--min-decisions", type=int, default=None, help="evaluate.min_decisions (default: config's)")
    parser.add_argument("--endless-samples", type=int, default=None, help="evaluate.endless_samples (config's)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; median (%(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    return parser.parse_args(argv)


def policy_cases(model, dataset, config, policy: str, device: torch.device) -> tuple[dict, int, int]:
    """``{evaluation case: step, raw case: step}`` for one policy, the frames per call and the model calls."""
    calls: list[tuple[tuple[int, ...], torch.Tensor | None]] = []

    def record(_module, args, kwargs):
        reset = kwargs.get("reset", args[2] if len(args) > 2 else None)
        calls.append((tuple(args[0].shape), None if reset is None else reset.clone()))

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    evaluate_agent(model, dataset, config, policy, device)  # warm-up, records the shapes and resets
    hook.remove()
    frames = sum(shape[0] * shape[1] for shape, _ in calls)
    tensors = {s: torch.randn(s, device=device) for s in Counter(shape for shape, _ in calls)}

    @torch.inference_mode()
    def raw() -> int:
        state, batch = None, None
        for shape, reset in calls:
            if shape[0] != batch:  # a new length (new lanes): a fresh state, as the Agent does
                state, batch = model.initial_state(shape[0], device), shape[0]
            _, state = model(tensors[shape], state, reset=reset)
        return frames

    def evaluation() -> int:
        evaluate_agent(model, dataset, config, policy, device)
        return frames

    ev_name, raw_name = POLICIES[policy]
    return {ev_name: evaluation, raw_name: raw}, frames, len(calls)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"evaluation benchmark: load average {loadavg_1min()} at start", flush=True)
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

    policies = ["never", "oracle"] if args.policy == "both" else [args.policy]
    cases, frames, model_calls = {}, {}, {}
    for policy in policies:
        steps, frames[policy], model_calls[policy] = policy_cases(model, dataset, config, policy, device)
        cases.update(steps)
    measured = interleave(
        cases, device, seconds=0.0, repeats=args.repeats, warmup_calls=0, progress=lambda s: print(s, flush=True)
    )
    spread = {f"{POLICIES[p][0]}/{POLICIES[p][1]}": ratio(measured, *POLICIES[p]) for p in policies}
    targets = {k: v for k, v in TARGETS.items() if k in spread}
    ev = config.evaluate
    payload = {
        "benchmark": "evaluation",
        "settings": {
            "config": str(args.config),
            "policies": policies,
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
        "command": "python benchmarks/evaluation.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": measured["threads"],
        "load_1min_per_round": measured["load_1min"],
        "frames": frames,
        "model_calls": model_calls,
        "seconds": {name: frames[_policy_of(name)] / c["fps"] for name, c in measured["cases"].items()},
        "fps": {name: c["fps"] for name, c in measured["cases"].items()},
        "cases": measured["cases"],
        "ratios": {k: st["median"] for k, st in spread.items()},
        "ratio_spread": spread,
        "targets": {
            k: {"target": v, "verdict": verdict(spread[k], v), "met": verdict(spread[k], v) == "met"}
            for k, v in targets.items()
        },
    }
    print()
    rows = []
    for policy in policies:
        rows.append(
            (f"frames, {policy} (all lengths + endless run)", f"{frames[policy]:>12,} in {model_calls[policy]:,} calls")
        )
        for name in POLICIES[policy]:
            fps = measured["cases"][name]["fps"]
            rows.append((f"{name}, median", f"{frames[policy] / fps:>10.2f} s = {fps:>10,.0f} frames/s"))
    print_table(rows, f"evaluating one agent: {list(ev.lengths)} x >= {ev.min_decisions} decisions + endless run")
    print_table(ratio_rows(spread, targets), "ratios: median [min - max] over rounds")
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


def _policy_of(case: str) -> str:
    return next(p for p, names in POLICIES.items() if case in names)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
