"""``nrstream train CONFIG``: train every agent the config lists (resuming, reusing checkpoints)."""

from __future__ import annotations

import argparse
import sys

import torch

from nrstream.config import Config, load_config
from nrstream.engine import LoadedData, TrainResult, load_data, resolve_device, train_agent


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


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the agents a config lists",
        description="Train every agent of CONFIG. Checkpoints whose training config matches are reused; "
        "an interrupted run resumes from its last checkpoint.",
    )
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def prepare(args: argparse.Namespace) -> tuple[Config, torch.device, LoadedData]:
    """Load and validate the config, apply command-line overrides, load the data."""
    config = load_config(args.config, overrides=args.overrides)
    if args.checkpoints:
        config.run.checkpoint_dir = args.checkpoints
    if args.device:
        config.run.device = args.device
    if args.no_progress:
        config.train.progress = False
    device = resolve_device(config.run.device)
    return config, device, load_data(config)


def train_all(config: Config, device: torch.device, loaded: LoadedData):
    """Yield ``(agent config, TrainResult)`` for every agent, training what is missing."""
    for agent in config.agents:
        result: TrainResult = train_agent(config, agent, loaded, device)
        what = "reused" if result.reused else f"trained in {result.seconds:.1f} s"
        print(f"nrstream: {agent.label}: {what} ({result.steps} steps, {result.folder})", file=sys.stderr)
        yield agent, result


def run(args: argparse.Namespace) -> int:
    config, device, loaded = prepare(args)
    for _agent, _result in train_all(config, device, loaded):
        pass
    return 0
