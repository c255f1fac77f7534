"""``benchmarks/gpu_check.py --dry-run``: the GPU check's every path, on the CPU at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_runs_every_benchmark_and_collects_the_cuda_tests(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    payload = json.loads(out.read_text())
    cases = {(case, precision) for case, precision, _ in payload["rows"]}
    for precision in ("float32", "bf16 autocast"):
        wanted = ("throughput: stream/gather", "throughput: nrstream/raw", "training: gru/ce_kl/ce", "soak: RSS growth")
        for case in wanted:
            assert (case, precision) in cases, (case, precision)
    collected = [value for case, _, value in payload["rows"] if case.startswith("pytest -m cuda")]
    # every CUDA test is collected (3 stream tests, 2 dtypes x each architecture), none run here
    assert collected and "tests collected" in collected[0] and not collected[0].startswith("no tests"), collected
    assert payload["sizes"]["batch"] == 8
