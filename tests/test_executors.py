"""Executors without a running Ray: the local executor, progress, and the start-up checks."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import pytest

from nrstream.errors import NrstreamError
from nrstream.lab.executors import (
    EXECUTORS,
    ExecutorError,
    JobFailure,
    JobProgress,
    LocalExecutor,
    RayExecutor,
    check_node_paths,
    make_executor,
    probe_address,
)


def square(x: int) -> int:
    if x == 2:
        raise NrstreamError("job 2: loss 'explode' failed\nsecond line never shown")
    if x == 3:
        raise ZeroDivisionError("division by zero")
    return x * x


def test_local_runs_in_order_and_a_failure_does_not_stop_the_others():
    out = io.StringIO()
    ex = LocalExecutor(progress=True, stream=out)
    results = list(ex.run([0, 1, 2, 3, 4], square))
    assert [job for job, _ in results] == [0, 1, 2, 3, 4]
    assert [r for _, r in results if not isinstance(r, JobFailure)] == [0, 1, 16]
    fail2, fail3 = results[2][1], results[3][1]
    assert fail2 == JobFailure("job 2: loss 'explode' failed", "NrstreamError", fail2.traceback)
    assert "second line" in fail2.traceback and "square" in fail2.traceback
    assert fail3.error == "ZeroDivisionError: division by zero"
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("nrstream: jobs: 3/5 done, 0 running, 2 failed, 0 waiting; finished")
    assert any("FAILED 2" in line for line in lines)
    assert all(t.pid == os.getpid() for t in ex.timings.values()) and len(ex.timings) == 5


def test_local_lets_keyboard_interrupt_through():
    def interrupted(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(LocalExecutor(progress=False).run([1], interrupted))


def test_progress_counts_and_eta_from_throughput():
    now = [100.0]
    out = io.StringIO()
    p = JobProgress(4, stream=out, clock=lambda: now[0])
    p.set_running(2)
    assert p.line() == "nrstream: jobs: 0/4 done, 2 running, 0 failed, 2 waiting; ETA ?"
    now[0] = 130.0
    p.ended(True, 2)
    # one job per 30 s so far, three to go -> 90 s
    assert p.eta() == pytest.approx(90.0)
    assert p.line() == "nrstream: jobs: 1/4 done, 2 running, 0 failed, 1 waiting; ETA 1m30s"
    now[0] = 160.0
    p.ended(False, 1)
    assert p.eta() == pytest.approx(60.0)
    assert p.line().startswith("nrstream: jobs: 1/4 done, 1 running, 1 failed, 1 waiting")
    p.ended(True, 1)
    p.ended(True, 0)
    assert p.line().endswith("; finished") and p.waiting == 0
    assert len(out.getvalue().splitlines()) == 5
    quiet = io.StringIO()
    JobProgress(1, enabled=False, stream=quiet).ended(True, 0)
    assert quiet.getvalue() == ""


def test_local_executor_imports_nothing_from_ray():
    code = (
        "import sys\n"
        "from nrstream.lab.executors import make_executor\n"
        "ex = make_executor('local', progress=False)\n"
        "print(list(ex.run([1, 2], abs)))\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines() == ["[(1, 1), (2, 2)]", "[]"]


def test_unknown_executor_is_one_line_listing_the_choices():
    with pytest.raises(ExecutorError) as info:
        make_executor("spark")
    message = str(info.value)
    assert message == "run.executor: unknown executor 'spark'; choose one of: local, ray"
    assert "\n" not in message and EXECUTORS == ("local", "ray")


def test_ray_address_without_ray_executor_is_refused():
    with pytest.raises(ExecutorError, match="needs the ray executor"):
        make_executor("local", address="auto")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("form", ["{port}", "ray://{port}"])
def test_dead_ray_address_is_one_line_within_seconds(form):
    address = form.format(port=f"127.0.0.1:{_dead_port()}")
    began = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        probe_address(address)
    assert time.monotonic() - began < 30
    message = str(info.value)
    assert "\n" not in message and f"no Ray cluster answers at {address}" in message


def test_dead_ray_address_stops_the_executor_before_ray_init(monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address = f"127.0.0.1:{_dead_port()}"
    began = time.monotonic()
    with pytest.raises(ExecutorError, match=f"no Ray cluster answers at {address}"):
        make_executor("ray", address=address, progress=False).start()
    assert time.monotonic() - began < 30
    assert not ray.is_initialized()


def test_auto_without_a_cluster_says_how_to_start_one(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    with pytest.raises(ExecutorError, match=r"no running Ray cluster found.*ray start --head"):
        probe_address("auto")
    # RAY_ADDRESS is what `auto` joins when set
    dead = f"127.0.0.1:{_dead_port()}"
    monkeypatch.setenv("RAY_ADDRESS", dead)
    with pytest.raises(ExecutorError, match=f"answers at {dead} \\(resolved from 'auto'\\)"):
        probe_address("auto")


def test_live_address_passes_the_probe():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert probe_address(address) == address
        assert probe_address(f"ray://{address}") == f"ray://{address}"


def test_bad_address_form_is_one_line():
    with pytest.raises(ExecutorError, match="is not host:port"):
        probe_address("head-node:port")


def test_gpus_asked_on_a_machine_without_gpus_local():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ExecutorError) as info:
        make_executor("local", resources={"num_cpus": 1, "num_gpus": 0.25})
    assert str(info.value) == (
        "run.resources.num_gpus is 0.25 but torch sees no GPU on this machine; set run.resources.num_gpus: 0"
    )


def test_negative_resources_are_refused():
    with pytest.raises(ExecutorError, match="must be >= 0"):
        RayExecutor(num_cpus=-1).start()


def test_node_path_check_names_what_a_node_cannot_reach(tmp_path):
    good = tmp_path / ".nrstream-reachable-a"
    good.write_text("token-a")
    other = tmp_path / ".nrstream-reachable-b"
    other.write_text("someone else's")
    host, problems = check_node_paths(
        {str(good): "token-a", str(other): "token-b", str(tmp_path / "gone" / ".m"): "t"},
        [str(tmp_path), str(tmp_path / "no-data-here")],
    )
    assert host == socket.gethostname()
    assert problems == [
        f"{tmp_path} holds another file under the marker's name",
        f"cannot read {tmp_path / 'gone'} (No such file or directory)",
        f"{tmp_path / 'no-data-here'} does not exist",
    ]


# ---------------------------------------------------------------------------- the command line (local executor)

CLI_TOY = """
run: {{name: seeds, device: cpu, out_dir: {out}, checkpoint_dir: {ckpt}}}
data:
  source: toy
  options: {{num_classes: 3, feature_size: 4, train_size: 64, validation_size: 16, test_size: 32}}
  stream: {{gap_min: 2, gap_max: 6}}
agents:
  archs: [{{name: gru, options: {{hidden_size: 8}}}}]
  losses: [{losses}]
train: {{steps: 4, lanes: 4, chunk_length: 16, lr: 0.01, validation_lanes: 4, progress: false}}
evaluate:
  lengths: [1, 2]
  min_decisions: 16
  chunk_length: 64
  endless_lanes: 2
  endless_samples: 8
  metrics: [accuracy, noise_entropy]
"""


class ExplodingLoss:
    """A loss plugin that breaks on its first call (a third-party bug)."""

    protocol = "continual"

    def __call__(self, logits, chunk, aux=None):
        raise RuntimeError("explode: the loss plugin broke on purpose")


def cli_config(tmp_path, losses="ce"):
    path = tmp_path / "toy.yaml"
    path.write_text(CLI_TOY.format(out=tmp_path / "runs", ckpt=tmp_path / "ckpt", losses=losses))
    return path


def run_cli(capsys, *argv):
    from nrstream.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("one_torch_thread")
def test_seeds_flag_gives_per_seed_entries_and_the_aggregate(tmp_path, capsys):
    import json

    from nrstream.lab.aggregate import aggregate_runs

    code, out, err = run_cli(capsys, "evaluate", cli_config(tmp_path), "--seeds", "2", "--out", tmp_path / "run")
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [(r["arch"], r["loss"], r["seed"]) for r in results["runs"]] == [("gru", "ce", 0), ("gru", "ce", 1)]
    assert results["config"]["run"]["seeds"] == [0, 1]
    assert results["failed"] == []
    block = results["aggregate"]
    assert block["ci95"] == "student_t_across_seeds"
    (agg,) = block["entries"]
    assert [agg] == aggregate_runs(results["runs"], results["produces"])  # json round trip of the same numbers
    assert agg["n_seeds"] == 2 and agg["seeds"] == [0, 1]
    a0, a1 = (r["accuracy_by_length"]["1"] for r in results["runs"])
    assert agg["accuracy_by_length"]["1"] == pytest.approx((a0 + a1) / 2, abs=1e-15)
    assert "jobs: 2/2 done, 0 running, 0 failed" in err  # progress across jobs, local executor
    # the run folder, the console and the figure show the aggregate
    rows = (tmp_path / "run" / "aggregate.csv").read_text().splitlines()
    assert rows[0] == (
        "arch,loss,reset,length,n_seeds,accuracy_by_length.mean,accuracy_by_length.ci95_low,"
        "accuracy_by_length.ci95_high,accuracy.mean,accuracy.ci95_low,"
        "accuracy.ci95_high,noise_entropy.mean,noise_entropy.ci95_low,noise_entropy.ci95_high"
    )
    assert [r.split(",")[:5] for r in rows[1:]] == [["gru", "ce", "never", "1", "2"], ["gru", "ce", "never", "2", "2"]]
    assert float(rows[1].split(",")[5]) == pytest.approx((a0 + a1) / 2, abs=1e-6)
    assert "across seeds: mean accuracy (%) ± 95 % Student-t half-width" in out
    assert (tmp_path / "run" / "accuracy_vs_length.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.usefixtures("one_torch_thread")
def test_a_job_whose_plugin_raises_is_listed_and_the_others_written(tmp_path, capsys):
    import json

    from nrstream.plugin.registry import get_registry

    registry = get_registry()
    if "explode" not in registry.names("loss"):
        registry.add("loss", "explode", ExplodingLoss, "tests.test_executors")
    code, out, err = run_cli(capsys, "evaluate", cli_config(tmp_path, "explode, ce"), "--out", tmp_path / "run")
    assert code == 1
    assert "nrstream: FAILED gru/explode seed 0: RuntimeError: explode: the loss plugin broke on purpose" in err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [(r["loss"], r["seed"]) for r in results["runs"]] == [("ce", 0)]
    assert results["failed"] == [
        {
            "arch": "gru",
            "loss": "explode",
            "seed": 0,
            "arch_options": {"hidden_size": 8},
            "loss_options": {},
            "error": "RuntimeError: explode: the loss plugin broke on purpose",
            "kind": "RuntimeError",
        }
    ]
    assert (tmp_path / "run" / "results.csv").exists()
    assert "across seeds" not in out  # one seed: the per-run table only, as before


@pytest.mark.parametrize("command", ["evaluate", "train"])
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--executor", "spark"], "nrstream: error: --executor: unknown executor 'spark'; choose one of: local, ray"),
        (["--seeds", "0"], "nrstream: error: --seeds: expected a number of seeds from 1 to 1000, got 0"),
        (
            ["--set", "run.resources.num_gpus=0.5"],
            "nrstream: error: run.resources.num_gpus is 0.5 but torch sees no GPU on this machine; "
            "set run.resources.num_gpus: 0",
        ),
        (["--ray-address", "auto"], "nrstream: error: a Ray address (auto) needs the ray executor; add --executor ray"),
    ],
)
def test_bad_executor_input_is_one_line_exit_2(tmp_path, capsys, command, extra, message):
    import torch

    if "num_gpus=0.5" in extra and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out_flag = ["--out", tmp_path / "run"] if command == "evaluate" else []
    code, out, err = run_cli(capsys, command, cli_config(tmp_path), *out_flag, *extra)
    assert code == 2
    assert err.strip() == message
    assert not (tmp_path / "run").exists()
    assert not any((tmp_path / "ckpt").glob("*/*.pt"))  # nothing trained


def test_dead_ray_address_on_the_command_line_is_one_line_within_30_s(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address = f"127.0.0.1:{_dead_port()}"
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nrstream.cli", "evaluate", str(cli_config(tmp_path)), "--executor", "ray",
         "--ray-address", address, "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert time.monotonic() - began < 30 + 15  # + the interpreter's start-up on a busy machine
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nrstream: error: no Ray cluster answers at {address}")
    assert not (tmp_path / "run").exists()
