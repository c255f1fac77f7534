"""The GPU check: every benchmark at B = 4096, with and without bf16 autocast, plus the CUDA tests.

On a CUDA machine, one command gives one table:

1. ``throughput.py`` (the stream alone vs its gather bound, the raw model, the vector env
   on ``device="cuda"`` feeding an agent with reset policies ``never`` and ``oracle``);
2. ``training.py`` (stream + forward + backward + AdamW per loss);
3. ``soak.py`` (10^8 frames of the test stream, memory and NaN/Inf watched);
4. ``pytest -m cuda`` (the stream on CUDA equals the stream on the CPU bit for bit; each
   architecture's chunked forward equals its stepwise one on CUDA).

Cases 1-3 run in this process, each once in float32 and once inside
``torch.autocast(device, dtype=torch.bfloat16)``; the benchmark scripts themselves are not
changed for it, so they measure exactly what they measure on their own. Sized to finish
in under 8 minutes on one GPU (about 3 on an H100-class GPU by the sizes below: 2 s
measurements, 3 repeats).

``--dry-run`` runs the same code on the CPU at tiny sizes (B = 8, T = 10, a few thousand
soak frames, the CUDA tests collected but not run): the test suite runs it
(``tests/test_gpu_check.py``), so the script is known to work on the day a GPU is there.

    python benchmarks/gpu_check.py                       # on a CUDA machine
    python benchmarks/gpu_check.py --json gpu_check.json
    python benchmarks/gpu_check.py --dry-run             # anywhere, a few seconds
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: the sizes of a real run and of the dry run
FULL = {"batch": 4096, "chunk": 100, "seconds": 2.0, "repeats": 3, "soak_frames": 1e8, "train_steps": 100}
DRY = {"batch": 8, "chunk": 10, "seconds": 0.02, "repeats": 1, "soak_frames": 4000, "train_steps": 2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the GPU (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check that every path runs")
    parser.add_argument("--skip-tests", action="store_true", help="leave out pytest -m cuda")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the table here")
    return parser.parse_args(argv)


def _autocast(device: str, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _run(module: str, argv: list[str], device: str, bf16: bool, quiet: bool) -> tuple[dict, float]:
    """``benchmarks/<module>.py``'s ``main(argv)`` (its payload) and the seconds it took."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    main = importlib.import_module(module).main
    begin = time.perf_counter()
    out = io.StringIO() if quiet else sys.stdout
    with contextlib.redirect_stdout(out), _autocast(device, bf16):
        payload = main(argv)
    return payload, time.perf_counter() - begin


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"
    return str(value)


def figures(payload: dict) -> list[tuple[str, str]]:
    """The headline figures of one benchmark's payload: frames/s per case, ratios, soak health."""
    fps = payload.get("fps", {})
    out = [(f"{case} frames/s", _fmt(float(v))) for case, v in fps.items()] if isinstance(fps, dict) else []
    if not isinstance(fps, dict):
        out.append(("frames/s", _fmt(float(fps))))
    out += [(ratio, _fmt(float(v))) for ratio, v in payload.get("ratios", {}).items()]
    if "memory" in payload:
        out.append(("RSS growth", f"{payload['memory']['growth'] * 100:+.2f} %"))
    if "nonfinite_chunks" in payload:
        out.append(("NaN/Inf chunks", str(payload["nonfinite_chunks"])))
    return out


def benchmark_rows(args: argparse.Namespace, sizes: dict, device: str) -> tuple[list[tuple[str, str, str]], dict]:
    """Run cases 1-3 in float32 and bf16; ``(rows of (case, precision, figure), payloads)``."""
    common = ["--device", device, "--batch", str(sizes["batch"]), "--chunk", str(sizes["chunk"])]
    if args.dry_run:
        common += ["--threads", "1"]  # tiny tensors: a second thread only spins
    timing = ["--seconds", str(sizes["seconds"]), "--repeats", str(sizes["repeats"])]
    runs = {
        "throughput": ("throughput", [*common, *timing, "--skip-gymnasium"]),
        "training": ("training", [*common, *timing]),
        "soak": (
            "soak",
            [
                *common,
                "--frames",
                str(sizes["soak_frames"]),
                "--train-steps",
                str(sizes["train_steps"]),
                "--prints",
                "2",
            ]
            + (["--warmup-chunks", "2"] if args.dry_run else []),
        ),
    }
    rows, payloads = [], {}
    for bf16 in (False, True):
        precision = "bf16 autocast" if bf16 else "float32"
        for name, (module, argv) in runs.items():
            try:
                payload, seconds = _run(module, argv, device, bf16, quiet=args.dry_run)
            except Exception as error:  # one broken benchmark must not hide the others' figures
                rows.append((f"{name}: FAILED", precision, f"{type(error).__name__}: {error}"[:120]))
                print(f"  {name:<10s} {precision:<13s} FAILED: {type(error).__name__}: {error}", flush=True)
                continue
            payloads[f"{name} {precision}"] = payload
            rows += [(f"{name}: {key}", precision, value) for key, value in figures(payload)]
            rows.append((f"{name}: wall seconds", precision, f"{seconds:.1f}"))
            print(f"  {name:<10s} {precision:<13s} done in {seconds:6.1f} s", flush=True)
    return rows, payloads


def cuda_tests(dry_run: bool) -> tuple[str, int]:
    """``pytest -m cuda`` (in a dry run only collected, from the files that hold them): summary line, exit code."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    if dry_run:  # the files that hold CUDA tests, collected: the whole suite takes a while to collect
        command += ["--collect-only", "tests/test_cuda.py", "tests/test_stream.py", "tests/test_scene.py"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else done.stderr.strip()[-200:]), done.returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = DRY if args.dry_run else FULL
    device = "cpu" if args.dry_run else args.device
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {device}: torch sees no CUDA device (use --dry-run to check the script on the CPU)")
        return 2
    name = "CPU (dry run)" if device == "cpu" else torch.cuda.get_device_name(torch.device(device))
    print(f"gpu_check on {name}: B={sizes['batch']}, T={sizes['chunk']}, torch {torch.__version__}", flush=True)
    begin = time.perf_counter()
    rows, payloads = benchmark_rows(args, sizes, device)
    status = 1 if any(case.endswith("FAILED") for case, _, _ in rows) else 0
    if not args.skip_tests:
        summary, code = cuda_tests(args.dry_run)
        rows.append(("pytest -m cuda" + (" (collected)" if args.dry_run else ""), "", summary))
        # 5: nothing selected; without a GPU every cuda test is skipped, which is not a failure
        status = status if code in (0, 5) else 1
    total = time.perf_counter() - begin
    rows.append(("total wall seconds", "", f"{total:.1f}"))

    width = max(len(r[0]) for r in rows)
    print(f"\n  {'case':<{width}s}  {'precision':<13s}  value")
    for case, precision, value in rows:
        print(f"  {case:<{width}s}  {precision:<13s}  {value}")
    if args.json is not None:
        sys.path.insert(0, str(HERE))
        from _common import write_json

        write_json(args.json, {"benchmark": "gpu_check", "device": name, "sizes": sizes, "rows": rows, **payloads})
    return status


if __name__ == "__main__":
    sys.exit(main())
