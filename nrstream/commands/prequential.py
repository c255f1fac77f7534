"""``nrstream prequential CONFIG``: run every agent of a config prequentially (predict, score, learn; never reset)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prequential",
        help="run the agents prequentially on a (non-stationary) stream",
        description="Run every agent x seed of CONFIG prequentially: each chunk of the training stream "
        "(data.stream, with its schedule) is predicted and scored, then learnt from; the state is never "
        "reset. Writes prequential.json, prequential.csv and figures to the run folder.",
    )
    parser.add_argument("config", help="YAML experiment config, e.g. configs/continual/fmnist_class_incremental.yaml")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override run.device")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1 (run.seeds)")
    parser.add_argument("--out", metavar="DIR", help="run folder (default: <run.out_dir>/<run.name>)")
    parser.add_argument(
        "--force", action="store_true", help="replace a run folder that holds only nrstream output files"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, VALUE in YAML: --set continual.lr=0.01 (repeatable)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from nrstream.errors import ConfigError
    from nrstream.lab.config import load_config
    from nrstream.lab.continual_report import run_prequential_experiment
    from nrstream.log import line_logger

    config = load_config(args.config, overrides=args.overrides)
    if args.device:
        config.run.device = args.device
    if args.seeds is not None:
        if not 1 <= args.seeds <= 1000:
            raise ConfigError(f"--seeds: expected a number of seeds from 1 to 1000, got {args.seeds}")
        config.run.seeds, config.run.seed = list(range(args.seeds)), 0
    log = line_logger(logging.getLogger("nrstream.lab.prequential"))
    payload = run_prequential_experiment(config, log=log, out=args.out, force=args.force)
    for row in payload["summary"]:
        print(
            f"{row['arch']}/{row['loss']}: prequential accuracy {row['prequential_accuracy']}, average accuracy "
            f"{row['average_accuracy']}, forgetting {row['forgetting']}, recovery {row['mean_recovery_frames']} frames"
        )
    print(f"wrote {args.out or config.run_dir}")
    return 0
