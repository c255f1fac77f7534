"""The experiment as a library: plan jobs, train and evaluate them, merge the results.

``nrstream evaluate CONFIG`` is, in Python::

    from nrstream import load_config, run_experiment

    results = run_experiment(load_config("configs/quickstart.yaml"))  # writes runs/quickstart/
    print(results.runs[0].accuracy_by_length)

The unit of work is a :class:`Job`: one agent (architecture + loss, with their options)
and one seed. :func:`train_job` trains it (or reuses / resumes its checkpoint folder),
:func:`evaluate_job` scores it under every reset policy its loss's protocol lists
(:mod:`nrstream.plugin.protocols`); each writes only its own files (the checkpoint folder, and
``result.json`` in it). :func:`run_job` does both and is what an executor runs: a
top-level function of picklable arguments, so a distributed executor can ship it to a
worker. :func:`run_experiment` plans the jobs, hands them to an executor (default: the
config's ``run.executor``, :mod:`nrstream.lab.executors`: ``local``, one after another in this
process, or ``ray``), merges what comes back into a :class:`Results` (jobs that raised are
listed in ``failed``, with the across-seed aggregate of the others) and writes the run
folder atomically (:mod:`nrstream.lab.report`).

A job's seed plays the role of ``run.seed`` for everything it does: weight
initialisation, the training and validation streams, and the test streams.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nrstream.artifacts.results import Results, RunResult
from nrstream.artifacts.run_folder import check_apart, check_run_folder, check_writable_folder, run_folder_lock
from nrstream.atomic import atomic_file
from nrstream.errors import NonFiniteError
from nrstream.lab.config import AgentConfig, Config, config_to_dict, load_config
from nrstream.lab.engine import resolve_device, train_agent
from nrstream.lab.evaluation import evaluate_agent
from nrstream.lab.executors import Executor, JobFailure, JobRunner, LocalExecutor, executor_from_config
from nrstream.lab.loading import LoadedData, load_data
from nrstream.lab.report import environment, write_run_folder
from nrstream.lab.tracking import tracker_folder
from nrstream.log import line_logger
from nrstream.plugin.protocols import evaluation_settings, get_protocol

__all__ = [
    "Job",
    "Trained",
    "RunResult",
    "JobResult",
    "Results",
    "plan_jobs",
    "train_job",
    "evaluate_job",
    "run_job",
    "train_experiment",
    "run_experiment",
    "check_outputs",
    "load_config",
]


# ---------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One unit of work: an agent (``arch`` + ``loss`` with their options) and a seed."""

    agent: AgentConfig
    seed: int

    @property
    def arch(self) -> str:
        return self.agent.arch

    @property
    def loss(self) -> str:
        return self.agent.loss

    @property
    def label(self) -> str:
        return f"{self.agent.label} seed {self.seed}"

    def config_for(self, config: Config, *, progress: bool = True) -> Config:
        """``config`` as this job sees it: ``run.seed`` is the job's seed."""
        run = dataclasses.replace(config.run, seed=self.seed)
        train = config.train if progress else dataclasses.replace(config.train, progress=False)
        return dataclasses.replace(config, run=run, train=train)


def plan_jobs(config: Config) -> list[Job]:
    """Every (agent, seed) of ``config``, agents in config order; seeds ``run.seeds`` or ``[run.seed]``."""
    seeds = list(getattr(config.run, "seeds", None) or [config.run.seed])
    return [Job(agent, int(seed)) for agent in config.agents for seed in seeds]


# ---------------------------------------------------------------------------- results


@dataclass
class Trained:
    """A trained job: its model (weights as ``evaluate.checkpoint`` selects) and its training record."""

    job: Job
    model: nn.Module
    protocol: str
    folder: Path
    steps: int
    history: list = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False

    def training_json(self) -> dict:
        return {"steps": self.steps, "history": self.history, "reused": self.reused, "checkpoint": str(self.folder)}


@dataclass
class JobResult:
    """What one job produced: one :class:`RunResult` per reset policy, and what its metrics declare."""

    job: Job
    runs: list[RunResult]
    produces: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "arch": self.job.arch,
            "loss": self.job.loss,
            "seed": self.job.seed,
            "produces": self.produces,
            "runs": [r.to_json() for r in self.runs],
        }


# ---------------------------------------------------------------------------- train / evaluate one job


def _device(config: Config, device: str | torch.device | None) -> torch.device:
    return resolve_device(device if device is not None else config.run.device)


def _say(progress: bool) -> Callable[[str], None]:
    # issue 15 (J): progress lines go to the nrstream.lab.experiment logger (the CLI shows them; -q hides them)
    return line_logger(logging.getLogger("nrstream.lab.experiment")) if progress else (lambda line: None)


def train_job(
    config: Config,
    job: Job,
    *,
    device: str | torch.device | None = None,
    data: LoadedData | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Trained:
    """Train one job (resuming, or reusing a finished checkpoint); writes only its checkpoint folder.

    The folder also gets ``agent.json`` (:func:`nrstream.artifacts.checkpoints.write_agent_file`): what
    ``listen`` and ``export`` need to use the weights without the run folder.

    Args:
        device: default ``run.device``.
        data: the loaded data (default: load ``data.source`` now).
        progress: log lines and (with ``train.progress``) a progress bar on stderr.
        on_step: called with the step count after every optimiser step.
    """
    device = _device(config, device)
    data = data if data is not None else load_data(config)
    say = _say(progress)
    result = train_agent(job.config_for(config, progress=progress), job.agent, data, device, on_step=on_step, log=say)
    what = "reused" if result.reused else f"trained in {result.seconds:.1f} s"
    # issue 13: agent.json beside the weights, so that `listen` and `export` can load the checkpoint folder alone
    from nrstream.artifacts.checkpoints import write_agent_file

    # the stream it was trained on travels with it (TrainedAgent.stream): make-recording and listen default to it
    stream = dataclasses.asdict(get_protocol(result.protocol).stream_settings(config.data.stream))
    agent = {"arch": job.arch, "loss": job.loss, "arch_options": dict(job.agent.arch_options),
             "loss_options": dict(job.agent.loss_options), "seed": job.seed, "protocol": result.protocol,
             "stream": stream}  # fmt: skip
    write_agent_file(result.folder, agent, {**data.describe(), "class_names": list(data.dataset.class_names)})
    say(f"nrstream: {job.label}: {what} ({result.steps} steps, {result.folder})")
    return Trained(job, result.model, result.protocol, result.folder, result.steps, result.history, result.seconds,
                   result.reused)  # fmt: skip


def _run_result(job: Job, reset: str, trained: Trained, evaluated: dict, seconds: float) -> RunResult:
    by_length = evaluated["by_length"]
    return RunResult(
        arch=job.arch,
        loss=job.loss,
        seed=job.seed,
        reset=reset,
        protocol=trained.protocol,
        arch_options=dict(job.agent.arch_options),
        loss_options=dict(job.agent.loss_options),
        accuracy_by_length={n: r.accuracy for n, r in by_length.items()},
        accuracy_ci95_by_length={n: list(r.ci95) for n, r in by_length.items()},
        decisions_by_length={n: r.total for n, r in by_length.items()},
        lanes_by_length={n: r.total // int(n) for n, r in by_length.items()},
        metrics=evaluated["metrics"],
        endless={k: v for k, v in evaluated["endless"].items() if k != "seconds"},
        training=trained.training_json(),
        timings={
            "train_seconds": trained.seconds,
            "evaluate_seconds": seconds,
            "length_seconds": {n: r.seconds for n, r in by_length.items()},
            "endless_seconds": evaluated["endless"]["seconds"],
        },
    )


def evaluate_job(
    config: Config,
    job: Job,
    trained: Trained,
    *,
    device: str | torch.device | None = None,
    data: LoadedData | None = None,
    progress: bool = True,
    shard: bool = True,
) -> JobResult:
    """Score a trained job under every reset policy of its protocol (one :class:`RunResult` each).

    With ``shard`` (default), the result is also written to ``<checkpoint folder>/result.json``
    (atomically, strict JSON): the job's own file, which a driver may merge.
    """
    device = _device(config, device)
    data = data if data is not None else load_data(config)
    job_config, say = job.config_for(config, progress=progress), _say(progress)
    runs, produces = [], {}
    for policy in get_protocol(trained.protocol).eval_resets:
        began = time.perf_counter()

        def report(n, result, _label=f"{job.agent.label}/{policy}"):
            say(f"nrstream: {_label} n={n}: accuracy {result.accuracy:.4f} ({result.total} decisions)")

        try:
            evaluated = evaluate_agent(trained.model, data.dataset, job_config, policy, device, progress=report)
        except NonFiniteError as exc:
            raise exc.for_agent(f"{job.agent.label}/{policy}") from None
        produces = evaluated["produces"]
        runs.append(_run_result(job, policy, trained, evaluated, time.perf_counter() - began))
    result = JobResult(job, runs, produces)
    if shard:
        with atomic_file(trained.folder / "result.json") as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    return result


def run_job(
    config: Config,
    job: Job,
    *,
    device: str | torch.device | None = None,
    data: LoadedData | None = None,
    progress: bool = True,
) -> JobResult:
    """Train and evaluate one job: what an executor runs (a top-level function, picklable arguments)."""
    data = data if data is not None else load_data(config)
    trained = train_job(config, job, device=device, data=data, progress=progress)
    return evaluate_job(config, job, trained, device=device, data=data, progress=progress)


def train_only(
    config: Config,
    job: Job,
    *,
    device: str | torch.device | None = None,
    data: LoadedData | None = None,
    progress: bool = True,
) -> dict:
    """Train one job and say where its weights are: what an executor runs for ``nrstream train``.

    A plain dict (``label``, ``folder``, ``steps``, ``seconds``, ``reused``), not the model,
    so that a Ray worker on a GPU sends back a few bytes that any driver can read.
    """
    trained = train_job(config, job, device=device, data=data, progress=progress)
    return {"label": job.label, "folder": str(trained.folder), "steps": trained.steps,
            "seconds": trained.seconds, "reused": trained.reused}  # fmt: skip


# ---------------------------------------------------------------------------- executors and the experiment


def check_outputs(config: Config, folder: str | Path | None = None, *, force: bool = False) -> None:
    """Before any work: the run folder (if ``folder``) may be written and does not hold the
    checkpoint folder, the checkpoint folder is writable."""
    if folder is not None:
        check_run_folder(folder, force=force)
        check_apart(folder, config.checkpoint_dir)
    check_writable_folder(config.checkpoint_dir, "checkpoint folder", "--checkpoints (run.checkpoint_dir)")
    if config.run.tensorboard:
        check_writable_folder(tracker_folder(config, "-").parent, "tensorboard folder", "run.out_dir")
    logging.getLogger("nrstream.lab.experiment").debug(
        "run folder %s, checkpoint folder %s", folder if folder is not None else "(none)", config.checkpoint_dir
    )


def _failure_entry(job: Job, failure) -> dict:
    """One ``failed`` entry of ``results.json`` (issue 10): which job, and its one-line error."""
    agent = job.agent
    return {"arch": agent.arch, "loss": agent.loss, "seed": job.seed, "arch_options": dict(agent.arch_options),
            "loss_options": dict(agent.loss_options), "error": failure.error, "kind": failure.kind}  # fmt: skip


def _run_jobs(
    config: Config,
    jobs: Sequence[Job],
    job_fn: Callable,
    executor: Executor | None,
    *,
    device: torch.device,
    data: LoadedData,
    progress: bool,
) -> list:
    """Every job through ``executor`` (default: ``run.executor``'s), outcomes in the order of ``jobs``."""
    runner = JobRunner(executor or executor_from_config(config, progress=progress))
    try:
        return runner(config, jobs, device=device, data=data, progress=progress, job_fn=job_fn)
    finally:
        if executor is None:
            runner.close()


def train_experiment(
    config: Config,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> list[tuple[Job, JobFailure]]:
    """Train every job of ``config`` (resuming, reusing checkpoints); no evaluation, no run folder.

    The local executor runs the jobs here, one after another, and the first error stops it with
    its own exception (a corrupt checkpoint stays a one-line error). Any other executor runs each
    job as a task: the jobs that failed come back as ``(job, JobFailure)`` pairs, the others finish.
    """
    check_outputs(config)
    executor = executor or executor_from_config(config, progress=progress)  # checked before any work
    device, data = _device(config, device), load_data(config)
    jobs = plan_jobs(config)
    if isinstance(executor, LocalExecutor):
        for job in jobs:
            train_job(config, job, device=device, data=data, progress=progress)
        return []
    outcomes = _run_jobs(config, jobs, train_only, executor, device=device, data=data, progress=progress)
    return [(job, o) for job, o in zip(jobs, outcomes, strict=True) if isinstance(o, JobFailure)]


def run_experiment(
    config: Config,
    *,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    executor: Executor | None = None,
    force: bool = False,
) -> Results:
    """Train what is missing, evaluate every job, write the run folder; returns the :class:`Results`.

    Args:
        config: a validated config (:func:`nrstream.lab.config.load_config`).
        device: default ``run.device`` (``auto``: CUDA when present).
        out: the run folder (default ``<run.out_dir>/<run.name>``), written atomically. It
            must be new, empty or a run folder nrstream wrote (:mod:`nrstream.artifacts.run_folder`:
            checked, with the checkpoint folder, before any work); ``force`` also replaces
            a folder of nrstream output files without a valid ``results.json``.
        progress: log lines and progress bars on stderr.
        executor: who runs the jobs (an :class:`nrstream.lab.executors.Executor`; default: the one
            ``run.executor`` names). A job that raised comes back as a
            :class:`nrstream.lab.executors.JobFailure`: it is listed in ``Results.failed`` and the run
            folder holds the others.
    """
    began = time.perf_counter()
    folder = Path(out) if out is not None else config.run_dir
    check_outputs(config, folder, force=force)
    with run_folder_lock(folder):  # a second run on this folder exits naming this one's pid
        check_run_folder(folder, force=force)  # an interrupted write's old folder may have been put back
        device = _device(config, device)
        data = load_data(config)
        jobs = plan_jobs(config)
        outcomes = _run_jobs(config, jobs, run_job, executor, device=device, data=data, progress=progress)
        job_results = [o for o in outcomes if not isinstance(o, JobFailure)]
        failed = [_failure_entry(job, o) for job, o in zip(jobs, outcomes, strict=True) if isinstance(o, JobFailure)]
        produces: dict[str, dict[str, str]] = {}
        for job_result in job_results:
            produces.update(job_result.produces)
        results = Results(
            config=config_to_dict(config),
            environment=environment(device, config.run.seed),
            data={**data.describe(), "test_stream": evaluation_settings(config).stream_options()},
            runs=[run for job_result in job_results for run in job_result.runs],
            produces=produces,
            timings={"total_seconds": time.perf_counter() - began},
            failed=failed,
        )
        check_run_folder(folder, force=force)  # again: it may have changed while the jobs ran
        write_run_folder(folder, results.to_json())
    results.folder = folder
    return results
