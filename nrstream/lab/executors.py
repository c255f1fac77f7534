"""Executors: who runs the jobs of an experiment, one after another here or as tasks on Ray.

An experiment is a list of independent jobs (one job = architecture x loss x seed). An
executor takes the jobs and a function that runs one of them, and yields
``(job, outcome)`` as jobs end, where ``outcome`` is the function's return value or a
:class:`JobFailure` (the job raised: its one-line error, the exception's type, the
traceback). A failing job never stops the others; the caller decides what a failure means
(the CLI writes the other jobs' results and exits non-zero).

* :class:`LocalExecutor` (``run.executor: local``, the default) calls the function in this
  process, one job after another, in order. It imports nothing from Ray.
* :class:`RayExecutor` (``run.executor: ray``) submits every job as one Ray task asking for
  ``run.resources`` (``num_cpus``, ``num_gpus``; a fraction of a GPU lets several small
  networks share one). Without an address ``ray.init()`` starts a local Ray on this
  machine; ``address="auto"``, ``"host:6379"`` or ``"ray://host:10001"`` (or the
  ``RAY_ADDRESS`` environment variable) joins a running cluster. A task whose worker
  process or node dies is retried by Ray (``max_retries``); the job function resumes from
  its own checkpoint, so a retry does not start from zero. An exception raised by the job
  itself is not retried (it would raise again): the job is reported as failed.

Both executors report progress across jobs on stderr (done / running / failed / waiting and
an ETA from the throughput so far). Start-up problems are one-line
:class:`ExecutorError`\\ s: an unknown executor, a Ray address nobody listens on (found
with a socket probe of a few seconds, before ``ray.init`` could hang), GPUs asked of a
cluster without any, a job asking more CPUs than any node has (it would wait forever), and
checkpoint or data locations that a node of a multi-node cluster cannot reach (see
:meth:`RayExecutor.check_reachable`).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from nrstream.errors import NrstreamError

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorError",
    "JobFailure",
    "JobTiming",
    "JobProgress",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "executor_from_config",
    "JobRunner",
    "probe_address",
    "check_node_paths",
]

#: the executor names ``run.executor`` / ``--executor`` accept
EXECUTORS = ("local", "ray")

J = TypeVar("J")
R = TypeVar("R")

#: seconds the socket probe of a Ray address waits for a connection
PROBE_TIMEOUT = 5.0
#: seconds the reachability probe waits for every node to answer
REACH_TIMEOUT = 60.0


class ExecutorError(NrstreamError):
    """An executor cannot start (unknown name, no cluster at the address, resources no node has, ...)."""


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message; ``Type: message`` unless it is a user-facing NrstreamError."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, NrstreamError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class JobFailure:
    """A job that did not produce a result: ``error`` is the one line to show and record."""

    error: str
    kind: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> JobFailure:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(_one_line(exc), type(exc).__name__, tb)


@dataclass
class JobTiming:
    """When a job was submitted, started and finished (``time.time()`` seconds) and where it ran.

    ``started`` is read by the worker, so ``started - submitted`` (the executor's overhead
    per job) compares two clocks on a multi-node cluster; on one machine it is exact.
    """

    submitted: float
    started: float | None = None
    finished: float | None = None
    pid: int | None = None
    node: str | None = None


class Executor(Protocol):
    """What ``run_experiment`` needs from an executor."""

    name: str
    timings: dict[int, JobTiming]

    def run(self, jobs: Sequence[J], fn: Callable[[J], R]) -> Iterator[tuple[J, R | JobFailure]]:
        """Run ``fn(job)`` for every job; yield ``(job, result or JobFailure)`` as each ends."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------- progress


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class JobProgress:
    """Progress across jobs: ``done/total``, running, failed, waiting and an ETA.

    The ETA assumes the remaining jobs go at the throughput so far (jobs ended per second
    of wall clock since the first start), which accounts for jobs running side by side.
    One line per change, on ``stream`` (stderr), when ``enabled``.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        label: str = "jobs",
    ) -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = stream
        self.clock = clock
        self.done = self.failed = self.running = 0
        self.began: float | None = None

    @property
    def waiting(self) -> int:
        return self.total - self.done - self.failed - self.running

    def eta(self) -> float | None:
        """Seconds until every job has ended, or None before the first one has."""
        ended = self.done + self.failed
        if self.began is None or ended == 0:
            return None
        rate = ended / max(1e-9, self.clock() - self.began)
        return (self.total - ended) / rate

    def line(self) -> str:
        eta = self.eta()
        ended = self.done + self.failed
        when = "ETA ?" if eta is None else ("finished" if ended == self.total else f"ETA {_duration(eta)}")
        return (
            f"nrstream: {self.label}: {self.done}/{self.total} done, {self.running} running, "
            f"{self.failed} failed, {self.waiting} waiting; {when}"
        )

    def _emit(self, detail: str = "") -> None:
        if self.enabled:
            line = self.line() + (f" ({detail})" if detail else "")
            if self.stream is not None:
                print(line, file=self.stream, flush=True)
            else:  # issue 15 (J): through logging (the CLI shows it on stderr; -q hides it)
                logging.getLogger("nrstream.lab.executors").info(line.removeprefix("nrstream: "))

    def set_running(self, running: int, detail: str = "") -> None:
        if self.began is None and running > 0:
            self.began = self.clock()
        if running != self.running:
            self.running = running
            self._emit(detail)

    def ended(self, ok: bool, running: int, detail: str = "") -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.running = running
        self._emit(detail)


def _describe(job: Any) -> str:
    label = getattr(job, "label", None)
    return str(label() if callable(label) else label) if label is not None else str(job)


# ---------------------------------------------------------------------------- local


class LocalExecutor:
    """Jobs one after another in this process, in order (``run.executor: local``).

    Nothing to install or start; the numbers are those of running the jobs by hand. An
    exception raised by a job becomes a :class:`JobFailure` and the next job runs;
    ``KeyboardInterrupt`` stops everything (the interrupted job resumes next time from its
    checkpoint).
    """

    name = "local"

    def __init__(self, *, progress: bool = True, stream: TextIO | None = None) -> None:
        self.progress, self.stream = progress, stream
        self.timings: dict[int, JobTiming] = {}

    def run(self, jobs: Sequence[J], fn: Callable[[J], R]) -> Iterator[tuple[J, R | JobFailure]]:
        jobs = list(jobs)
        progress = JobProgress(len(jobs), enabled=self.progress, stream=self.stream)
        for i, job in enumerate(jobs):
            now = time.time()
            timing = self.timings[i] = JobTiming(submitted=now, started=now, pid=os.getpid(), node=socket.gethostname())
            progress.set_running(1, f"started {_describe(job)}")
            try:
                outcome: R | JobFailure = fn(job)
                ok = True
            except Exception as exc:  # a failing job must not take the others down
                outcome, ok = JobFailure.from_exception(exc), False
            timing.finished = time.time()
            progress.ended(ok, 0, f"{'finished' if ok else 'FAILED'} {_describe(job)}")
            yield job, outcome

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- Ray


def _split_host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host:
        return address, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ExecutorError(
            f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001)"
        ) from None


def _current_cluster_file() -> Path:
    """Where ``ray start --head`` records the address that ``address="auto"`` joins."""
    return Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"


def probe_address(address: str, timeout: float = PROBE_TIMEOUT) -> str:
    """Check that something listens at a Ray address; return the address ``ray.init`` should get.

    ``auto`` resolves like Ray does (``RAY_ADDRESS``, else the address ``ray start --head``
    recorded on this machine). ``ray://host:port`` (Ray Client, default port 10001) and
    ``host:port`` (the head's GCS, default 6379) are probed with one TCP connect of at
    most ``timeout`` seconds, so a dead address is a one-line :class:`ExecutorError` in
    seconds instead of ``ray.init`` retrying for minutes.
    """
    original = address
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS", "").strip()
        if env and env != "auto":
            address = env
        else:
            recorded = _current_cluster_file()
            try:
                address = recorded.read_text().strip()
            except OSError:
                raise ExecutorError(
                    "--ray-address auto: no running Ray cluster found on this machine (no RAY_ADDRESS, no "
                    f"{recorded}); start one with `ray start --head`, give its address, or drop --ray-address "
                    "to start a local Ray"
                ) from None
    if address.startswith("ray://"):
        host, port = _split_host_port(address[len("ray://") :], 10001)
    else:
        host, port = _split_host_port(address, 6379)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        via = f" (resolved from {original!r})" if original != address else ""
        raise ExecutorError(
            f"no Ray cluster answers at {address}{via}: {exc.strerror or exc} after {timeout:g} s; "
            "check the address and that `ray start --head` runs there, or drop --ray-address to start a local Ray"
        ) from None
    return address


def _ray_call(fn: Callable[[Any], Any], job: Any) -> tuple[Any, float, float, int, str]:
    """The body of every Ray task: the job's result and when/where it ran."""
    started = time.time()
    result = fn(job)
    return result, started, time.time(), os.getpid(), socket.gethostname()


def check_node_paths(markers: dict[str, str], existing: Sequence[str]) -> tuple[str, list[str]]:
    """Run on one node: which marker files it cannot read back, which paths do not exist there.

    ``markers`` maps a marker file path to the token the driver wrote into it. Returns
    ``(hostname, problems)``, each problem one short phrase naming the path.
    """
    problems = []
    for path, token in markers.items():
        try:
            if Path(path).read_text() != token:
                problems.append(f"{Path(path).parent} holds another file under the marker's name")
        except OSError as exc:
            problems.append(f"cannot read {Path(path).parent} ({exc.strerror or type(exc).__name__})")
    problems += [f"{p} does not exist" for p in existing if not Path(p).exists()]
    return socket.gethostname(), problems


@dataclass
class RayExecutor:
    """Every job one Ray task (``run.executor: ray``).

    Args:
        address: ``None`` (start a local Ray here, or use ``RAY_ADDRESS`` when set), ``"auto"``,
            ``"host:port"`` or ``"ray://host:port"``.
        num_cpus, num_gpus: what each task asks for (``run.resources``).
        max_retries: how often Ray reruns a task whose worker or node died.
        shared_paths: folders every node must read and write (the checkpoint folder): checked
            with a marker file on a multi-node cluster.
        data_paths: paths every node must see (data folders named in the config).
        init_options: extra ``ray.init`` keyword arguments for a local Ray (tests pass
            ``num_cpus=2``); ignored when joining a cluster.
    """

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3
    progress: bool = True
    shared_paths: Sequence[str | os.PathLike] = ()
    data_paths: Sequence[str | os.PathLike] = ()
    init_options: dict = field(default_factory=dict)
    stream: TextIO | None = None
    name: str = field(default="ray", init=False)
    timings: dict[int, JobTiming] = field(default_factory=dict, init=False)
    _owns_session: bool = field(default=False, init=False)
    _started: bool = field(default=False, init=False)

    # -------------------------------------------------------------- start-up

    def start(self) -> None:
        """Join or start Ray and run the start-up checks (idempotent)."""
        if self._started:
            return
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ExecutorError(
                f"run.resources: num_cpus and num_gpus must be >= 0, got {self.num_cpus} and {self.num_gpus}"
            )
        import ray

        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS", "").strip() or None
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": "warning"}
            if address is None:
                options.update(self.init_options)
            else:
                address = probe_address(address)
            try:
                ray.init(address=address, **options)
            except (ConnectionError, TimeoutError, RuntimeError) as exc:
                raise ExecutorError(
                    f"Ray did not start or join {address or 'a local cluster'}: {_one_line(exc)}"
                ) from None
            self._owns_session = True
        self._started = True
        try:
            self._check_resources(ray)
            if len([n for n in ray.nodes() if n.get("Alive")]) > 1:
                self.check_reachable()
        except BaseException:
            self.close()
            raise

    def _check_resources(self, ray: Any) -> None:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0)
        cpus = max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0)
        where = f"the Ray cluster ({len(nodes)} node{'s' * (len(nodes) != 1)}, at most {cpus:g} CPUs on a node)"
        if self.num_gpus > 0 and gpus == 0:
            raise ExecutorError(
                f"run.resources.num_gpus is {self.num_gpus:g} but {where} has no GPU; set run.resources.num_gpus: 0 "
                "or join a cluster with GPUs"
            )
        if self.num_gpus > gpus:
            raise ExecutorError(
                f"run.resources.num_gpus is {self.num_gpus:g} but no node of {where} has more than {gpus:g} GPUs"
            )
        if self.num_cpus > cpus:
            raise ExecutorError(
                f"run.resources.num_cpus is {self.num_cpus:g} but no node of {where} has that many; the jobs would "
                "wait forever"
            )

    def check_reachable(self, timeout: float = REACH_TIMEOUT) -> None:
        """Check that every alive node reads the driver's checkpoint folder and sees the data paths.

        The driver writes a marker file with a random token into each of ``shared_paths``
        (creating the folder), then runs one tiny task pinned to each alive node
        (``NodeAffinitySchedulingStrategy(soft=False)``, ``num_cpus=0``) that reads every
        marker back and checks that each of ``data_paths`` exists. A node that reads no
        marker, reads another file, misses a data path, or does not answer within
        ``timeout`` seconds is one :class:`ExecutorError` naming the node and the path.
        The markers are removed afterwards. :meth:`start` runs this on clusters of more than
        one node (one node shares this machine's files by construction).
        """
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        markers: dict[str, str] = {}
        try:
            for folder in self.shared_paths:
                folder = Path(folder).resolve()
                folder.mkdir(parents=True, exist_ok=True)
                token = secrets.token_hex(16)
                marker = folder / f".nrstream-reachable-{token[:8]}"
                marker.write_text(token)
                markers[str(marker)] = token
            existing = [str(Path(p).resolve()) for p in self.data_paths]
            probe = ray.remote(check_node_paths)
            refs = {}
            for node in ray.nodes():
                if not node.get("Alive"):
                    continue
                strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
                ref = probe.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0).remote(markers, existing)
                refs[ref] = node.get("NodeManagerAddress", node["NodeID"])
            ready, missing = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
            if missing:
                names = ", ".join(refs[r] for r in missing)
                raise ExecutorError(
                    f"Ray node(s) {names} did not answer the file-reachability check within {timeout:g} s; "
                    "check that they are alive and have free workers"
                )
            for ref in ready:
                host, problems = ray.get(ref)
                if problems:
                    raise ExecutorError(
                        f"Ray node {refs[ref]} ({host}): {problems[0]}; every node needs the checkpoint folder and "
                        "the data on a shared file system (or the same path on each node), see README "
                        '"Beyond one machine"'
                    )
        finally:
            for marker in markers:
                Path(marker).unlink(missing_ok=True)

    # -------------------------------------------------------------- running

    def _slots(self, ray: Any) -> int:
        """How many tasks of this size the cluster runs at once (for the progress's "running")."""
        total = ray.cluster_resources()
        slots = [math.floor(total.get("CPU", 0) / self.num_cpus + 1e-9)] if self.num_cpus > 0 else []
        if self.num_gpus > 0:
            slots.append(math.floor(total.get("GPU", 0) / self.num_gpus + 1e-9))
        return max(1, min(slots)) if slots else 1 << 30

    def run(self, jobs: Sequence[J], fn: Callable[[J], R]) -> Iterator[tuple[J, R | JobFailure]]:
        """Submit every job, yield each as it ends (in order of ending, not of submission).

        "running" in the progress line is the number of unfinished jobs that fit the
        cluster's CPUs/GPUs at the requested size (Ray tells a driver when a task ends, not
        when it starts, without its dashboard).
        """
        import ray
        from ray.exceptions import RayTaskError

        self.start()
        jobs = list(jobs)
        progress = JobProgress(len(jobs), enabled=self.progress, stream=self.stream)
        task = ray.remote(_ray_call).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries, retry_exceptions=False
        )
        fn_ref = ray.put(fn)  # one copy of the (config-carrying) function in the object store
        pending: dict[Any, int] = {}
        for i, job in enumerate(jobs):
            self.timings[i] = JobTiming(submitted=time.time())
            pending[task.remote(fn_ref, job)] = i
        slots = self._slots(ray)
        progress.set_running(min(slots, len(pending)), f"submitted {len(jobs)} Ray tasks")
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    timing = self.timings[i]
                    timing.finished = time.time()
                    try:
                        result, timing.started, timing.finished, timing.pid, timing.node = ray.get(ref)
                        outcome: Any = result
                    except RayTaskError as exc:  # the job raised: its own exception, not Ray's wrapper
                        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                        outcome = JobFailure(_one_line(cause), type(cause).__name__, str(exc))
                    except ray.exceptions.RayError as exc:  # worker/node died more than max_retries times, ...
                        first = _one_line(exc)
                        outcome = JobFailure(
                            f"Ray gave up after {self.max_retries} retries: {first}", type(exc).__name__, str(exc)
                        )
                    ok = not isinstance(outcome, JobFailure)
                    progress.ended(
                        ok, min(slots, len(pending)), f"{'finished' if ok else 'FAILED'} {_describe(jobs[i])}"
                    )
                    yield jobs[i], outcome
        finally:
            for ref in pending:  # the caller stopped early (Ctrl-C): do not leave tasks running
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Shut Ray down if this executor started or joined it (a session the caller opened stays)."""
        if self._owns_session:
            import ray

            ray.shutdown()
            self._owns_session = False
        self._started = False

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- choosing one


def make_executor(
    name: str,
    *,
    address: str | None = None,
    resources: dict | None = None,
    progress: bool = True,
    shared_paths: Iterable[str | os.PathLike] = (),
    data_paths: Iterable[str | os.PathLike] = (),
    max_retries: int = 3,
    init_options: dict | None = None,
    where: str = "run.executor",
) -> LocalExecutor | RayExecutor:
    """The executor called ``name`` (``local`` or ``ray``), checked but not yet started.

    ``resources`` is ``run.resources`` (``num_cpus``, ``num_gpus``). Asking for GPUs on a
    machine without any is an error for both executors (the Ray one checks the cluster
    when it starts); ``address`` without ``ray`` is an error (it would be ignored).
    """
    resources = dict(resources or {})
    num_cpus = float(resources.get("num_cpus", 1) or 0)
    num_gpus = float(resources.get("num_gpus", 0) or 0)
    if name == "local":
        if address:
            raise ExecutorError(f"a Ray address ({address}) needs the ray executor; add --executor ray")
        if num_gpus > 0:
            import torch

            if not torch.cuda.is_available():
                raise ExecutorError(
                    f"run.resources.num_gpus is {num_gpus:g} but torch sees no GPU on this machine; "
                    "set run.resources.num_gpus: 0"
                )
        return LocalExecutor(progress=progress)
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError(
                "the ray executor needs Ray: pip install 'nrstream[ray]' (or use --executor local)"
            ) from None
        return RayExecutor(
            address=address,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            max_retries=max_retries,
            progress=progress,
            shared_paths=list(shared_paths),
            data_paths=list(data_paths),
            init_options=dict(init_options or {}),
        )
    raise ExecutorError(f"{where}: unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")


# ---------------------------------------------------------------------------- the experiment's jobs


def _config_paths(config: Any) -> tuple[list[str], list[str]]:
    """(folders every worker writes: the checkpoint folder; data paths named in ``data.options``)."""
    data = [
        str(Path(v).expanduser())
        for v in {**config.data.options, **config.data.fallback_options}.values()
        if isinstance(v, str) and os.sep in v and Path(v).expanduser().exists()
    ]
    return [str(config.checkpoint_dir)], data


def executor_from_config(
    config: Any,
    *,
    executor: str | None = None,
    address: str | None = None,
    progress: bool = True,
    init_options: dict | None = None,
) -> LocalExecutor | RayExecutor:
    """The executor a config asks for (``run.executor``, ``run.ray_address``, ``run.resources``).

    ``executor`` / ``address`` override the config (``--executor``, ``--ray-address``).
    """
    name = executor or config.run.executor
    address = address or config.run.ray_address
    res = config.run.resources  # defaults live in nrstream.lab.config, not here
    resources = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
    shared, data = _config_paths(config)
    where = "--executor" if executor else "run.executor"
    return make_executor(
        name,
        address=address,
        resources=resources,
        progress=progress,
        shared_paths=shared,
        data_paths=data,
        init_options=init_options,
        where=where,
    )


#: per worker process: loaded data sets by their config, so a worker that runs several jobs loads once
_WORKER_DATA: dict[str, Any] = {}


def run_job_in_worker(config: Any, progress: bool, job: Any, job_fn: Callable[..., Any]) -> Any:
    """What a Ray task runs: ``job_fn`` (e.g. :func:`nrstream.lab.experiment.run_job`), data loaded once per worker.

    The device is the config's (``auto``: the GPU Ray assigned to the task, if any).
    """
    import json

    from nrstream.lab.loading import load_data
    from nrstream.log import configure_worker

    configure_worker()  # issue 15 (J): the job's log lines reach the driver's stderr, as the CLI's -v/-q say
    key = json.dumps(
        [config.data.source, config.data.options, config.data.fallback, config.data.fallback_options],
        sort_keys=True,
        default=str,
    )
    if key not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[key] = load_data(config)
    return job_fn(config, job, data=_WORKER_DATA[key], progress=progress)


@dataclass
class JobRunner:
    """Adapts an executor to :func:`nrstream.lab.experiment.run_experiment`'s ``executor=`` hook.

    Called as ``runner(config, jobs, device=, data=, progress=, job_fn=)``; returns one outcome per
    job, in the order of ``jobs``: what ``job_fn`` returned (:func:`nrstream.lab.experiment.run_job`
    gives a ``JobResult``, :func:`nrstream.lab.experiment.train_only` what training left) or a
    :class:`JobFailure`. The local executor runs
    ``job_fn`` here with the driver's data and device; the Ray executor ships ``config`` to
    the workers with the checkpoint folder made absolute (a worker's current folder is not
    the driver's) and loads the data there. ``job_fn`` must be a top-level function, so that
    Ray can send it by name.
    """

    executor: LocalExecutor | RayExecutor

    def __call__(
        self,
        config: Any,
        jobs: Sequence[Any],
        *,
        device: Any,
        data: Any,
        progress: bool = True,
        job_fn: Callable[..., Any],
    ) -> list:
        import dataclasses
        import functools

        if isinstance(self.executor, LocalExecutor):
            fn: Callable[[Any], Any] = functools.partial(job_fn, config, device=device, data=data, progress=progress)
        else:
            run = dataclasses.replace(config.run, checkpoint_dir=str(config.checkpoint_dir.resolve()))
            fn = functools.partial(run_job_in_worker, dataclasses.replace(config, run=run), progress, job_fn=job_fn)
        order = {id(job): i for i, job in enumerate(jobs)}
        outcomes: list[Any] = [None] * len(jobs)
        for job, outcome in self.executor.run(jobs, fn):
            outcomes[order[id(job)]] = outcome
        return outcomes

    def close(self) -> None:
        """Close the executor (shuts down a Ray the executor started or joined)."""
        self.executor.close()
