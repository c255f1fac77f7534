"""Training step at 1 and at 2 torch intra-op threads, interleaved in one process: wall and CPU time per frame.

Why: the training benchmark's figures fell about 3x between two measuring sessions (210k
frames/s at load 0.4, then 66k at load 1.0-1.7, both at torch's default of 2 threads on the
2-core machine) for the bare PyTorch loop as much as for the engine. A 2-thread torch op
splits its work in two and waits for both halves; when another process holds one core, the
half on the busy core waits for the scheduler and the other thread spins (OpenMP busy-waits
between parallel regions), so wall time goes up and CPU time with it. This script measures
exactly that: the same step (:func:`bare step <training.bare_case>`: the registry GRU, ``ce``,
AdamW, clip, scheduler on one pre-built chunk), alternating blocks at 1 and 2 threads,
``--repeats`` rounds, reporting frames/s (wall) and CPU seconds per million frames
(``time.process_time``, all threads) with the median and min-max of the per-round ratio
``2 threads / 1 thread``, and the load.

    python benchmarks/threads.py                      # B=256, T=100, F=40, GRU-128
    python benchmarks/threads.py --forward-only       # inference (the evaluation's case)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _common import add_common_options, loadavg_1min, machine, print_table, setup, write_json
from training import bare_case, dataset_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=1.0, repeats=8)
    parser.add_argument("--loss", default="ce")
    parser.add_argument("--arch", default="gru")
    parser.add_argument("--counts", nargs="+", type=int, default=[1, 2], help="thread counts (default %(default)s)")
    parser.add_argument("--forward-only", action="store_true", help="time the forward under inference_mode")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--gap-min", type=int, default=5)
    parser.add_argument("--gap-max", type=int, default=30)
    return parser.parse_args(argv)


def forward_case(args, dataset, device):
    from nrstream.plugin.registry import get_registry

    torch.manual_seed(args.seed)
    model = (
        get_registry()
        .create(
            "architecture",
            args.arch,
            input_size=dataset.feature_size,
            num_classes=dataset.num_classes,
            hidden_size=args.hidden,
        )
        .eval()
    )
    x = torch.randn(args.batch, args.chunk, dataset.feature_size, device=device)
    state = {"h": model.initial_state(args.batch, device)}

    @torch.inference_mode()
    def step() -> int:
        _, state["h"] = model(x, state["h"])
        return args.batch * args.chunk

    return step


def block(step, seconds: float) -> tuple[float, float, int]:
    """(wall s, CPU s, frames) of calling ``step`` for at least ``seconds``."""
    frames = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while True:
        frames += step()
        wall = time.perf_counter() - wall0
        if wall >= seconds:
            return wall, time.process_time() - cpu0, frames


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    dataset, _source, _options = dataset_for(args)
    args.archs = [args.arch]
    step = (
        forward_case(args, dataset, device)
        if args.forward_only
        else bare_case(args, dataset, args.arch, args.loss, device)
    )
    for n in args.counts:
        torch.set_num_threads(n)
        step()
        step()
    rounds: dict[int, list[dict]] = {n: [] for n in args.counts}
    loads = []
    for r in range(args.repeats):
        loads.append(loadavg_1min())
        for n in args.counts if r % 2 == 0 else reversed(args.counts):
            torch.set_num_threads(n)
            wall, cpu, frames = block(step, args.seconds)
            rounds[n].append({"fps": frames / wall, "cpu_s_per_mframe": cpu / frames * 1e6})
            print(
                f"  round {r + 1}/{args.repeats}  {n} thread(s)  {frames / wall:>10,.0f} frames/s  "
                f"{cpu / frames * 1e6:6.2f} CPU s per M frames  (load {loads[-1]})",
                flush=True,
            )
    summary = {
        n: {
            "fps": statistics.median(m["fps"] for m in ms),
            "cpu_s_per_mframe": statistics.median(m["cpu_s_per_mframe"] for m in ms),
            "fps_runs": [m["fps"] for m in ms],
            "cpu_s_per_mframe_runs": [m["cpu_s_per_mframe"] for m in ms],
        }
        for n, ms in rounds.items()
    }
    ratios = {}
    if len(args.counts) >= 2:
        a, b = args.counts[-1], args.counts[0]
        per_round = [x["fps"] / y["fps"] for x, y in zip(rounds[a], rounds[b], strict=True)]
        ratios[f"{a}t/{b}t"] = {
            "median": statistics.median(per_round),
            "min": min(per_round),
            "max": max(per_round),
            "rounds": per_round,
        }
    payload = {
        "benchmark": "threads",
        "settings": {**{k: v for k, v in vars(args).items() if k != "json"}, "json": str(args.json)},
        "command": "python benchmarks/threads.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(device),
        "load_1min_per_round": loads,
        "threads": summary,
        "ratios": ratios,
    }
    what = "forward (inference)" if args.forward_only else f"training step ({args.loss})"
    print()
    print_table(
        [
            (f"{n} thread(s)", f"{s['fps']:>10,.0f} frames/s   {s['cpu_s_per_mframe']:6.2f} CPU s per M frames")
            for n, s in summary.items()
        ],
        f"{what}, {args.arch} B={args.batch} T={args.chunk} H={args.hidden}: medians over {args.repeats} rounds",
    )
    for key, st in ratios.items():
        print(
            f"  {key} wall speed: {st['median']:.3f} [{st['min']:.3f} - {st['max']:.3f}]  "
            f"(load {min(loads):.1f}-{max(loads):.1f})"
        )
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
