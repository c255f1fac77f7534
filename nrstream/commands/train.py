"""``nrstream train CONFIG``: train every job the config lists (resuming, reusing checkpoints) on ``run.executor``."""

from __future__ import annotations

import argparse

from nrstream.lab.config import Config, load_config


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML experiment config, e.g. configs/quickstart.yaml")
    parser.add_argument("--checkpoints", metavar="DIR", help="checkpoint folder (default: run.checkpoint_dir)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override run.device")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, VALUE in YAML: --set train.epochs=1 --set agents.losses=[ce_kl] (repeatable)",
    )
    # issue 10 (H): seeds and executors
    parser.add_argument("--seeds", type=int, metavar="N", help="train every agent with seeds 0..N-1 (run.seeds)")
    parser.add_argument("--executor", metavar="NAME", help="local (default) or ray (run.executor)")
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join a Ray cluster: auto, HOST:6379 or ray://HOST:10001 (run.ray_address)",
    )


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the agents a config lists",
        description="Train every agent of CONFIG. Checkpoints whose training config matches are reused; "
        "an interrupted run resumes from its last checkpoint.",
    )
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Config:
    """Load and validate the config, then apply the command-line overrides."""
    config = load_config(args.config, overrides=args.overrides)
    if args.checkpoints:
        config.run.checkpoint_dir = args.checkpoints
    if args.device:
        config.run.device = args.device
    if args.no_progress:
        config.train.progress = False
    _apply_run_arguments(config, args)
    return config


def _apply_run_arguments(config: Config, args: argparse.Namespace) -> None:
    """``--seeds N``, ``--executor``, ``--ray-address`` (issue 10) into ``config.run``; one-line errors."""
    from nrstream.errors import ConfigError

    if args.seeds is not None:
        if not 1 <= args.seeds <= 1000:
            raise ConfigError(f"--seeds: expected a number of seeds from 1 to 1000, got {args.seeds}")
        config.run.seeds, config.run.seed = list(range(args.seeds)), 0
    if getattr(args, "executor", None) is not None:
        from nrstream.lab.executors import EXECUTORS, ExecutorError

        if args.executor not in EXECUTORS:
            raise ExecutorError(
                f"--executor: unknown executor {args.executor!r}; choose one of: {', '.join(EXECUTORS)}"
            )
        config.run.executor = args.executor
    if getattr(args, "ray_address", None) is not None:
        config.run.ray_address = args.ray_address


def run(args: argparse.Namespace) -> int:
    import sys

    from nrstream.lab.experiment import train_experiment

    failed = train_experiment(config_from_args(args))
    for job, failure in failed:
        print(f"nrstream: FAILED {job.label}: {failure.error}", file=sys.stderr)
    return 1 if failed else 0
