"""``nrstream export RUN --agent ARCH/LOSS --format onnx|torchscript --out FILE`` (see :mod:`nrstream.export`)."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write an agent's streaming step as a standalone ONNX or TorchScript model, with a JSON sidecar",
        description="The streaming step (frames [B, T, F] and state in; logits and new state out; T dynamic) "
        "of one agent of a run folder, checked against PyTorch before it is written.",
    )
    p.add_argument("run", metavar="RUN", help="run folder written by `nrstream evaluate` (results.json)")
    p.add_argument("--agent", required=True, metavar="ARCH/LOSS", help="agent of the run, e.g. gru/ce_kl")
    p.add_argument("--format", dest="fmt", choices=("onnx", "torchscript"), required=True)
    p.add_argument("--out", required=True, help="the model file; the sidecar goes to OUT.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nrstream.export import export_agent

    done = export_agent(args.run, args.agent, args.fmt, args.out)
    print(f"{done.path}: {args.agent} as {args.fmt} ({done.how} graph), sidecar {done.sidecar}")
    return 0
