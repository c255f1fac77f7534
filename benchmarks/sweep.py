"""A sweep of 8 toy jobs (2 architectures x 2 losses x 2 seeds): local executor vs Ray.

Both executors run the same jobs through the same adapter ``run_experiment`` uses
(:class:`nrstream.lab.executors.JobRunner` over :func:`nrstream.lab.experiment.run_job`): train
from scratch (a fresh checkpoint folder per run), then evaluate. The local executor runs
them one after another in this process with ``--local-threads`` torch threads (default 1,
what each Ray task gets with ``num_cpus: 1``); Ray runs them as tasks of ``num_cpus: 1`` on
a local Ray with ``--ray-cpus`` CPUs (default: all cores).

Figures:

* wall clock of the 8 jobs under each executor and the speed-up local / ray (Ray's own
  start-up, ``ray.init``, is reported apart and not counted; the workers' start-up —
  importing torch and nrstream — is counted);
* Ray's per-job overhead: submit -> start (by the worker's clock) of the first wave of
  jobs (no queueing: worker start-up and first imports), the gap between one job's end and
  the next job's start on the same worker (queued jobs: dispatch only), and the round
  trip of an empty task on warm workers;
* that both executors gave identical accuracies (they must).

    python benchmarks/sweep.py
    python benchmarks/sweep.py --steps 400 --json results/sweep.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import machine, print_table, write_json

from nrstream.lab.config import load_config
from nrstream.lab.executors import JobFailure, JobRunner, LocalExecutor, RayExecutor
from nrstream.lab.experiment import plan_jobs, run_job
from nrstream.lab.loading import load_data

CONFIG = """
run: {{name: sweep, seeds: [0, 1], device: cpu, out_dir: {out}, checkpoint_dir: {ckpt}}}
data:
  source: toy
  options: {{num_classes: 4, feature_size: 16, train_size: 512, validation_size: 64, test_size: 128}}
  stream: {{gap_min: 2, gap_max: 8}}
agents:
  archs: [{{name: gru, options: {{hidden_size: {hidden}}}}}, {{name: lstm, options: {{hidden_size: {hidden}}}}}]
  losses: [ce, ce_kl]
train: {{steps: {steps}, lanes: 16, chunk_length: 32, lr: 0.01, validation_lanes: 16, progress: false}}
evaluate:
  lengths: [1, 4, 16]
  min_decisions: 256
  chunk_length: 256
  endless_lanes: 4
  endless_samples: 64
  metrics: [accuracy, noise_entropy]
"""

TARGET = 1.6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per job (default %(default)s)")
    parser.add_argument(
        "--hidden", type=int, default=64, help="hidden size of both architectures (default %(default)s)"
    )
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray (default: all)")
    parser.add_argument("--local-threads", type=int, default=1, help="torch threads of the local run (default 1)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    return parser.parse_args(argv)


def config_in(folder: Path, args: argparse.Namespace):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(CONFIG.format(out=folder / "runs", ckpt=folder / "ckpt", hidden=args.hidden, steps=args.steps))
    return load_config(path)


def accuracies(outcomes) -> dict:
    return {
        f"{r.arch}/{r.loss}/seed{r.seed}/{r.reset}": r.accuracy_by_length
        for o in outcomes
        if not isinstance(o, JobFailure)
        for r in o.runs
    }


def run_local(root: Path, args) -> tuple[float, list]:
    config = config_in(root / "local", args)
    torch.set_num_threads(args.local_threads)
    began = time.perf_counter()
    data = load_data(config)
    outcomes = JobRunner(LocalExecutor(progress=True))(
        config, plan_jobs(config), device=torch.device("cpu"), data=data, progress=False, job_fn=run_job
    )
    return time.perf_counter() - began, outcomes


def _noop() -> float:
    return time.time()


def run_ray(root: Path, args) -> tuple[float, list, dict]:
    import ray

    config = config_in(root / "ray", args)
    began = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, logging_level="warning", log_to_driver=False)
    init_seconds = time.perf_counter() - began
    try:
        executor = RayExecutor(num_cpus=1, progress=True)
        began = time.perf_counter()
        outcomes = JobRunner(executor)(
            config, plan_jobs(config), device=None, data=None, progress=False, job_fn=run_job
        )
        wall = time.perf_counter() - began
        timings = list(executor.timings.values())
        first_end = min(t.finished for t in timings if t.finished is not None)
        first_wave = [t.started - t.submitted for t in timings if t.started is not None and t.started < first_end]
        by_worker: dict[int, list] = {}
        for t in timings:
            if t.started is not None:
                by_worker.setdefault(t.pid, []).append(t)
        gaps = []
        for ts in by_worker.values():
            ts.sort(key=lambda t: t.started)
            gaps += [b.started - a.finished for a, b in zip(ts, ts[1:], strict=False)]
        noop = ray.remote(num_cpus=1)(_noop)
        ray.get([noop.remote() for _ in range(4)])  # warm
        trips = []
        for _ in range(20):
            sent = time.perf_counter()
            ray.get(noop.remote())
            trips.append(time.perf_counter() - sent)
        overhead = {
            "ray_init_seconds": init_seconds,
            "first_wave_submit_to_start_seconds": sorted(first_wave),
            "queued_dispatch_gap_seconds_median": statistics.median(gaps) if gaps else None,
            "queued_dispatch_gaps_seconds": sorted(gaps),
            "empty_task_round_trip_seconds_median": statistics.median(trips),
            "workers": len(by_worker),
        }
    finally:
        ray.shutdown()
    return wall, outcomes, overhead


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="nrstream-sweep-"))
    try:
        print(f"8 toy jobs, {args.steps} steps each: local executor ({args.local_threads} torch thread(s))", flush=True)
        local_wall, local_out = run_local(root, args)
        print(f"same 8 jobs on a local Ray ({args.ray_cpus} CPUs, 1 CPU per task)", flush=True)
        ray_wall, ray_out, overhead = run_ray(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    failed = [o.error for o in [*local_out, *ray_out] if isinstance(o, JobFailure)]
    identical = accuracies(local_out) == accuracies(ray_out) and not failed
    speedup = local_wall / ray_wall
    payload = {
        "benchmark": "sweep",
        "machine": machine(torch.device("cpu")),
        "jobs": len(local_out),
        "steps_per_job": args.steps,
        "hidden_size": args.hidden,
        "local_threads": args.local_threads,
        "ray_cpus": args.ray_cpus,
        "local_seconds": local_wall,
        "ray_seconds": ray_wall,
        "speedup": speedup,
        "target_speedup": TARGET,
        "meets_target": speedup >= TARGET,
        "ray_overhead": overhead,
        "identical_accuracies": identical,
        "failures": failed,
    }
    wave = overhead["first_wave_submit_to_start_seconds"]
    gap = overhead["queued_dispatch_gap_seconds_median"]
    print_table(
        [
            ("local (8 jobs)", f"{local_wall:8.1f} s"),
            ("ray   (8 jobs)", f"{ray_wall:8.1f} s   (+ ray.init {overhead['ray_init_seconds']:.1f} s, not counted)"),
            ("speed-up", f"{speedup:8.2f} x   (target >= {TARGET})"),
            ("submit -> start, first wave", ", ".join(f"{s:.2f} s" for s in wave) + "  (worker start-up)"),
            ("dispatch gap, queued jobs", "-" if gap is None else f"{1000 * gap:.0f} ms median"),
            ("empty task round trip", f"{1000 * overhead['empty_task_round_trip_seconds_median']:.1f} ms median"),
            ("identical accuracies", str(identical)),
            ("load average (1/5/15 min)", f"{payload['machine']['loadavg_start']} -> {payload['machine']['loadavg']}"),
        ],
        title="Sweep: local vs Ray",
    )
    write_json(args.json, payload)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
