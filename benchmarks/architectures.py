"""Throughput of the registered architectures, in frames per second.

For each architecture: inference forward on whole chunks, forward + backward (training),
and inference fed one frame at a time (what a streaming agent does), plus the ratio of
the chunked to the frame-by-frame forward. Frames = lanes x frames per chunk. Each figure
is the median over ``--repeats`` timed runs after ``--warmup`` untimed ones.

    python benchmarks/architectures.py                       # CPU, B=256, chunk 100, H=128
    python benchmarks/architectures.py --device cuda --json results/arch.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from nrstream.atomic import atomic_file
from nrstream.plugin.registry import get_registry

DEFAULT_ARCHITECTURES = ["rnn", "gru", "lstm", "ssm", "snn"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def measure(name: str, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = (
        get_registry()
        .create("architecture", name, input_size=args.input_size, num_classes=args.classes, hidden_size=args.hidden)
        .to(device)
    )
    x = torch.randn(args.batch, args.chunk, args.input_size, device=device)
    state = model.initial_state(args.batch, device)
    frames = args.batch * args.chunk

    def forward():
        with torch.no_grad():
            model(x, state)

    def train_step():
        logits, _ = model(x, state)
        model.zero_grad(set_to_none=True)
        logits.float().square().mean().backward()

    def frame_by_frame():
        with torch.no_grad():
            carried = state
            for t in range(args.chunk):
                _, carried = model(x[:, t : t + 1], carried)

    model.eval()
    fwd = _timed(forward, device, args.repeats, args.warmup)
    per_frame = _timed(frame_by_frame, device, args.repeats, args.warmup)
    model.train()
    fwd_bwd = _timed(train_step, device, args.repeats, args.warmup)
    return {
        "arch": name,
        "parameters": int(model.num_parameters),
        "forward_fps": frames / fwd,
        "forward_backward_fps": frames / fwd_bwd,
        "frame_by_frame_fps": frames / per_frame,
        "chunked_over_frame_by_frame": per_frame / fwd,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256, help="lanes B")
    parser.add_argument("--chunk", type=int, default=100, help="frames T per chunk")
    parser.add_argument("--hidden", type=int, default=128, help="hidden_size H")
    parser.add_argument("--input-size", type=int, default=40, help="features F per frame")
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--arch", nargs="+", default=DEFAULT_ARCHITECTURES, help="registered architecture names")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    header = f"{'arch':<8}{'params':>10}{'fwd fr/s':>14}{'fwd+bwd fr/s':>15}{'per-frame fr/s':>16}{'chunk/frame':>13}"
    print(
        f"device={args.device} B={args.batch} T={args.chunk} H={args.hidden} F={args.input_size} "
        f"threads={torch.get_num_threads()} torch={torch.__version__} (median of {args.repeats})"
    )
    print(header)
    for name in args.arch:
        row = measure(name, args)
        rows.append(row)
        print(
            f"{name:<8}{row['parameters']:>10,}{row['forward_fps']:>14,.0f}{row['forward_backward_fps']:>15,.0f}"
            f"{row['frame_by_frame_fps']:>16,.0f}{row['chunked_over_frame_by_frame']:>12.1f}x",
            flush=True,
        )
    if args.json:
        payload = {
            "config": vars(args),
            "environment": {
                "torch": torch.__version__,
                "python": platform.python_version(),
                "threads": torch.get_num_threads(),
                "machine": platform.machine(),
            },
            "results": rows,
        }
        with atomic_file(args.json) as tmp:  # never a half-written results file
            tmp.write_text(json.dumps(payload, indent=2))
    return rows


if __name__ == "__main__":
    main()
