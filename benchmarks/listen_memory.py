"""Peak memory of ``nrstream listen`` on a long recording against a short one (issue 13: flat memory).

Makes two recordings with ``nrstream data make-recording`` (``--short`` and ``--long``
minutes, same source and seed) and runs ``nrstream listen`` on each in a fresh Python
process that reports its own peak RSS (``ru_maxrss``) and wall time; also the peak RSS
of each ``make-recording``. The claim checked: the long recording's listen peak is no more
than 50 MB above the short one's.

    python benchmarks/listen_memory.py RUN --agent gru/ce_kl --source synth_speech \\
        -o 'words=["yes","no","up","down"]' -o renderings_per_word=30 [--short 1 --long 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import resource, sys, time, torch
torch.set_num_threads(1)
from nrstream.cli import main
t = time.perf_counter()
code = main(sys.argv[1:])
print("RESULT", code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t, file=sys.stderr)
"""


def measure(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    line = next((x for x in done.stderr.splitlines() if x.startswith("RESULT")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"failed: nrstream {' '.join(args)}\n{done.stderr[-2000:]}")
    _, code, rss_kb, seconds = line.split()
    return {"exit": int(code), "peak_rss_mb": round(int(rss_kb) / 1024, 1), "seconds": round(float(seconds), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder with the agent")
    parser.add_argument("--agent", default="gru/ce_kl")
    parser.add_argument("--source", default="synth_speech")
    parser.add_argument("-o", "--option", action="append", default=[])
    parser.add_argument("--short", type=float, default=1.0, help="minutes")
    parser.add_argument("--long", type=float, default=30.0, help="minutes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    opts = [x for o in args.option for x in ("-o", o)]
    result = {"load_1min_before": round(os.getloadavg()[0], 2), "agent": args.agent, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, minutes in (("short", args.short), ("long", args.long)):
            wav, csv = Path(tmp) / f"{name}.wav", Path(tmp) / f"{name}.csv"
            make = ["data", "make-recording", args.source, *opts, "--minutes", str(minutes)]
            made = measure([*make, "--out", str(wav), "--truth", str(csv), "--seed", "1"])
            heard = measure(["listen", args.run, str(wav), "--agent", args.agent, "--format", "jsonl"])
            result["runs"][name] = {"minutes": minutes, "make_recording": made, "listen": heard}
    short, long = result["runs"]["short"]["listen"], result["runs"]["long"]["listen"]
    result["listen_peak_rss_difference_mb"] = round(long["peak_rss_mb"] - short["peak_rss_mb"], 1)
    result["listen_realtime_factor_long"] = round(args.long * 60 / max(long["seconds"], 1e-9), 1)
    result["load_1min_after"] = round(os.getloadavg()[0], 2)
    result["stamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, r in result["runs"].items():
        m, listen = r["make_recording"], r["listen"]
        print(
            f"{name:>5}: {r['minutes']:g} min  make-recording peak {m['peak_rss_mb']} MB ({m['seconds']} s), "
            f"listen peak {listen['peak_rss_mb']} MB ({listen['seconds']} s)"
        )
    print(f"listen peak RSS, long - short: {result['listen_peak_rss_difference_mb']} MB")
    print(f"(1-min load {result['load_1min_before']} before, {result['load_1min_after']} after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
