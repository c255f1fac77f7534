"""Per-frame streaming latency at B = 1: each architecture under eager PyTorch, TorchScript and
onnxruntime, and the streaming front end per 10 ms hop.

One frame (T = 1) is fed per call with the state carried, as an always-on device runs; the
figure is wall time per call in microseconds, p50 and p99 over ``--frames`` calls after
``--warmup``. One thread everywhere (torch and onnxruntime). The front end is timed per
``push`` of one 160-sample hop (the 40 log-mel default). kws_streaming's reference: a
streaming GRU at about 485 µs per 20 ms packet on a Pixel 4.

    python benchmarks/latency.py [--hidden 128] [--frames 3000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ARCHS = ("rnn", "gru", "lstm", "ssm", "snn")


def percentiles(times_s: list[float]) -> dict:
    us = np.asarray(times_s) * 1e6
    return {"p50_us": round(float(np.percentile(us, 50)), 1), "p99_us": round(float(np.percentile(us, 99)), 1)}


def time_calls(call, frames: int, warmup: int) -> dict:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return percentiles(times)


def bench_arch(arch: str, hidden: int, frames: int, warmup: int, features: int, classes: int) -> dict:
    from nrstream.deploy.export import ExportError, StepModule, export_model, flatten_state
    from nrstream.plugin.registry import get_registry

    torch.manual_seed(0)
    model = (
        get_registry().create("architecture", arch, input_size=features, num_classes=classes, hidden_size=hidden).eval()
    )
    x = torch.randn(1, 1, features)
    out = {}
    step = StepModule(model)
    state = flatten_state(model.initial_state(1, "cpu"))

    def eager():
        nonlocal state
        with torch.no_grad():
            _, *state = step(x, *state)

    out["eager"] = time_calls(eager, frames, warmup)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("torchscript", "onnx"):
            path = Path(tmp) / f"{arch}.{fmt}"
            try:
                export_model(model, fmt, path, label=arch)
            except ExportError as exc:
                out[fmt] = {"error": str(exc)}
                continue
            s = [t.clone() for t in flatten_state(model.initial_state(1, "cpu"))]
            if fmt == "torchscript":
                graph = torch.jit.load(str(path))

                def ts(graph=graph):
                    nonlocal s
                    with torch.no_grad():
                        _, *s = graph(x, *s)

                out[fmt] = time_calls(ts, frames, warmup)
            else:
                import onnxruntime

                opts = onnxruntime.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                names = [i.name for i in session.get_inputs()]
                feeds = {n: t.numpy() for n, t in zip(names, [x, *s], strict=True)}

                def ort(session=session, names=names, feeds=feeds):
                    result = session.run(None, feeds)
                    for n, value in zip(names[1:], result[1:], strict=True):
                        feeds[n] = value

                out[fmt] = time_calls(ort, frames, warmup)
    return out


def bench_frontend(frames: int, warmup: int) -> dict:
    from nrstream.data.audio import FeatureFrontend
    from nrstream.data.streaming_frontend import StreamingFrontend

    fe = StreamingFrontend(FeatureFrontend())
    hop = torch.randn(fe.hop) * 0.1
    fe.push(torch.randn(fe.n_fft) * 0.1)
    return {"hop_samples": fe.hop, **time_calls(lambda: fe.push(hop), frames, warmup)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2),
            "torch": torch.__version__,
        },
        "settings": {"batch": 1, "frames_per_call": 1, "features": 40, "classes": 10, **vars(args)},
        "frontend_per_hop": bench_frontend(args.frames, args.warmup),
        "architectures": {},
    }
    try:
        import onnxruntime

        result["machine"]["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    for arch in args.archs:
        result["architectures"][arch] = bench_arch(arch, args.hidden, args.frames, args.warmup, 40, 10)
    result["machine"]["load_1min_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    fe = result["frontend_per_hop"]
    print(f"streaming front end, per 10 ms hop: p50 {fe['p50_us']} µs, p99 {fe['p99_us']} µs")
    print(f"{'arch':<6} {'eager p50/p99 µs':>18} {'TorchScript':>18} {'onnxruntime':>18}")
    for arch, r in result["architectures"].items():
        cells = []
        for kind in ("eager", "torchscript", "onnx"):
            v = r[kind]
            cells.append("n/a" if "error" in v else f"{v['p50_us']:.0f} / {v['p99_us']:.0f}")
        print(f"{arch:<6} {cells[0]:>18} {cells[1]:>18} {cells[2]:>18}")
    m = result["machine"]
    print(f"(1-min load {m['load_1min']} before, {m['load_1min_after']} after; {m['cpus']} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
