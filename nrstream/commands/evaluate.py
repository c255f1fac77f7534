"""``nrstream evaluate CONFIG [--out DIR]``: train what is missing, evaluate, write the run folder."""

from __future__ import annotations

import argparse
import sys

from nrstream.commands.train import add_common_arguments, config_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="train what is missing, run the agents on endless test streams, write a report",
        description="Train the agents of CONFIG (reusing matching checkpoints), score them on test streams of "
        "every length in evaluate.lengths under every reset policy their loss's protocol lists, run one long "
        "endless stream for the metrics, and write results.json, results.csv, config.yaml and figures.",
    )
    add_common_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="run folder (default: <run.out_dir>/<run.name>)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the run folder even without a valid results.json, if it holds only nrstream output files",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nrstream.lab.experiment import run_experiment
    from nrstream.lab.report import console_table

    results = run_experiment(config_from_args(args), out=args.out, force=args.force)
    print(console_table(results.to_json()))
    print(f"nrstream: results in {results.folder}", file=sys.stderr)
    for failed in results.failed:  # issue 10 (H): the other jobs' results are written; exit 1
        label = f"{failed['arch']}/{failed['loss']} seed {failed['seed']}"
        print(f"nrstream: FAILED {label}: {failed['error']}", file=sys.stderr)
    return 1 if results.failed else 0
