"""What the benchmark scripts share: options, timing, machine description, JSON output.

Timing: a measurement calls ``step()`` (which returns the frames it processed) until
``seconds`` have passed and reports frames / elapsed. Warm-up calls are not timed.

Stable ratios (:func:`interleave`, :func:`ratio`, :func:`verdict`): on a shared machine a
single timed block per case gives a ratio that moves by 20 % from run to run. So the
compared cases run in short alternating blocks (A B, then B A, ...) for ``repeats``
rounds; every round gives one ratio from two blocks measured seconds apart, the figure is
the **median ratio over rounds** with its min-max spread, and a target counts as met only
when the whole spread clears it (``met``), as missed when the whole spread is below it
(``missed``), and as ``undecided`` otherwise. The 1-minute load average is sampled at
every round and the torch thread counts are recorded beside every figure.
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
    "interleave",
    "ratio",
    "verdict",
    "ratio_rows",
    "loadavg_1min",
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
    begin, cpu_begin = time.perf_counter(), time.process_time()
    while True:
        frames += step()
        calls += 1
        if calls >= min_calls:
            sync(device)
            elapsed = time.perf_counter() - begin
            if elapsed >= seconds:
                break
    cpu = time.process_time() - cpu_begin  # this process's CPU seconds, all threads
    return {
        "fps": frames / elapsed,
        "cpu_fps": frames / cpu if cpu > 0 else float("inf"),
        "frames": frames,
        "calls": calls,
        "seconds": elapsed,
        "cpu_seconds": cpu,
    }


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


def loadavg_1min() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def threads() -> dict:
    """torch's intra- and inter-op thread counts (every figure depends on them)."""
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def interleave(
    cases: dict[str, Callable[[], int]],
    device: torch.device,
    *,
    seconds: float,
    repeats: int,
    warmup_calls: int = 2,
    min_calls: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run every case for one short block per round, ``repeats`` rounds, the order reversed every other round.

    ``cases`` maps a name to ``step() -> frames``; a block calls it for ``seconds`` (at
    least ``min_calls`` times; ``seconds = 0`` makes a block one call).

    Returns ``{"cases": {name: {"fps": median, "fps_runs": [per round], "calls_per_run"}},
    "rounds": repeats, "load_1min": [per round], "threads": {...}}``; :func:`ratio` reads it.
    """
    for step in cases.values():
        for _ in range(warmup_calls):
            step()
    sync(device)
    names = list(cases)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    loads = []
    for r in range(repeats):
        loads.append(loadavg_1min())
        for name in names if r % 2 == 0 else reversed(names):  # A B, B A: a drift hits both alike
            runs[name].append(measure_rate(cases[name], device, seconds, min_calls))
            if progress is not None:
                progress(f"  round {r + 1}/{repeats}  {name:<24s} {runs[name][-1]['fps']:>14,.0f} frames/s")
    return {
        "cases": {
            name: {
                "fps": statistics.median(m["fps"] for m in measured),
                "fps_runs": [m["fps"] for m in measured],
                "cpu_fps": statistics.median(m["cpu_fps"] for m in measured),
                "cpu_fps_runs": [m["cpu_fps"] for m in measured],
                "calls_per_run": [m["calls"] for m in measured],
            }
            for name, measured in runs.items()
        },
        "rounds": repeats,
        "load_1min": loads,
        "threads": threads(),
    }


def ratio(measured: dict, num: str, den: str) -> dict:
    """``num / den`` per round (blocks of the same round), its median and min-max spread.

    Wall-clock speed, and beside it (``cpu_*``) the same ratio of speeds per CPU second of this
    process: on a shared machine the wall clock also counts the time the scheduler gave other
    processes, while at one thread the CPU time is the work itself, so ``cpu_median`` scatters
    far less. Targets are judged on the wall clock.
    """
    a, b = measured["cases"][num]["fps_runs"], measured["cases"][den]["fps_runs"]
    per_round = [x / y for x, y in zip(a, b, strict=True)]
    ca, cb = measured["cases"][num].get("cpu_fps_runs"), measured["cases"][den].get("cpu_fps_runs")
    cpu_rounds = [x / y for x, y in zip(ca, cb, strict=True)] if ca and cb else []
    return {
        "median": statistics.median(per_round),
        "min": min(per_round),
        "max": max(per_round),
        "rounds": per_round,
        **(
            {
                "cpu_median": statistics.median(cpu_rounds),
                "cpu_min": min(cpu_rounds),
                "cpu_max": max(cpu_rounds),
                "cpu_rounds": cpu_rounds,
            }
            if cpu_rounds
            else {}
        ),
        "load_1min": [v for v in measured.get("load_1min", []) if v is not None],
        "threads": measured.get("threads", threads()),
    }


def verdict(stats: dict, target: float) -> str:
    """``met`` when the whole spread is at or above ``target``, ``missed`` when all below, else ``undecided``."""
    if stats["min"] >= target:
        return "met"
    if stats["max"] < target:
        return "missed"
    return "undecided"


def ratio_rows(ratios: dict[str, dict], targets: dict[str, float]) -> list[tuple[str, str]]:
    """Printable rows: median [min - max], the target's verdict, and the load over the rounds."""
    rows = []
    for key, st in ratios.items():
        target = targets.get(key)
        loads = st.get("load_1min") or []
        load = f"load {min(loads):.1f}-{max(loads):.1f}" if loads else "load n/a"
        th = st.get("threads", {})
        text = f"{st['median']:8.3f} [{st['min']:.3f} - {st['max']:.3f}]"
        if target is not None:
            text += f"  target >= {target:g}: {verdict(st, target)}"
        if "cpu_median" in st:
            text += f";  per CPU s {st['cpu_median']:.3f} [{st['cpu_min']:.3f} - {st['cpu_max']:.3f}]"
        text += f"  ({len(st['rounds'])} rounds, {load}, {th.get('intra_op', '?')} threads)"
        rows.append((key, text))
    return rows


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
        "torch_interop_threads": torch.get_num_interop_threads(),
        # OpenMP's wait policy decides whether idle torch threads spin (the default) or sleep;
        # on a loaded machine spinning threads cost several times the CPU (benchmarks/threads.py)
        "omp_env": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ
        },
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
