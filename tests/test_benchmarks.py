"""Smoke tests for the benchmark scripts: each runs for about a second with tiny settings
and writes valid JSON with the expected keys. Speed is measured by the scripts, never
asserted here (see ``benchmarks/`` and README "Performance")."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--seconds", "0.2", "--batch", "4", "--chunk", "10", "--hidden", "8", "--repeats", "1", "--threads", "1"]


def run_script(name: str, args: list[str], tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == name
    assert {"settings", "machine"} <= set(payload)
    assert payload["settings"]["batch"] == 4 and payload["settings"]["chunk"] == 10
    return payload


def _positive(values) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values)


def test_throughput_smoke(tmp_path):
    payload = run_script("throughput", TINY, tmp_path)
    agent_cases = {"raw", "raw_reset", "nrstream", "nrstream_oracle", "gymnasium"}
    stream_cases = {"stream", "gather", "stream_plain", "stream_scene"}  # the stream alone (issues 12, 16)
    assert set(payload["fps"]) == agent_cases | stream_cases
    assert _positive(payload["fps"].values())
    agent_ratios = {"nrstream/raw", "nrstream_oracle/raw", "nrstream/gymnasium"}
    stream_ratios = {"stream/gather", "stream_scene/stream_plain"}
    assert agent_ratios | stream_ratios <= set(payload["ratios"])
    assert _positive(payload["ratios"].values())
    assert agent_ratios | stream_ratios <= set(payload["targets"])
    # the decisions were scored and the metrics updated
    for case in ("nrstream", "nrstream_oracle", "gymnasium"):
        assert payload["cases"][case]["check"]["total"] > 0


def test_training_smoke(tmp_path):
    payload = run_script("training", TINY, tmp_path)
    assert set(payload["fps"]) == {"reset", "ce", "ce_kl"}
    assert _positive(payload["fps"].values())
    assert payload["cases"]["reset"]["protocol"] == "segmented"
    assert payload["cases"]["ce_kl"]["protocol"] == "continual"
    assert math.isfinite(payload["cases"]["ce_kl"]["last_loss"])
    assert "ce_kl/ce" in payload["ratios"] and "ce_kl/ce" in payload["targets"]
    # the bare PyTorch loop beside each loss, and the engine's ratio to it
    assert set(payload["bare_fps"]) == {"reset", "ce", "ce_kl"} and _positive(payload["bare_fps"].values())
    assert {"reset/bare", "ce/bare", "ce_kl/bare"} <= set(payload["ratios"]) & set(payload["targets"])


@pytest.mark.parametrize("extra", [["--train-steps", "2"], ["--train-steps", "0", "--reset", "oracle"]])
def test_soak_smoke(tmp_path, extra):
    payload = run_script("soak", [*TINY, "--frames", "20000", *extra], tmp_path)
    assert payload["frames"] >= 20000 and payload["chunks"] == 500
    assert payload["nonfinite_chunks"] == 0
    memory = payload["memory"]
    assert memory["samples"] > 0 and memory["rss_first10_mb"] > 0 and math.isfinite(memory["growth"])
    assert {"memory_growth", "finite"} == set(payload["targets"])
    assert payload["model"]["trained"] is (extra[1] != "0")
    assert payload["decisions"] > 0 and payload["progress"]
