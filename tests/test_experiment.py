"""The experiment as a library: jobs, train_job / evaluate_job alone, run_experiment, typed results."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nrstream.lab.config import load_config
from nrstream.lab.engine import train_agent
from nrstream.lab.experiment import Job, JobResult, Results, evaluate_job, plan_jobs, run_experiment, run_job, train_job
from nrstream.lab.loading import load_data
from nrstream.plugin.protocols import PROTOCOLS

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(tmp_path: Path, losses=("reset",)):
    config = load_config(ROOT / "configs" / "toy.yaml")
    config.run.checkpoint_dir = str(tmp_path / "ck")
    config.run.out_dir = str(tmp_path / "runs")
    config.agents = [dataclasses.replace(config.agents[0], loss=loss) for loss in losses]
    config.agents = [dataclasses.replace(a, arch_options={"hidden_size": 8}) for a in config.agents]
    config.train.steps, config.train.validate, config.train.progress = 2, False, False
    config.evaluate.lengths, config.evaluate.endless_samples = [1, 2], 8
    return config


def test_plan_jobs_is_agents_times_seeds_and_jobs_travel(tmp_path):
    config = tiny_config(tmp_path, losses=("reset", "ce_kl"))
    assert [(j.loss, j.seed) for j in plan_jobs(config)] == [("reset", 0), ("ce_kl", 0)]
    config.run.seeds = [0, 5]
    jobs = plan_jobs(config)
    assert [(j.arch, j.loss, j.seed) for j in jobs] == [
        ("gru", "reset", 0),
        ("gru", "reset", 5),
        ("gru", "ce_kl", 0),
        ("gru", "ce_kl", 5),
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        jobs[0].seed = 1
    # what a distributed executor ships: the job, the config and the top-level job function
    assert pickle.loads(pickle.dumps((jobs[1], config, run_job)))[0] == jobs[1]
    assert jobs[1].config_for(config).run.seed == 5 and config.run.seed == 0


def test_train_and_evaluate_alone_equal_run_experiment_and_write_only_their_files(tmp_path):
    config = tiny_config(tmp_path)
    data = load_data(config)
    (job,) = plan_jobs(config)
    trained = train_job(config, job, device=CPU, data=data, progress=False)
    assert sorted(p.name for p in trained.folder.iterdir()) == ["agent.json", "best.pt", "last.pt"]  # issue 13
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no run folder: a job writes only its own files
    alone = evaluate_job(config, job, trained, device=CPU, data=data, progress=False)
    assert isinstance(alone, JobResult) and [r.reset for r in alone.runs] == list(PROTOCOLS["segmented"].eval_resets)
    shard = json.loads((trained.folder / "result.json").read_text())
    assert shard == json.loads(json.dumps(alone.to_json()))
    assert sorted(p.name for p in trained.folder.iterdir()) == ["agent.json", "best.pt", "last.pt", "result.json"]

    results = run_experiment(config, device="cpu", progress=False)
    assert isinstance(results, Results) and results.folder == tmp_path / "runs" / "toy"
    assert [r.accuracy_by_length for r in results.runs] == [r.accuracy_by_length for r in alone.runs]
    assert [r.metrics for r in results.runs] == [r.metrics for r in alone.runs]
    assert all(r.training["reused"] for r in results.runs)  # the job's checkpoint was reused
    written = Results.load(results.folder)
    assert written.to_json()["runs"] == results.to_json()["runs"]
    assert written.runs[0].seed == 0 and written.produces == results.produces


def test_the_job_seed_seeds_everything(tmp_path):
    config = tiny_config(tmp_path)
    data = load_data(config)
    first, second = (Job(config.agents[0], seed) for seed in (0, 1))
    a = train_job(config, first, device=CPU, data=data, progress=False)
    b = train_job(config, second, device=CPU, data=data, progress=False)
    assert a.folder != b.folder  # one checkpoint per (agent, seed)
    weights = zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    assert not all(torch.equal(x, y) for x, y in weights)
    config.run.seed = 1  # the engine trained with run.seed 1 is the job with seed 1
    again = train_agent(config, config.agents[0], data, CPU, log=lambda line: None)
    assert again.folder == b.folder and again.reused


def test_the_python_equivalent_of_evaluate(tmp_path):
    """The README's three lines (and issue 9's acceptance command) work from a fresh interpreter."""
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "toy.yaml", tmp_path / "configs" / "toy.yaml")
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from nrstream import run_experiment, load_config; "
        "r = run_experiment(load_config('configs/toy.yaml'), progress=False); print(r.runs[0].accuracy_by_length)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "runs" / "toy" / "results.json").read_text())
    assert proc.stdout.strip() == str(written["runs"][0]["accuracy_by_length"])
