"""``nrstream configs [show NAME]``: the experiment configs that ship with nrstream."""

from __future__ import annotations

import argparse
import json
import sys

from nrstream.errors import ConfigError
from nrstream.lab.bundled_configs import config_summary, find_config, list_configs


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "configs",
        help="list the bundled experiment configs, or print one to start your own",
        description="Without arguments: the bundled configs (nrstream evaluate NAME runs one). "
        "'nrstream configs show NAME > my.yaml' copies one to edit.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable list: name, path, summary")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="print a config's YAML")
    show.add_argument("name", help="bundled config name (e.g. quickstart) or a path")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "show":
        path = find_config(args.name)
        if not path.is_file():
            raise ConfigError(f"{args.name}: no such config file (nrstream configs lists the bundled ones)")
        sys.stdout.write(path.read_text())
        return 0
    configs = list_configs()
    if args.json:
        rows = [{"name": n, "path": str(p), "summary": config_summary(p)} for n, p in configs.items()]
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(name) for name in configs), default=0)
    for name, path in configs.items():
        print(f"{name:<{width}s}  {config_summary(path)}")
    return 0
