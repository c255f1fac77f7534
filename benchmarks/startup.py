"""What the automatic Gymnasium registration costs a Python process that never uses nrstream.

The wheel installs ``nrstream-gymnasium.pth``, which imports ``_nrstream_gymnasium`` in
every interpreter of the environment. This script builds throw-away venvs (no pip) that
see the same packages through a plain path ``.pth`` (so none of the test venv's own
``.pth`` hooks run) and differ only in that line:

- ``bare``: no hook;
- ``hook``: ``import _nrstream_gymnasium`` (this repository's hook);
- ``importlib_abc``: a ``.pth`` that imports ``importlib.abc`` and ``importlib.util``, what
  the first version of the hook did (it subclassed ``importlib.abc.MetaPathFinder``).

It times ``python -c pass`` (bare interpreter start-up) and ``python -c "import gymnasium"``
(where the hook registers the ids) in each, interleaved, ``--runs`` times, and reports
medians, the modules each hook adds at start-up, and ``-X importtime``'s figure for the
hook module. Prints JSON; ``--json PATH`` also writes it.

    python benchmarks/startup.py                 # 40 runs of each
    python benchmarks/startup.py --runs 100 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "bare": None,
    "hook": "import _nrstream_gymnasium\n",
    "importlib_abc": "import importlib.abc, importlib.util\n",
}
MODULES = "import sys; print(' '.join(sorted(sys.modules)))"


def make_venv(folder: Path, hook_line: str | None, paths: list[str]) -> Path:
    """A venv without pip whose site-packages points at ``paths`` (plus an optional hook line)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    site = Path(purelib)
    # "_paths" sorts before "nrstream-gymnasium": the paths exist when the hook line runs
    (site / "_paths.pth").write_text("".join(f"{p}\n" for p in paths))
    if hook_line is not None:
        (site / "nrstream-gymnasium.pth").write_text(hook_line)
    return python


def run_once(python: Path, code: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-c", code], check=True, stdout=subprocess.DEVNULL, env=_env())
    return time.perf_counter() - start


def _env() -> dict:
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONPROFILEIMPORTTIME"):
        env.pop(key, None)
    return env


def start_up_modules(python: Path) -> set[str]:
    out = subprocess.run([str(python), "-c", MODULES], check=True, capture_output=True, text=True, env=_env())
    return set(out.stdout.split())


def importtime_us(python: Path, module: str) -> int | None:
    """Cumulative microseconds ``-X importtime`` reports for ``module`` at start-up."""
    err = subprocess.run(
        [str(python), "-X", "importtime", "-c", "pass"], check=True, capture_output=True, text=True, env=_env()
    ).stderr
    for line in err.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)$", line)
        if match and match.group(2) == module:
            return int(match.group(1))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs of each case (default %(default)s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    args = parser.parse_args(argv)

    paths = [sysconfig.get_paths()["purelib"], str(ROOT), str(ROOT / "plugins")]
    cases = {"pass": "pass", "import_gymnasium": "import gymnasium"}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="nrstream-startup-") as tmp:
        pythons = {name: make_venv(Path(tmp) / name, line, paths) for name, line in VARIANTS.items()}
        modules = {name: start_up_modules(python) for name, python in pythons.items()}
        for python in pythons.values():  # warm the file cache and the .pyc files
            for code in cases.values():
                run_once(python, code)
        times: dict[str, dict[str, list[float]]] = {c: {v: [] for v in VARIANTS} for c in cases}
        for _ in range(args.runs):  # interleaved, so a load change hits every variant alike
            for case, code in cases.items():
                for name, python in pythons.items():
                    times[case][name].append(run_once(python, code))
        hook_us = [importtime_us(pythons["hook"], "_nrstream_gymnasium") for _ in range(min(args.runs, 20))]
        registered = subprocess.run(
            [str(pythons["hook"]), "-c", "import gymnasium; print('nrstream/Toy-v1' in gymnasium.registry)"],
            check=True,
            capture_output=True,
            text=True,
            env=_env(),
        ).stdout.strip()

    median_ms = {
        case: {name: 1000 * statistics.median(values) for name, values in per.items()} for case, per in times.items()
    }
    hook_us_known = [us for us in hook_us if us is not None]
    payload = {
        "benchmark": "startup",
        "settings": {"runs": args.runs, "cases": cases, "variants": VARIANTS},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "median_ms": median_ms,
        "min_ms": {case: {name: 1000 * min(v) for name, v in per.items()} for case, per in times.items()},
        "ratios": {
            "hook/bare (python -c pass)": median_ms["pass"]["hook"] / median_ms["pass"]["bare"],
            "importlib_abc/bare (python -c pass)": median_ms["pass"]["importlib_abc"] / median_ms["pass"]["bare"],
            "hook/bare (import gymnasium)": median_ms["import_gymnasium"]["hook"]
            / median_ms["import_gymnasium"]["bare"],
        },
        "hook_importtime_us_median": statistics.median(hook_us_known) if hook_us_known else None,
        "modules_added_at_start_up": {
            name: sorted(modules[name] - modules["bare"]) for name in VARIANTS if name != "bare"
        },
        "ids_registered_by_hook": registered == "True",
    }
    text = json.dumps(payload, indent=2)
    print(text)
    if args.json is not None:
        from nrstream.atomic import atomic_file

        with atomic_file(args.json) as tmp:
            tmp.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
