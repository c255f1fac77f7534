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
TINY = ["--seconds", "0.2", "--batch", "4", "--chunk", "10", "--hidden", "8", "--repeats", "2", "--threads", "1"]
TOY = str(ROOT / "configs" / "toy.yaml")


def run_script(name: str, args: list[str], tmp_path: Path, *, tiny_shapes: bool = True) -> dict:
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
    assert {"settings", "machine", "command"} <= set(payload)
    if tiny_shapes:
        assert payload["settings"]["batch"] == 4 and payload["settings"]["chunk"] == 10
    return payload


def _spread_ok(payload: dict) -> None:
    """Every ratio has its per-round values, median and min-max; every target a verdict that agrees with them."""
    for key, st in payload["ratio_spread"].items():
        assert st["min"] <= st["median"] <= st["max"] and len(st["rounds"]) == payload["settings"]["repeats"], key
        assert payload["ratios"][key] == st["median"] and st["threads"]["intra_op"] >= 1
    for key, t in payload["targets"].items():
        st = payload["ratio_spread"][key]
        want = "met" if st["min"] >= t["target"] else "missed" if st["max"] < t["target"] else "undecided"
        assert t["verdict"] == want and t["met"] is (want == "met"), key
    assert len(payload["load_1min_per_round"]) == payload["settings"]["repeats"]


def _positive(values) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values)


def test_throughput_smoke(tmp_path):
    payload = run_script("throughput", TINY, tmp_path)
    agent_cases = {"raw", "raw_reset", "nrstream", "nrstream_oracle", "gymnasium"}
    stream_cases = {"stream", "gather", "stream_plain", "stream_scene"}  # the stream alone (issues 12, 16)
    assert set(payload["fps"]) == agent_cases | stream_cases
    assert _positive(payload["fps"].values())
    agent_ratios = {"nrstream/raw", "nrstream_oracle/raw", "nrstream_oracle/raw_reset", "nrstream/gymnasium"}
    stream_ratios = {"stream/gather", "stream_scene/stream_plain"}
    assert agent_ratios | stream_ratios <= set(payload["ratios"])
    assert _positive(payload["ratios"].values())
    assert agent_ratios | stream_ratios <= set(payload["targets"])
    _spread_ok(payload)
    # the decisions were scored and the metrics updated
    for case in ("nrstream", "nrstream_oracle", "gymnasium"):
        assert payload["cases"][case]["check"]["total"] > 0


def test_training_smoke(tmp_path):
    payload = run_script("training", [*TINY, "--seconds", "0.05"], tmp_path)
    keys = {f"{a}/{loss}" for a in ("rnn", "gru", "lstm", "ssm", "snn") for loss in ("reset", "ce", "ce_kl")}
    assert set(payload["fps"]) == keys and set(payload["bare_fps"]) == keys  # every family, beside its bare loop
    assert _positive(payload["fps"].values()) and _positive(payload["bare_fps"].values())
    assert payload["cases"]["gru/reset"]["protocol"] == "segmented"
    assert payload["cases"]["snn/ce_kl"]["protocol"] == "continual"
    assert math.isfinite(payload["cases"]["gru/ce_kl"]["last_loss"])
    assert {"gru/ce_kl/ce", "ssm/ce_kl/bare"} <= set(payload["targets"])
    _spread_ok(payload)


def test_evaluation_smoke(tmp_path):
    args = ["--config", TOY, "--hidden", "8", "--min-decisions", "20", "--endless-samples", "5", "--repeats", "2"]
    payload = run_script("evaluation", [*args, "--threads", "1"], tmp_path, tiny_shapes=False)
    assert set(payload["fps"]) == {"evaluation", "raw", "evaluation_oracle", "raw_reset"}
    assert _positive(payload["fps"].values())
    assert set(payload["targets"]) == {"evaluation/raw", "evaluation_oracle/raw_reset"}
    assert payload["frames"]["never"] == payload["frames"]["oracle"] > 0
    _spread_ok(payload)


def test_latency_smoke(tmp_path):
    args = ["--archs", "gru", "snn", "--ks", "1", "4", "--calls", "5", "--repeats", "2", "--warmup", "1"]
    payload = run_script("latency", [*args, "--hidden", "8"], tmp_path, tiny_shapes=False)
    gru = payload["architectures"]["gru"]
    for fmt in ("eager", "torchscript") + (("onnx", "onnx_iobinding") if "onnxruntime" in payload["machine"] else ()):
        for k in ("1", "4"):
            cell = gru[fmt][k]
            assert 0 < cell["p50_us"] <= cell["p99_us"] and len(cell["p99_us_rounds"]) == 2
            assert cell["decision_delay_ms"] == (int(k) - 1) * 10
    assert "error" in payload["architectures"]["snn"]["torchscript"]  # says why, does not stop the run
    assert payload["frontend_per_hop"]["p50_us"] > 0
    assert payload["targets"]["gru_k10_p99_us_per_frame"]["verdict"] == "not measured"  # k = 10 not asked for


def test_threads_smoke(tmp_path):
    payload = run_script("threads", [*TINY[:-2], "--seconds", "0.05"], tmp_path)
    assert set(payload["threads"]) == {"1", "2"} and _positive(v["fps"] for v in payload["threads"].values())
    assert payload["ratios"]["2t/1t"]["min"] <= payload["ratios"]["2t/1t"]["median"]


def test_profile_evaluation_smoke(tmp_path):
    out = tmp_path / "profile.txt"
    args = ["--config", TOY, "--policies", "never", "--threads", "1", "--min-decisions", "20", "--top", "3"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_evaluation.py"), *args, "--endless-samples", "5"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    assert "cProfile, by internal time" in text and "torch.profiler" in text and "evaluate_agent" in text


def test_architectures_smoke(tmp_path):
    """Every family sized to the GRU's parameter count, trained and stepped at B = 1; ratios paired per round."""
    payload = run_script("architectures", [*TINY, "--repeats", "2", "--latency-frames", "3"], tmp_path)
    families = {"rnn", "gru", "lstm", "ssm", "snn", "mingru", "minlstm", "mamba", "mamba_n4"}
    assert set(payload["cases"]) == families and set(payload["fps"]) == families
    assert _positive(payload["fps"].values()) and _positive(payload["latency_us"].values())
    gru = payload["cases"]["gru"]["parameters"]
    for name, case in payload["cases"].items():
        assert abs(case["parameters"] - gru) <= 0.25 * gru, (name, case["parameters"], gru)  # matched sizes
        assert len(case["train_fps_runs"]) == 2 and len(case["latency_fps_runs"]) == 2
    assert payload["ratios"]["gru/gru latency"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    slowdown = payload["ratios"]["gru/mamba training"]
    assert slowdown["min"] <= slowdown["median"] <= slowdown["max"]
    assert set(payload["targets"]) == {f"gru/{n} training" for n in families - {"gru"}}
    assert payload["targets"]["gru/mamba training"]["target"] == 2.5
    assert payload["targets"]["gru/mamba training"]["verdict"] in ("met", "missed", "undecided")
    assert len(payload["load_1min_per_round"]["training"]) == 2 and payload["threads"]["intra_op"] == 1
    assert payload["cases"]["mamba_n4"]["arch"] == "mamba" and payload["cases"]["mamba_n4"]["options"]["d_state"] == 4
    assert payload["machine"]["torch_threads"] == 1 and len(payload["machine"]["loadavg"]) == 3


def test_mamba_parts_smoke(tmp_path):
    """The whole mamba step, the step without its scan and the scan alone, each against the GRU, paired per round."""
    payload = run_script("mamba_parts", TINY, tmp_path)
    assert set(payload["fps"]) == {"gru", "mamba", "mamba_no_scan", "scan"} and _positive(payload["fps"].values())
    assert set(payload["ratios"]) == {"gru/mamba training", "gru/mamba_no_scan training", "gru/scan training"}
    for st in payload["ratios"].values():
        assert st["min"] <= st["median"] <= st["max"] and len(st["rounds"]) == 2
    assert payload["case"]["options"]["d_state"] == 16 and payload["machine"]["torch_threads"] == 1


@pytest.mark.parametrize("extra", [["--train-steps", "2"], ["--train-steps", "0", "--reset", "oracle"]])
def test_soak_smoke(tmp_path, extra):
    payload = run_script("soak", [*TINY, "--frames", "20000", *extra], tmp_path, tiny_shapes=True)
    assert payload["frames"] >= 20000 and payload["chunks"] == 500
    assert payload["nonfinite_chunks"] == 0
    memory = payload["memory"]
    assert memory["samples"] > 0 and memory["rss_first10_mb"] > 0 and math.isfinite(memory["growth"])
    assert {"memory_growth", "finite"} == set(payload["targets"])
    assert payload["model"]["trained"] is (extra[1] != "0")
    assert payload["decisions"] > 0 and payload["progress"]


def test_prequential_smoke(tmp_path):
    payload = run_script("prequential", [*TINY, "--phase-frames", "20"], tmp_path)
    assert set(payload["fps"]) == {"train", "prequential", "train_stationary"}
    assert _positive(payload["fps"].values())
    assert {"prequential/train", "scheduled/stationary train"} <= set(payload["ratios"])
    assert _positive(payload["ratios"].values())
    _spread_ok(payload)
    assert payload["targets"]["prequential/train"]["target"] == 0.8
    assert 0 <= payload["check"]["prequential_accuracy"] <= 1  # the predictions were scored


WARMUP_CONFIG = """
run: {{name: warm, seed: 0, device: cpu}}
data:
  source: speech_commands
  options: {{root: {root}}}
  stream: {{gap_min: 10, gap_max: 30, noise: recorded, background: recorded}}
agents: {{archs: [{{name: gru, options: {{hidden_size: 16}}}}], losses: [ce_kl]}}
train: {{steps: 20, lanes: 8, chunk_length: 64, validate: false, progress: false}}
"""


def test_warmup_study_cold_equals_warm_without_a_prefix(tmp_path, speech_sample):
    """benchmarks/warmup.py: with no warming prefix the "warm" run is the cold run, exactly; with one, the same
    decisions are scored (the same stream) and the states start apart."""
    from nrstream.cli import main

    config, ck = tmp_path / "warm.yaml", tmp_path / "ck"
    config.write_text(WARMUP_CONFIG.format(root=speech_sample))
    assert main(["train", str(config), "--checkpoints", str(ck), "--no-progress"]) == 0
    (folder,) = ck.iterdir()

    def study(prefix: int) -> dict:
        out = tmp_path / f"warmup{prefix}.json"
        args = [str(folder), "--lanes", "8", "--frames", "800", "--prefix", str(prefix), "--words", "6",
                "--tag", "sc", "--json", str(out)]  # fmt: skip
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "warmup.py"), *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(out.read_text())["results"][0]

    same, warmed = study(0), study(300)
    for cell in same["accuracy_by_position"].values():
        assert cell["cold"] == cell["warm"] and cell["cold"]["decisions"] > 0
    assert same["state_distance_at_frame"]["1"] == 0.0 and same["first_frame_distance_below"] == {"0.1": 1, "0.01": 1}
    assert same["tag"] == "sc" and same["agent"] == "gru/ce_kl"
    assert warmed["state_distance_at_frame"]["1"] > 0.1  # a zero state is far from a settled one
    for a, b in zip(same["accuracy_by_position"].values(), warmed["accuracy_by_position"].values(), strict=True):
        assert a["cold"] == b["cold"] and b["warm"]["decisions"] == b["cold"]["decisions"]
