"""Where a ``mamba`` training step's time goes, against the GRU at a matched parameter count (issue 28).

Four cases, each a bare training step on one pre-built chunk ``[B, T, F]`` as in
``architectures.py`` (same sizes: each model sized to the GRU with ``--hidden`` units):

* ``gru``: the reference;
* ``mamba``: the whole step;
* ``mamba_no_scan``: the same step with the selective scan replaced by a stand-in that keeps
  every gradient path but costs three ``[B, T, D]`` passes (``y = delta * u + (sum B + sum C) *
  (sum A + sum D)``): the rest of the block (projections, convolution, gating, norms, the
  optimizer), a floor that no faster scan can go below (the fused scan forms ``delta * u`` and
  the ``D`` term itself, which the stand-in still pays for);
* ``scan``: the selective scan alone (forward and backward) on random inputs of one layer's
  shapes, run ``num_layers`` times per call.

Measured in alternating blocks like ``architectures.py``; ``slowdown = GRU frames/s / case frames/s``.

    python benchmarks/mamba_parts.py --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch
from _common import add_common_options, interleave, machine, print_table, ratio, setup, write_json
from architectures import CASES, build, matched_hidden, training_case
from nrstream_plugins.architectures import mamba as mamba_module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=1.0, repeats=5)
    parser.add_argument("--case", default="mamba", choices=["mamba", "mamba_n4"], help="architecture case")
    parser.add_argument("--lr", type=float, default=1e-3)
    return parser.parse_args(argv)


def stand_in(delta, a_matrix, du, b, c, h0, reset=None, keep_states=False, *, u=None, skip=None):
    """No scan: ``y`` from every input at the cost of two ``[B, T, D]`` passes (three with ``u``, whose
    ``delta * u`` keeps ``delta``'s gradient path); the state passes through."""
    du = delta * u if u is not None else du
    y = du + (b.sum(-1, keepdim=True) + c.sum(-1, keepdim=True)) * (
        a_matrix.sum() + (skip.sum() if skip is not None else 0)
    )
    states = h0.flatten(1)[:, None].expand(-1, du.shape[1], -1) if keep_states else None
    return y, h0, states


@contextlib.contextmanager
def no_scan():
    real = mamba_module.selective_scan
    mamba_module.selective_scan = stand_in
    try:
        yield
    finally:
        mamba_module.selective_scan = real


def scan_case(model: torch.nn.Module, args: argparse.Namespace, device: torch.device):
    """The scan of every layer, forward and backward, on random inputs shaped like one layer's."""
    from nrstream_plugins.architectures._selective_scan import selective_scan

    layer = model.layers[0]
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.chunk)
    delta = torch.nn.functional.softplus(torch.randn(*shape, layer.inner, generator=g) - 3)
    inputs = [
        delta,
        (-torch.exp(layer.A_log)).detach(),
        delta * torch.randn(*shape, layer.inner, generator=g),
        torch.randn(*shape, layer.d_state, generator=g),
        torch.randn(*shape, layer.d_state, generator=g),
        torch.zeros(args.batch, layer.inner, layer.d_state),
    ]
    inputs = [t.to(device).requires_grad_(i != 5) for i, t in enumerate(inputs)]
    weight = torch.randn(*shape, layer.inner, generator=g).to(device)

    def step() -> int:
        for _ in model.layers:
            y, h_last, _ = selective_scan(*inputs)
            ((y * weight).sum() + h_last.sum()).backward()
        return args.batch * args.chunk

    return step


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    target = build("gru", args, args.hidden).num_parameters
    hidden = matched_hidden(args.case, args, target)
    models = {"gru": build("gru", args, args.hidden), "mamba": build(args.case, args, hidden)}
    no_scan_model = build(args.case, args, hidden)
    no_scan_step = training_case(no_scan_model, args, device)

    def without_scan() -> int:
        with no_scan():
            return no_scan_step()

    cases = {
        "gru": training_case(models["gru"], args, device),
        "mamba": training_case(models["mamba"], args, device),
        "mamba_no_scan": without_scan,
        "scan": scan_case(models["mamba"], args, device),
    }
    print(
        f"device={device} B={args.batch} T={args.chunk} GRU H={args.hidden} ({target:,} parameters); "
        f"{args.case} {CASES[args.case][1]} hidden_size={hidden}; threads={torch.get_num_threads()}"
    )
    measured = interleave(cases, device, seconds=args.seconds, repeats=args.repeats, progress=print)
    slowdown = {name: ratio(measured, "gru", name) for name in cases if name != "gru"}
    payload = {
        "benchmark": "mamba_parts",
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "env_id")},
        "machine": machine(device),
        "case": {"arch": "mamba", "options": {"hidden_size": hidden, **CASES[args.case][1]}},
        "fps": {name: measured["cases"][name]["fps"] for name in cases},
        "seconds_per_step": {name: args.batch * args.chunk / measured["cases"][name]["fps"] for name in cases},
        "ratios": {f"gru/{name} training": st for name, st in slowdown.items()},
        "load_1min_per_round": measured["load_1min"],
        "command": "python benchmarks/mamba_parts.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    rows = []
    for name in cases:
        text = f"{payload['fps'][name]:>10,.0f} frames/s  {payload['seconds_per_step'][name]:.3f} s/step"
        if name != "gru":
            st = slowdown[name]
            text += f"  GRU/case {st['median']:.2f}x ({st['min']:.2f}-{st['max']:.2f})"
        rows.append((name, text))
    print_table(rows)
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
