"""The run folder is metric-generic: any metric's declared scalars and curves reach the CSV and figures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import pip_install_into, write_plugin_distribution

from nrstream.artifacts.results import Results, read_csv
from nrstream.lab.report import console_table, markdown_table, scalar_columns, write_run_folder

ROOT = Path(__file__).resolve().parent.parent

#: a third-party metric, as its own distribution: one curve and two scalars, nothing the core knows
DUMMY_PLUGIN = '''
from nrstream import hookimpl


class FrameCount:
    """Counts frames per chunk: a curve of frames seen against chunks, and totals."""

    needs_hidden = False
    produces = {"frame_count": "curve", "chunks": "scalar", "mean_logit": "scalar"}

    def __init__(self, *, scale: float = 1.0):
        self.scale = float(scale)
        self.reset()

    def reset(self):
        self._x, self._y, self._sum, self._n = [], [], 0.0, 0

    def update(self, chunk, logits, aux=None):
        frames = (self._y[-1] if self._y else 0.0) + self.scale * logits.shape[0] * logits.shape[1]
        self._x.append(float(len(self._x) + 1))
        self._y.append(float(frames))
        self._sum += float(logits.float().mean())
        self._n += 1

    def compute(self):
        curve = {"x": list(self._x), "y": list(self._y), "x_label": "chunk", "y_label": "frames seen"}
        mean = self._sum / self._n if self._n else None
        return {"frame_count": curve, "chunks": float(self._n), "mean_logit": mean}


@hookimpl
def nrstream_register_metrics(register):
    register("frame_count", FrameCount)
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """``nrstream-test-frame-count`` installed with pip into its own folder (a real entry point)."""
    root = tmp_path_factory.mktemp("frame_count")
    folder = write_plugin_distribution(root / "src", "nrstream_test_frame_count", DUMMY_PLUGIN)
    site = pip_install_into(root / "site", folder)
    return site


def test_a_third_party_metric_gets_its_csv_columns_and_figure(plugin_site, tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "toy.yaml").read_text())
    raw["agents"] = {"archs": [{"name": "gru", "options": {"hidden_size": 8}}], "losses": ["ce_kl"]}
    raw["train"].update(steps=2, validate=False)
    raw["evaluate"].update(lengths=[1, 2], endless_samples=8)
    raw["evaluate"]["metrics"] = [{"name": "frame_count", "options": {"scale": 2}}, "noise_entropy"]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "nrstream.cli", "evaluate", str(config), "--out", str(out), "--no-progress"]
        + ["--checkpoints", str(tmp_path / "ck")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["produces"]["frame_count"] == {"frame_count": "curve", "chunks": "scalar", "mean_logit": "scalar"}
    metric = results["runs"][0]["metrics"]["frame_count"]
    frames_per_lane = results["runs"][0]["endless"]["frames_per_lane"]
    # the option reached the plugin: every frame of every lane counted twice
    assert metric["frame_count"]["y"][-1] == 2 * raw["evaluate"]["endless_lanes"] * frames_per_lane
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 and {"frame_count.chunks", "frame_count.mean_logit", "noise_entropy"} <= set(rows[0])
    assert float(rows[0]["frame_count.chunks"]) == metric["chunks"] == len(metric["frame_count"]["x"])
    assert (out / "frame_count.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "noise_entropy.png").exists()  # scalars make columns, not figures
    assert "noise_entropy" in proc.stdout.splitlines()[0]  # a metric's own-name scalar is a console column


def _results(metrics: dict, produces: dict) -> dict:
    run = {
        "arch": "gru",
        "loss": "ce",
        "seed": 0,
        "reset": "never",
        "accuracy_by_length": {"1": 0.5, "2": 0.25},
        "accuracy_ci95_by_length": {"1": [0.4, 0.6], "2": [0.2, 0.3]},
        "decisions_by_length": {"1": 100, "2": 100},
        "metrics": metrics,
    }
    return {"format": 2, "config": {"run": {"name": "x"}}, "produces": produces, "runs": [run]}


def test_results_json_is_strict_json_and_names_never_collide(tmp_path):
    nan = float("nan")
    curve = {"x": [1.0, 2.0], "y": [0.5, nan], "x_label": "k", "y_label": "v"}
    results = _results(
        {"accuracy": {"accuracy": nan, "total": 3.0}, "wobble": {"wobble": float("inf"), "curve": curve}},
        {"accuracy": {"accuracy": "scalar", "total": "scalar"}, "wobble": {"wobble": "scalar", "curve": "curve"}},
    )
    # issue 26: the fixed columns are named as in results.json, so the accuracy metric's scalar is plain
    # "accuracy"; a metric key equal to a fixed column would keep its metric prefix
    assert list(scalar_columns(results)) == ["accuracy", "accuracy.total", "wobble"]
    assert list(scalar_columns(_results({"length": {"length": 1.0}}, {"length": {"length": "scalar"}}))) == [
        "length.length"
    ]
    names = write_run_folder(tmp_path / "run", results)
    assert names == ["results.json", "results.csv", "config.yaml", "accuracy_vs_length.png", "wobble_curve.png"]

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    written = json.loads((tmp_path / "run" / "results.json").read_text(), parse_constant=refuse)
    metrics = written["runs"][0]["metrics"]
    assert metrics["accuracy"]["accuracy"] is None and metrics["wobble"]["wobble"] is None
    assert metrics["wobble"]["curve"]["y"] == [0.5, None]
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert list(rows[0]) == [
        "arch", "loss", "seed", "reset", "length", "accuracy_by_length", "accuracy_by_length.ci95_low",
        "accuracy_by_length.ci95_high", "decisions_by_length", "accuracy", "accuracy.total", "wobble",
    ]  # fmt: skip
    assert [r["accuracy.total"] for r in rows] == ["3", "3"] and rows[0]["wobble"] == ""
    assert rows[1]["accuracy_by_length"] == "0.250000" and rows[1]["accuracy_by_length.ci95_high"] == "0.300000"
    assert read_csv(tmp_path / "run" / "results.csv") == rows
    assert console_table(written).splitlines()[0].split()[-1] == "wobble"
    assert markdown_table(written).splitlines()[0].endswith("| wobble |")


def test_format_1_results_still_load():
    old = _results({"noise_entropy": {"noise_entropy": 0.9, "frames": 10}}, {})
    old.pop("produces")
    old["format"] = 1
    old.update(environment={"seed": 3}, data={}, timings={})
    old["runs"][0].pop("seed")
    old["runs"][0]["noise_entropy"] = 0.9  # format 1 repeated three metrics at the top of each run
    results = Results.from_json(old)
    assert results.format == 1 and results.runs[0].seed == 3 and results.produces == {}
    assert results.runs[0].accuracy_by_length == {"1": 0.5, "2": 0.25}
    assert results.runs[0].metrics["noise_entropy"]["noise_entropy"] == 0.9


def test_read_csv_gives_old_files_todays_column_names(tmp_path):
    # issue 26: results.csv and aggregate.csv as nrstream wrote them before the columns were renamed
    old_results = tmp_path / "results.csv"
    old_results.write_text(
        "arch,loss,seed,reset,length,accuracy,ci95_low,ci95_high,decisions,accuracy.accuracy,noise_entropy\n"
        "gru,ce,0,never,1,0.500000,0.400000,0.600000,100,0.450000,0.900000\n"
    )
    (row,) = read_csv(old_results)
    assert row == {
        "arch": "gru", "loss": "ce", "seed": "0", "reset": "never", "length": "1", "accuracy_by_length": "0.500000",
        "accuracy_by_length.ci95_low": "0.400000", "accuracy_by_length.ci95_high": "0.600000",
        "decisions_by_length": "100", "accuracy": "0.450000", "noise_entropy": "0.900000",
    }  # fmt: skip
    old_aggregate = tmp_path / "aggregate.csv"
    old_aggregate.write_text(
        "arch,loss,reset,length,n_seeds,accuracy_mean,ci95_low,ci95_high,accuracy.mean,accuracy.ci95_low,"
        "accuracy.ci95_high\ngru,ce,never,1,2,0.5,0.4,0.6,0.45,0.4,0.5\n"
    )
    (row,) = read_csv(old_aggregate)
    assert list(row) == [
        "arch", "loss", "reset", "length", "n_seeds", "accuracy_by_length.mean", "accuracy_by_length.ci95_low",
        "accuracy_by_length.ci95_high", "accuracy.mean", "accuracy.ci95_low", "accuracy.ci95_high",
    ]  # fmt: skip
    assert row["accuracy_by_length.mean"] == "0.5" and row["accuracy.mean"] == "0.45"
