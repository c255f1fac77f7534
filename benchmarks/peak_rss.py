"""Peak resident memory of a command: the kernel's ``ru_maxrss`` of the child process.

Runs the command (by default ``nrstream evaluate configs/quickstart.yaml --out <tmp>``) as a
child, waits for it, and reads ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (KiB on
Linux): the largest resident set the child (or any of its own waited-for children) ever had,
the figure ``/usr/bin/time -v`` prints as "Maximum resident set size".

    python benchmarks/peak_rss.py                                   # the quick start (minutes)
    python benchmarks/peak_rss.py --json rss.json -- nrstream evaluate configs/toy.yaml --out /tmp/toy
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    parser.add_argument("command", nargs="*", help="the command after `--` (default: the quick start)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    scratch = None
    command = args.command
    if not command:
        scratch = tempfile.mkdtemp(prefix="nrstream-peak-rss-")
        nrstream = shutil.which("nrstream") or str(Path(sys.executable).with_name("nrstream"))
        command = [nrstream, "evaluate", str(ROOT / "configs" / "quickstart.yaml"), "--out", f"{scratch}/run"]
    load_start = os.getloadavg()
    print(f"peak_rss: {' '.join(command)}; load average {load_start[0]:.2f} at start", flush=True)
    began = time.perf_counter()
    returncode = subprocess.run(command).returncode
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    load_end = os.getloadavg()
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    payload = {
        "benchmark": "peak_rss",
        "command": command,
        "returncode": returncode,
        "seconds": seconds,
        "peak_rss_mib": peak_kib / 1024,
        "machine": {"cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg": load_end},
    }
    print(f"  peak RSS {peak_kib / 1024:,.1f} MiB, {seconds:.1f} s, exit {returncode}")
    print(f"  load average: {[round(v, 2) for v in load_start]} at start, {[round(v, 2) for v in load_end]} at end")
    if args.json is not None:
        from _common import write_json  # imported after the child: this process is not in RUSAGE_CHILDREN

        write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(main()["returncode"])
