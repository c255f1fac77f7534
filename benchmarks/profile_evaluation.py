"""Where one agent's evaluation spends its time: cProfile and torch.profiler over ``evaluate_agent``.

The evaluation is :func:`nrstream.evaluation.evaluate_agent` on ``configs/quickstart.yaml``
(Fashion-MNIST rows, F = 28, 10 classes; every length ``n`` to its ``n``-th decision, then the
endless run feeding the metric plugins) with an untrained GRU-128, once per reset policy and
thread count. For each it prints (and writes with ``--out``) the top entries of

* cProfile, by internal time (``tottime``: Python functions and the torch ops they call), and
  by cumulative time for the evaluation's own functions (by-length scoring, endless run,
  stream, metrics);
* ``torch.profiler`` (CPU), operators by self CPU time.

    python benchmarks/profile_evaluation.py --threads 1 2 --out docs/results/perf/profile_before.txt
    python benchmarks/profile_evaluation.py --policies never --threads 1 --min-decisions 500 --endless-samples 20
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch
from _common import loadavg_1min

from nrstream.atomic import atomic_file
from nrstream.lab.config import load_config
from nrstream.lab.evaluation import evaluate_agent
from nrstream.lab.loading import load_data
from nrstream.plugin.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--policies", nargs="+", default=["never", "oracle"], choices=("never", "oracle"))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch intra-op threads to profile at")
    parser.add_argument("--min-decisions", type=int, default=None)
    parser.add_argument("--endless-samples", type=int, default=None)
    parser.add_argument("--top", type=int, default=15, help="entries per table (default %(default)s)")
    parser.add_argument("--no-torch-profiler", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = ["run.seed=0", "run.device=cpu"]
    if args.min_decisions is not None:
        overrides.append(f"evaluate.min_decisions={args.min_decisions}")
    if args.endless_samples is not None:
        overrides.append(f"evaluate.endless_samples={args.endless_samples}")
    config = load_config(args.config, overrides=overrides)
    dataset = load_data(config).dataset
    torch.manual_seed(0)
    model = (
        get_registry()
        .create(
            "architecture", "gru", input_size=dataset.feature_size, num_classes=dataset.num_classes, hidden_size=128
        )
        .eval()
    )
    device = torch.device("cpu")
    report = io.StringIO()

    def say(text: str = "") -> None:
        print(text, flush=True)
        report.write(text + "\n")

    command = "python benchmarks/profile_evaluation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    say(f"# {command}")
    say(f"# torch {torch.__version__}, load average {loadavg_1min()} at start")
    torch.set_num_threads(args.threads[0])
    evaluate_agent(model, dataset, config, "never", device)  # warm-up (first-call allocations, imports)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for policy in args.policies:
            say(f"\n## policy {policy}, {threads} thread(s), load {loadavg_1min()}")
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.enable()
            out = evaluate_agent(model, dataset, config, policy, device)
            profiler.disable()
            wall = time.perf_counter() - began
            lengths = sum(v.seconds for v in out["by_length"].values())
            endless = out["endless"]["seconds"]
            say(f"wall {wall:.2f} s under cProfile: by-length {lengths:.2f} s, endless run {endless:.2f} s")
            for key, title in (("tottime", "cProfile, by internal time"), ("cumulative", "cProfile, cumulative")):
                buffer = io.StringIO()
                stats = pstats.Stats(profiler, stream=buffer).sort_stats(key)
                stats.print_stats(args.top)
                text = buffer.getvalue()
                table = text[text.index("ncalls") :] if "ncalls" in text else text
                say(f"### {title}\n{table.rstrip()}")
            if not args.no_torch_profiler:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    evaluate_agent(model, dataset, config, policy, device)
                table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top)
                say(f"### torch.profiler, by self CPU time\n{table.rstrip()}")
    if args.out is not None:
        with atomic_file(args.out) as tmp:
            tmp.write_text(report.getvalue())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
