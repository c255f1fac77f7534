"""What the benchmark scripts share: options, timing, machine description, JSON output.

Timing: a measurement calls ``step()`` (which returns the frames it processed) until
``seconds`` have passed and reports frames / elapsed. Warm-up calls are not timed. Each
figure is the median over ``repeats`` measurements; the measurements of the configurations
being compared are interleaved (round robin), so a load spike on a shared machine hits
them alike instead of one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nrstream.atomic import atomic_file

__all__ = [
    "env_kwargs",
    "setup",
    "add_common_options",
    "sync",
    "measure_rate",
    "interleaved_medians",
    "machine",
    "write_json",
    "print_table",
]


def add_common_options(parser: argparse.ArgumentParser, *, seconds: float, repeats: int) -> None:
    parser.add_argument("--env-id", default="nrstream/Toy-v0", help="Gymnasium id (default %(default)s)")
    parser.add_argument("--batch", type=int, default=256, help="lanes B (default %(default)s)")
    parser.add_argument("--chunk", type=int, default=100, help="frames per chunk / step T (default %(default)s)")
    parser.add_argument("--hidden", type=int, default=128, help="GRU hidden size (default %(default)s)")
    parser.add_argument("--features", type=int, default=40, help="toy source feature size F (default %(default)s)")
    parser.add_argument("--classes", type=int, default=12, help="toy source classes C (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=seconds, help="duration of one measurement (default %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=repeats, help="measurements per figure; median (default %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")


def env_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``gymnasium.make``/``make_vec``: the toy source sized like real data.

    Other ids get no source options (their data source decides ``F`` and ``C``).
    """
    if args.env_id == "nrstream/Toy-v0":
        return {"source_options": {"feature_size": args.features, "num_classes": args.classes}}
    return {}


def make_vector_env(args: argparse.Namespace, device: torch.device, **options):
    """The benchmarks' vector env: ``args.batch`` lanes, ``args.chunk`` frames per step, on ``device``."""
    import gymnasium

    return gymnasium.make_vec(
        args.env_id,
        num_envs=args.batch,
        frames_per_step=args.chunk,
        vectorization_mode="vector_entry_point",
        device=device,
        **env_kwargs(args),
        **options,
    )


def setup(args: argparse.Namespace) -> torch.device:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"error: --device {args.device} asked for, but torch sees no CUDA device")
    return device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_rate(step: Callable[[], int], device: torch.device, seconds: float, min_calls: int = 1) -> dict:
    """Call ``step`` (returns frames done) for ``seconds`` (at least ``min_calls`` times)."""
    sync(device)
    frames, calls = 0, 0
    begin = time.perf_counter()
    while True:
        frames += step()
        calls += 1
        if calls >= min_calls:
            sync(device)
            elapsed = time.perf_counter() - begin
            if elapsed >= seconds:
                break
    return {"fps": frames / elapsed, "frames": frames, "calls": calls, "seconds": elapsed}


def interleaved_medians(
    cases: dict[str, Callable[[], int]],
    device: torch.device,
    *,
    seconds: float,
    repeats: int,
    warmup_calls: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """For every case: median frames/s over ``repeats`` interleaved measurements."""
    for step in cases.values():
        for _ in range(warmup_calls):
            step()
    sync(device)
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for r in range(repeats):
        for name, step in cases.items():
            runs[name].append(measure_rate(step, device, seconds))
            if progress is not None:
                progress(f"  repeat {r + 1}/{repeats}  {name:<24s} {runs[name][-1]['fps']:>14,.0f} frames/s")
    return {
        name: {
            "fps": statistics.median(m["fps"] for m in measured),
            "fps_runs": [m["fps"] for m in measured],
            "calls_per_run": [m["calls"] for m in measured],
        }
        for name, measured in runs.items()
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


_LOAD_AT_START = _loadavg()  # when the script started (imported this module)


def machine(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        # 1, 5 and 15 minute load averages: results are only comparable on a quiet machine
        "loadavg_start": _LOAD_AT_START,
        "loadavg": _loadavg(),
    }
    try:
        import gymnasium

        info["gymnasium"] = gymnasium.__version__
    except ImportError:  # pragma: no cover
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path: Path | None, payload: dict) -> None:
    """Write atomically (a partial file is never left behind)."""
    if path is None:
        return
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def print_table(rows: list[tuple[str, str]], title: str | None = None) -> None:
    if title:
        print(title)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}s}  {value}")
