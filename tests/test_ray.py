"""The Ray executor on a local Ray (2 CPUs) started once for this module.

Same numbers as the local executor, bit for bit; a worker killed mid-job is retried and the
job resumes from its checkpoint to the same result; a job whose plugin raises is reported
with its message while the others' results are kept; start-up checks on a live cluster.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'nrstream[ray]')")

from nrstream.lab.executors import (  # noqa: E402
    ExecutorError,
    JobFailure,
    JobRunner,
    LocalExecutor,
    RayExecutor,
    run_job_in_worker,
)

# functions of this module run inside Ray workers, which cannot import it: ship them by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TOY = """
run: {{name: sweep, seeds: [0, 1], device: cpu, out_dir: {out}, checkpoint_dir: {ckpt}}}
data:
  source: toy
  options: {{num_classes: 3, feature_size: 4, train_size: 64, validation_size: 16, test_size: 32}}
  stream: {{gap_min: 2, gap_max: 6}}
agents:
  archs: [{{name: gru, options: {{hidden_size: 8}}}}, {{name: lstm, options: {{hidden_size: 8}}}}]
  losses: [{losses}]
train: {{steps: 6, checkpoint_every: 2, lanes: 4, chunk_length: 16, lr: 0.01, validation_lanes: 4, progress: false}}
evaluate:
  lengths: [1, 2]
  min_decisions: 16
  chunk_length: 64
  endless_lanes: 2
  endless_samples: 8
  metrics: [accuracy, noise_entropy]
"""


def toy_config(tmp_path: Path, name: str, losses: str = "ce, ce_kl"):
    from nrstream.lab.config import load_config

    path = tmp_path / f"{name}.yaml"
    path.write_text(TOY.format(out=tmp_path / name / "runs", ckpt=tmp_path / name / "ckpt", losses=losses))
    return load_config(path)


def accuracies(outcomes) -> dict:
    """(arch, loss, seed, reset) -> accuracy_by_length of every RunResult."""
    return {
        (r.arch, r.loss, r.seed, r.reset): r.accuracy_by_length
        for outcome in outcomes
        if not isinstance(outcome, JobFailure)
        for r in outcome.runs
    }


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, one_torch_thread):
    """The 2 x 2 x 2 toy experiment run by the local executor (one thread, as each Ray task has)."""
    from nrstream.lab.experiment import plan_jobs, run_job
    from nrstream.lab.loading import load_data

    config = toy_config(tmp_path_factory.mktemp("local"), "local")
    jobs = plan_jobs(config)
    import torch

    outcomes = JobRunner(LocalExecutor(progress=False))(
        config, jobs, device=torch.device("cpu"), data=load_data(config), progress=False, job_fn=run_job
    )
    return jobs, outcomes


def test_plain_functions_and_failures(ray_session):
    ex = RayExecutor(num_cpus=1, progress=False)
    results = dict(ex.run([1, 2, 3, 0], lambda x: 12 // x))
    assert results == {1: 12, 2: 6, 3: 4, 0: JobFailure("ZeroDivisionError: integer division or modulo by zero",
                                                         "ZeroDivisionError", results[0].traceback)}  # fmt: skip
    assert "ZeroDivisionError" in results[0].traceback
    assert {t.pid for t in ex.timings.values()} - {None} and all(t.pid != os.getpid() for t in ex.timings.values())
    ex.close()
    assert ray.is_initialized()  # a session the caller opened stays open


def test_same_numbers_as_local_bit_for_bit_and_a_failing_plugin_fails_alone(ray_session, local_reference, tmp_path):
    jobs, local = local_reference
    assert len(jobs) == 8 and not [o.error for o in local if isinstance(o, JobFailure)]
    from nrstream.lab.experiment import plan_jobs

    _register_explode()  # the config names it: the driver validates it
    config = toy_config(tmp_path, "ray", losses="ce, ce_kl, explode")
    ray_jobs = [j for j in plan_jobs(config) if j.loss != "explode" or (j.arch, j.seed) == ("gru", 0)]
    assert [(j.arch, j.loss, j.seed) for j in ray_jobs if j.loss != "explode"] == [
        (j.arch, j.loss, j.seed) for j in jobs
    ]
    out = RayExecutor(num_cpus=1, progress=False).run(ray_jobs, functools.partial(with_explode, config))
    outcomes = {(j.arch, j.loss, j.seed): o for j, o in out}
    failure = outcomes.pop(("gru", "explode", 0))
    assert failure.error == "RuntimeError: explode: the loss plugin broke on purpose"
    assert "ExplodingLoss" in failure.traceback or "explode" in failure.traceback
    assert [type(o).__name__ for o in outcomes.values()] == ["JobResult"] * 8
    acc = accuracies(outcomes.values())
    assert acc == accuracies(local)  # exact float equality, every (arch, loss, seed, reset, length)
    # seeds really differ: the two seeds of an agent do not give the same numbers everywhere
    assert any(acc[(a, lo, 0, r)] != acc[(a, lo, 1, r)] for (a, lo, _s, r) in acc)


def test_job_runner_returns_outcomes_in_job_order(ray_session, local_reference, tmp_path):
    """The adapter run_experiment uses: Ray ends jobs in any order, the runner returns them in plan order."""
    jobs, local = local_reference
    from nrstream.lab.experiment import plan_jobs, run_job

    config = toy_config(tmp_path, "order")
    mine = plan_jobs(config)[:2]
    runner = JobRunner(RayExecutor(num_cpus=1, progress=False))
    out = runner(config, mine, device=None, data=None, progress=False, job_fn=run_job)
    assert [(o.job.arch, o.job.loss, o.job.seed) for o in out] == [(j.arch, j.loss, j.seed) for j in mine]
    assert accuracies(out) == {
        k: v for k, v in accuracies(local).items() if k[:3] in {("gru", "ce", 0), ("gru", "ce", 1)}
    }
    assert all(Path(o.runs[0].training["checkpoint"]).is_absolute() for o in out)


def killable(config, pid_dir: str, job):
    """A job that, on its first attempt only, writes its worker pid after step 2 and waits to be killed."""
    from nrstream.lab.experiment import evaluate_job, train_job

    marker = Path(pid_dir) / f"{job.arch}-{job.loss}-{job.seed}.pid"

    def on_step(step: int) -> None:
        if step == 2 and job.arch == "gru" and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(120)  # the test kills this process here; a retry finds the marker and runs on

    trained = train_job(config, job, device="cpu", progress=False, on_step=on_step)
    return evaluate_job(config, job, trained, device="cpu", progress=False)


def test_killed_worker_is_retried_and_the_job_resumes_to_the_same_result(ray_session, local_reference, tmp_path):
    jobs, local = local_reference
    from nrstream.lab.experiment import plan_jobs

    config = toy_config(tmp_path, "kill")
    mine = [j for j in plan_jobs(config) if (j.arch, j.loss, j.seed) in {("gru", "ce", 0), ("lstm", "ce_kl", 1)}]
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed = []

    def assassin():
        deadline = time.monotonic() + 120
        marker = pid_dir / "gru-ce-0.pid"
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.05)
        time.sleep(0.2)  # the pid is written before the sleep starts
        if marker.exists():
            pid = int(marker.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=assassin, daemon=True)
    thread.start()
    ex = RayExecutor(num_cpus=1, max_retries=2, progress=False)
    out = [outcome for _job, outcome in ex.run(mine, functools.partial(killable, config, str(pid_dir)))]
    thread.join(timeout=5)
    assert killed, "the job never reached step 2"
    assert not any(isinstance(o, JobFailure) for o in out), out
    gru = next(i for i, j in enumerate(mine) if j.arch == "gru")
    assert ex.timings[gru].pid != killed[0]  # the result came from another worker
    trained = [o.runs[0].training for o in out if o.job.arch == "gru"][0]
    assert Path(trained["checkpoint"]).parent == tmp_path / "kill" / "ckpt" and trained["steps"] == 6
    reference = accuracies(local)
    assert len(accuracies(out)) == 2
    for (arch, loss, seed, reset), acc in accuracies(out).items():
        assert acc == reference[(arch, loss, seed, reset)]


class ExplodingLoss:
    """A loss plugin that breaks on its first call (a third-party bug)."""

    protocol = "continual"

    def __call__(self, logits, chunk, aux=None):
        raise RuntimeError("explode: the loss plugin broke on purpose")


def _register_explode() -> None:
    from nrstream.plugin.registry import get_registry

    registry = get_registry()
    if "explode" not in registry.names("loss"):
        registry.add("loss", "explode", ExplodingLoss, "tests.test_ray")


def with_explode(config, job):
    """run_job_in_worker, with the test's loss plugin registered in the worker first."""
    from nrstream.lab.experiment import run_job

    _register_explode()  # the worker's own registry does not know the test's plugin
    return run_job_in_worker(config, False, job, run_job)


def test_resources_no_node_has_are_one_line(ray_session):
    with pytest.raises(ExecutorError) as info:
        RayExecutor(num_cpus=1, num_gpus=0.25, progress=False).start()
    assert str(info.value).startswith("run.resources.num_gpus is 0.25 but the Ray cluster (1 node, at most 2 CPUs")
    assert "no GPU; set run.resources.num_gpus: 0" in str(info.value)
    with pytest.raises(ExecutorError, match="num_cpus is 4 but no node .* has that many; the jobs would wait forever"):
        RayExecutor(num_cpus=4, progress=False).start()
    assert ray.is_initialized()


def test_reachability_check_on_the_nodes(ray_session, tmp_path):
    ckpt = tmp_path / "ckpt"
    ex = RayExecutor(shared_paths=[ckpt], data_paths=[tmp_path], progress=False)
    ex.check_reachable(timeout=60)
    assert ckpt.is_dir() and list(ckpt.iterdir()) == []  # the marker is gone
    missing = tmp_path / "not-on-the-nodes"
    bad = RayExecutor(shared_paths=[ckpt], data_paths=[missing], progress=False)
    with pytest.raises(ExecutorError, match=f"{missing} does not exist; every node needs the checkpoint folder"):
        bad.check_reachable(timeout=60)


def test_evaluate_command_with_the_ray_executor(ray_session, local_reference, tmp_path, capsys):
    """``nrstream evaluate --executor ray --seeds 2``: the run folder holds the local numbers and the aggregate."""
    import json

    from nrstream.cli import main

    _jobs, local = local_reference
    path = tmp_path / "one.yaml"
    text = TOY.format(out=tmp_path / "runs", ckpt=tmp_path / "ckpt", losses="ce").replace("seeds: [0, 1], ", "")
    path.write_text(text.replace("{name: lstm, options: {hidden_size: 8}}", "").replace(", ]", "]"))
    code = main(["evaluate", str(path), "--executor", "ray", "--seeds", "2", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["run"]["executor"] == "ray" and results["config"]["run"]["seeds"] == [0, 1]
    got = {(r["arch"], r["loss"], r["seed"], r["reset"]): r["accuracy_by_length"] for r in results["runs"]}
    assert got == {k: v for k, v in accuracies(local).items() if k[:2] == ("gru", "ce")}
    (agg,) = results["aggregate"]["entries"]
    assert agg["n_seeds"] == 2 and agg["accuracy_by_seed"]["1"] == [got[("gru", "ce", s, "never")]["1"] for s in (0, 1)]
    assert "jobs: 2/2 done, 0 running, 0 failed, 0 waiting; finished" in err
    assert "across seeds" in out
    assert ray.is_initialized()  # the test's session is not the command's to shut down


def test_train_command_with_the_ray_executor(ray_session, local_reference, tmp_path, capsys):
    """``nrstream train --executor ray``: a local evaluate reuses the checkpoints Ray wrote, with the same numbers."""
    import json

    from nrstream.cli import main

    _jobs, local = local_reference
    path = tmp_path / "one.yaml"
    text = TOY.format(out=tmp_path / "runs", ckpt=tmp_path / "ckpt", losses="ce_kl").replace("seeds: [0, 1], ", "")
    path.write_text(text.replace("{name: lstm, options: {hidden_size: 8}}", "").replace(", ]", "]"))
    code = main(["train", str(path), "--executor", "ray", "--seeds", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "jobs: 2/2 done, 0 running, 0 failed, 0 waiting; finished" in err
    assert len([f for f in (tmp_path / "ckpt").iterdir() if (f / "agent.json").exists()]) == 2
    code = main(["evaluate", str(path), "--seeds", "2", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.count(": reused (6 steps") == 2  # nothing trained locally
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    got = {(r["arch"], r["loss"], r["seed"], r["reset"]): r["accuracy_by_length"] for r in results["runs"]}
    assert got == {k: v for k, v in accuracies(local).items() if k[:2] == ("gru", "ce_kl")}
    assert ray.is_initialized()
