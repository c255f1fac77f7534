"""``nrstream plugins``: what is installed and what each plugin registers."""

from __future__ import annotations

import argparse
import json

from nrstream.plugin.registry import describe_plugins


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="list installed plugins and what they register")
    parser.add_argument("--json", action="store_true", help="machine-readable output (options included)")
    parser.add_argument("--options", action="store_true", help="also list each component's options and defaults")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plugins = describe_plugins()
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    for plugin in plugins:
        print(f"{plugin['name']}  ({plugin['distribution']} {plugin['version']})")
        for kind, names in plugin["registers"].items():
            print(f"    {kind}: {', '.join(names)}")
            if args.options:
                for name in names:
                    options = plugin["options"][kind][name]
                    listed = "any (**kwargs)" if options is None else ", ".join(f"{k}={v}" for k, v in options.items())
                    print(f"        {name}: {listed or '(none)'}")
    return 0
