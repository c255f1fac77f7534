"""``nrstream evaluate CONFIG [--out DIR]``: train what is missing, evaluate, write the run folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nrstream.commands.train import add_common_arguments, prepare, train_all
from nrstream.config import config_to_dict
from nrstream.evaluation import evaluate_agent
from nrstream.report import RESULTS_FORMAT, console_table, environment, run_entry, write_run_folder


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="train what is missing, run the agents on endless test streams, write a report",
        description="Train the agents of CONFIG (reusing matching checkpoints), score them on test streams of "
        "every length in evaluate.lengths (never reset; also oracle resets for segmented-trained agents), run "
        "one long endless stream for the metrics, and write results.json, results.csv, config.yaml and figures.",
    )
    add_common_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="run folder (default: <run.out_dir>/<run.name>)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    config, device, loaded = prepare(args)
    folder = Path(args.out) if args.out else config.run_dir
    runs = []
    for agent, trained in train_all(config, device, loaded):
        policies = ["never", "oracle"] if trained.protocol == "segmented" else ["never"]
        for policy in policies:
            start = time.perf_counter()

            def progress(n, result, _label=f"{agent.label}/{policy}"):
                print(
                    f"nrstream: {_label} n={n}: accuracy {result.accuracy:.4f} ({result.total} decisions)",
                    file=sys.stderr,
                )

            evaluated = evaluate_agent(trained.model, loaded.dataset, config, policy, device, progress=progress)
            runs.append(run_entry(agent, policy, trained, evaluated, time.perf_counter() - start))
    results = {
        "format": RESULTS_FORMAT,
        "config": config_to_dict(config),
        "environment": environment(device, config.run.seed),
        "data": loaded.describe(),
        "runs": runs,
        "timings": {"total_seconds": time.perf_counter() - began},
    }
    write_run_folder(folder, results)
    print(console_table(results))
    print(f"nrstream: results in {folder}", file=sys.stderr)
    return 0
