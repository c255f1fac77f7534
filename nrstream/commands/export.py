"""``nrstream export RUN [--agent ARCH/LOSS] --format onnx|torchscript --out FILE``.

The work is :mod:`nrstream.deploy.export`'s.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


RUN_HELP = (
    "a run folder written by `nrstream evaluate` (runs/NAME), a checkpoint folder "
    "(runs/checkpoints/ARCH-LOSS-HASH, with agent.json) or its best.pt/last.pt"
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write an agent's streaming step as a standalone ONNX or TorchScript model, with a JSON sidecar",
        description="The streaming step (frames [B, T, F] and state in; logits and new state out; T dynamic) "
        "of one trained agent, checked against PyTorch before it is written. An existing OUT (and OUT.json) "
        "is replaced atomically once the export has succeeded, and only if an earlier nrstream export wrote it "
        "(recorded in the folder's .nrstream-outputs.json); a failed export leaves them as they were.",
    )
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "--agent", metavar="ARCH/LOSS", help="agent of the run, e.g. gru/ce_kl (optional when RUN holds one agent)"
    )
    p.add_argument("--format", dest="fmt", required=True, metavar="onnx|torchscript", help="the model format")
    p.add_argument(
        "--out",
        required=True,
        help="the model file, in an existing folder; an existing file is replaced atomically only if nrstream "
        "wrote it; the sidecar goes to OUT.json",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nrstream.deploy.export import export_agent

    done = export_agent(args.run, args.agent, args.fmt, args.out)
    print(f"{done.path}: {done.label} as {args.fmt} ({done.how} graph), sidecar {done.sidecar}")
    return 0
