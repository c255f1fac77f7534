"""``nrstream evaluate``/``train`` end to end on the toy config: run folder, JSON format, errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nrstream.cli import main
from nrstream.errors import DataNotFoundError
from nrstream.lab import report
from nrstream.plugin.registry import get_registry

ROOT = Path(__file__).resolve().parent.parent
TOY = str(ROOT / "configs" / "toy.yaml")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate")
    out = base / "run"
    code = main(["evaluate", TOY, "--out", str(out), "--checkpoints", str(base / "ck"), "--no-progress"])
    assert code == 0
    return out


def test_run_folder_has_every_file(run_folder):
    names = {p.name for p in run_folder.iterdir()}
    assert {"results.json", "results.csv", "config.yaml", "accuracy_vs_length.png"} <= names
    assert {"rolling_accuracy.png", "state_norm.png"} <= names
    for png in run_folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in run_folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders


def test_results_json_matches_the_documented_format(run_folder):
    results = json.loads((run_folder / "results.json").read_text())
    assert {"config", "environment", "data", "runs", "produces"} <= results.keys()
    assert results["format"] == 2
    env = results["environment"]
    for key in ("python", "torch", "nrstream", "device", "git_commit", "seed"):
        assert key in env
    assert env["device"] == "cpu" and env["seed"] == 0
    assert results["data"]["source"] == "toy" and results["data"]["fallback_used"] is False
    assert results["data"]["sizes"] == {"train": 256, "validation": 64, "test": 128}
    config = results["config"]
    assert [(r["arch"], r["loss"], r["reset"]) for r in results["runs"]] == [
        ("gru", "reset", "never"),
        ("gru", "reset", "oracle"),
        ("gru", "ce_kl", "never"),
    ]
    lengths = [str(n) for n in config["evaluate"]["lengths"]]
    min_decisions = config["evaluate"]["min_decisions"]
    for run in results["runs"]:
        assert run["reset"] in ("never", "oracle")
        assert list(run["accuracy_by_length"]) == lengths
        for n in lengths:
            acc = run["accuracy_by_length"][n]
            lo, hi = run["accuracy_ci95_by_length"][n]
            assert isinstance(acc, float) and 0 <= lo <= acc <= hi <= 1
            decisions = run["decisions_by_length"][n]
            assert isinstance(decisions, int) and decisions >= min_decisions
            assert decisions >= results["data"]["sizes"]["test"]  # the whole test split, at least once
            assert decisions == run["lanes_by_length"][n] * int(n)
        metrics = run["metrics"]
        assert 0 <= metrics["noise_entropy"]["noise_entropy"] <= 1
        rolling = metrics["rolling_accuracy"]["rolling_accuracy"]
        # evaluate.rolling_window is the default of the metric's ordinary `window` option
        assert f"last {config['evaluate']['rolling_window']} decisions" in rolling["y_label"]
        assert rolling["y"] and all(0 <= y <= 1 for y in rolling["y"])
        assert metrics["state_norm"]["state_norm"]["y"] and metrics["state_norm"]["mean"] > 0
        assert set(metrics) == {m["name"] for m in config["evaluate"]["metrics"]}
        for name, keys in results["produces"].items():  # every metric returns exactly what it declares
            assert set(metrics[name]) == set(keys)
        assert run["seed"] == 0
        assert run["timings"]["train_seconds"] >= 0 and run["timings"]["evaluate_seconds"] > 0
    # oracle and never runs of the segmented agent share its training
    assert results["runs"][0]["training"] == results["runs"][1]["training"]


def test_csv_and_resolved_config(run_folder):
    rows = list(csv.DictReader((run_folder / "results.csv").open()))
    results = json.loads((run_folder / "results.json").read_text())
    assert len(rows) == sum(len(r["accuracy_by_length"]) for r in results["runs"])
    assert math.isclose(
        float(rows[0]["accuracy_by_length"]), results["runs"][0]["accuracy_by_length"]["1"], abs_tol=1e-6
    )
    entropy = results["runs"][0]["metrics"]["noise_entropy"]["noise_entropy"]
    assert math.isclose(float(rows[0]["noise_entropy"]), entropy, abs_tol=1e-6)  # a metric scalar is a column
    assert yaml.safe_load((run_folder / "config.yaml").read_text()) == results["config"]
    code = main(["train", str(run_folder / "config.yaml"), "--no-progress"])  # the resolved config is valid
    assert code == 0  # ... and names the same checkpoints: nothing to train


def test_second_run_reuses_checkpoints_and_replaces_the_folder(run_folder, capsys):
    before = json.loads((run_folder / "results.json").read_text())
    checkpoints = before["config"]["run"]["checkpoint_dir"]
    code = main(["evaluate", TOY, "--out", str(run_folder), "--checkpoints", checkpoints, "--no-progress"])
    assert code == 0
    after = json.loads((run_folder / "results.json").read_text())
    assert all(r["training"]["reused"] for r in after["runs"])
    assert [r["accuracy_by_length"] for r in after["runs"]] == [r["accuracy_by_length"] for r in before["runs"]]
    out = capsys.readouterr().out
    assert "ce_kl" in out and "n=8" in out  # the console table


def test_failed_run_leaves_no_run_folder(tmp_path, monkeypatch):
    def broken(results, folder):
        (folder / "accuracy_vs_length.png").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "_figures", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk full"):
        main(["evaluate", TOY, "--out", str(out), "--checkpoints", str(tmp_path / "ck"), "--no-progress"])
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    # an existing run folder survives a failed rewrite untouched
    out.mkdir()
    (out / "results.json").write_text('{"format": 2, "runs": []}')  # a run folder nrstream wrote
    with pytest.raises(RuntimeError):
        main(["evaluate", TOY, "--out", str(out), "--checkpoints", str(tmp_path / "ck"), "--no-progress"])
    assert (out / "results.json").read_text() == '{"format": 2, "runs": []}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "run"]


def test_data_fallback_is_announced_and_recorded(tmp_path, capsys):
    registry = get_registry()

    def missing(**_):
        raise DataNotFoundError("no data here; looked in /nowhere")

    registry.add("data_source", "test_missing", missing, "tests")
    try:
        raw = yaml.safe_load(Path(TOY).read_text())
        raw["data"]["fallback"], raw["data"]["fallback_options"] = "toy", raw["data"].pop("options")
        raw["data"]["source"] = "test_missing"
        raw["agents"] = {"archs": [{"name": "gru", "options": {"hidden_size": 8}}], "losses": ["ce_kl"]}
        raw["train"]["steps"] = 2
        raw["evaluate"].update(lengths=[1, 2], endless_samples=8)
        config = tmp_path / "fallback.yaml"
        config.write_text(yaml.safe_dump(raw))
        out = tmp_path / "run"
        assert main(["evaluate", str(config), "--out", str(out), "--checkpoints", str(tmp_path / "ck")]) == 0
    finally:
        del registry._items["data_source"]["test_missing"]
    assert "using fallback 'toy'" in capsys.readouterr().err
    data = json.loads((out / "results.json").read_text())["data"]
    assert data["source"] == "toy" and data["fallback_used"] is True


def test_bad_config_is_one_line_and_exit_code_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("agents: [{arch: gru, loss: ce_kl}]\ntrain: {epocs: 3}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "nrstream.cli", "evaluate", str(config), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"nrstream: error: {config}: train.epocs: unknown key; did you mean 'epochs'?\n"
    assert not (tmp_path / "run").exists()


def test_perfect_and_zero_accuracy_still_plot(run_folder, tmp_path):
    """At 100 % or 0 % the Wilson bound sits on the estimate: no negative error bar, no lost run."""
    from nrstream.lab.evaluation import wilson_interval
    from nrstream.lab.report import write_run_folder

    results = json.loads((run_folder / "results.json").read_text())
    for run, correct in zip(results["runs"], (10112, 0, 10112), strict=True):
        for n in run["accuracy_by_length"]:
            run["accuracy_by_length"][n] = correct / 10112
            run["accuracy_ci95_by_length"][n] = list(wilson_interval(correct, 10112))
    assert wilson_interval(10112, 10112)[1] == 1.0 and wilson_interval(0, 10112)[0] == 0.0
    write_run_folder(tmp_path / "edge", results)
    assert (tmp_path / "edge" / "accuracy_vs_length.png").read_bytes()[:4] == b"\x89PNG"
