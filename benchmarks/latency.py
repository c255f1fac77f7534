"""Per-frame streaming latency at B = 1, in blocks of k frames per call: each architecture under eager
PyTorch, TorchScript and onnxruntime (plain ``run`` and IO binding), and the streaming front end per
10 ms hop.

An always-on device gets one 10 ms frame per hop. Calling the model once per frame (k = 1) pays
the fixed cost of a call (Python, the runtime's dispatch) every 10 ms; collecting k frames and
calling the model once on ``[1, k, F]`` with the state carried pays it once per k frames, at the
price of a **decision delay of up to (k - 1) x 10 ms** (the first frame of a block waits for the
last one; the model's outputs are the same, frame for frame, see ``tests/test_export.py``).
The figure is wall time per call divided by k, in microseconds per frame, p50 and p99.

Each (architecture, format, k) case runs in blocks of ``--calls`` calls, interleaved with the
others for ``--repeats`` rounds (a load spike hits every case alike, as in
:func:`_common.interleave`); p50/p99 are over all calls, with the min-max of the per-round p99.
The target (p99 <= 50 µs per frame for GRU-128 at k = 10, best format) is ``met`` only when every
round's p99 is under it. One thread everywhere (torch and onnxruntime); the load and thread
counts are recorded. kws_streaming's reference: a streaming GRU at about 485 µs per 20 ms packet
on a Pixel 4.

    python benchmarks/latency.py [--hidden 128] [--ks 1 4 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import loadavg_1min, threads, write_json

ARCHS = ("rnn", "gru", "lstm", "ssm", "snn")
KS = (1, 4, 10)
FEATURES, CLASSES = 40, 10
TARGET_US, TARGET_ARCH, TARGET_K = 50.0, "gru", 10
HOP_MS = 10


def percentiles(us: np.ndarray) -> dict:
    return {"p50_us": round(float(np.percentile(us, 50)), 2), "p99_us": round(float(np.percentile(us, 99)), 2)}


def eager_call(model: torch.nn.Module, k: int) -> Callable[[], None]:
    from nrstream.deploy.export import StepModule, flatten_state

    step = StepModule(model)
    x = torch.randn(1, k, FEATURES)
    state = flatten_state(model.initial_state(1, "cpu"))

    def call() -> None:
        nonlocal state
        with torch.inference_mode():
            _, *state = step(x, *state)

    return call


def torchscript_call(path: Path, k: int) -> Callable[[], None]:
    graph = torch.jit.load(str(path))
    x = torch.randn(1, k, FEATURES)
    state = [torch.zeros(s) for s in _state_shapes(path)]

    def call() -> None:
        nonlocal state
        with torch.inference_mode():
            _, *state = graph(x, *state)

    return call


def _state_shapes(path: Path) -> list[list[int]]:
    import json

    side = json.loads(path.with_name(path.name + ".json").read_text())
    return [[1 if d == "B" else d for d in shape] for name, shape in side["inputs"].items() if name != "frames"]


def _session(path: Path):
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_call(path: Path, k: int) -> Callable[[], None]:
    """``InferenceSession.run`` with a dict of numpy feeds; the state outputs feed the next call."""
    session = _session(path)
    names = [i.name for i in session.get_inputs()]
    feeds = {names[0]: np.random.randn(1, k, FEATURES).astype(np.float32)}
    feeds.update({n: np.zeros(s, np.float32) for n, s in zip(names[1:], _state_shapes(path), strict=True)})

    def call() -> None:
        result = session.run(None, feeds)
        for n, value in zip(names[1:], result[1:], strict=True):
            feeds[n] = value

    return call


def onnx_iobinding_call(path: Path, k: int) -> Callable[[], None]:
    """IO binding: inputs and outputs bound once to preallocated buffers, the state ping-ponged between two sets.

    A device writes its next k frames into the bound ``frames`` buffer in place; nothing is
    allocated or copied per call besides what onnxruntime does inside.
    """
    import onnxruntime

    session = _session(path)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    frames = np.random.randn(1, k, FEATURES).astype(np.float32)
    logits = np.zeros((1, k, CLASSES), np.float32)
    shapes = _state_shapes(path)
    sets = [[np.zeros(s, np.float32) for s in shapes] for _ in range(2)]

    def binding(src: list[np.ndarray], dst: list[np.ndarray]):
        b = session.io_binding()
        b.bind_ortvalue_input(inputs[0], onnxruntime.OrtValue.ortvalue_from_numpy(frames))
        b.bind_ortvalue_output(outputs[0], onnxruntime.OrtValue.ortvalue_from_numpy(logits))
        for name, arr in zip(inputs[1:], src, strict=True):
            b.bind_ortvalue_input(name, onnxruntime.OrtValue.ortvalue_from_numpy(arr))
        for name, arr in zip(outputs[1:], dst, strict=True):
            b.bind_ortvalue_output(name, onnxruntime.OrtValue.ortvalue_from_numpy(arr))
        return b

    bindings = [binding(sets[0], sets[1]), binding(sets[1], sets[0])]  # state A -> B, then B -> A
    turn = [0]

    def call() -> None:
        session.run_with_iobinding(bindings[turn[0]])
        turn[0] ^= 1

    return call


def arch_cases(arch: str, hidden: int, ks: tuple[int, ...], tmp: Path) -> tuple[dict, dict]:
    """``{(arch, format, k): call}`` for the formats this architecture exports to, and the export errors."""
    from nrstream.deploy.export import ExportError, export_model
    from nrstream.plugin.registry import get_registry

    torch.manual_seed(0)
    model = (
        get_registry().create("architecture", arch, input_size=FEATURES, num_classes=CLASSES, hidden_size=hidden).eval()
    )
    cases, errors = {}, {}
    for k in ks:
        cases[(arch, "eager", k)] = eager_call(model, k)
    for fmt in ("torchscript", "onnx"):
        path = tmp / f"{arch}.{fmt}"
        try:
            export_model(model, fmt, path, label=arch)
        except ExportError as exc:
            errors[fmt] = str(exc)
            continue
        for k in ks:
            if fmt == "torchscript":
                cases[(arch, fmt, k)] = torchscript_call(path, k)
            else:
                cases[(arch, "onnx", k)] = onnx_call(path, k)
                cases[(arch, "onnx_iobinding", k)] = onnx_iobinding_call(path, k)
    return cases, errors


def run_interleaved(cases: dict, calls: int, repeats: int, warmup: int) -> tuple[dict, list]:
    """Per case, every call's seconds; the cases alternate in blocks of ``calls`` calls, order reversed each round."""
    for call in cases.values():
        for _ in range(warmup):
            call()
    times: dict = {key: [[] for _ in range(repeats)] for key in cases}
    loads = []
    keys = list(cases)
    for r in range(repeats):
        loads.append(loadavg_1min())
        for key in keys if r % 2 == 0 else reversed(keys):
            call, out = cases[key], times[key][r]
            for _ in range(calls):
                began = time.perf_counter()
                call()
                out.append(time.perf_counter() - began)
    return times, loads


def bench_frontend(calls: int, warmup: int) -> dict:
    from nrstream.data.audio import FeatureFrontend
    from nrstream.data.streaming_frontend import StreamingFrontend

    fe = StreamingFrontend(FeatureFrontend())
    hop = torch.randn(fe.hop) * 0.1
    fe.push(torch.randn(fe.n_fft) * 0.1)
    for _ in range(warmup):
        fe.push(hop)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        fe.push(hop)
        times.append(time.perf_counter() - began)
    return {"hop_samples": fe.hop, **percentiles(np.asarray(times) * 1e6)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS), help="frames per call (default %(default)s)")
    parser.add_argument("--calls", type=int, default=300, help="calls per block (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of blocks (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_start = loadavg_1min()
    cases, errors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            arch_case, errors[arch] = arch_cases(arch, args.hidden, tuple(args.ks), Path(tmp))
            cases.update(arch_case)
        times, loads = run_interleaved(cases, args.calls, args.repeats, args.warmup)
    frontend = bench_frontend(args.calls * args.repeats, args.warmup)
    figures: dict = {arch: {} for arch in args.archs}
    for (arch, fmt, k), rounds in times.items():
        per_frame = [np.asarray(r) * 1e6 / k for r in rounds]
        p99s = [float(np.percentile(r, 99)) for r in per_frame]
        figures[arch].setdefault(fmt, {})[str(k)] = {
            **percentiles(np.concatenate(per_frame)),
            "p99_us_rounds": [round(v, 2) for v in p99s],
            "decision_delay_ms": (k - 1) * HOP_MS,
        }
    for arch, errs in errors.items():
        for fmt, message in errs.items():
            figures[arch][fmt] = {"error": message}
    target = _target(figures)
    payload = {
        "benchmark": "latency",
        "settings": {
            "batch": 1,
            "ks": list(args.ks),
            "hidden": args.hidden,
            "features": FEATURES,
            "classes": CLASSES,
            "calls": args.calls,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "archs": list(args.archs),
            "hop_ms": HOP_MS,
        },
        "command": "python benchmarks/latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": threads(),
            "onnxruntime_threads": 1,
            "load_1min": load_start,
            "load_1min_after": loadavg_1min(),
        },
        "load_1min_per_round": loads,
        "frontend_per_hop": frontend,
        "architectures": figures,
        "targets": {"gru_k10_p99_us_per_frame": target},
    }
    try:
        import onnxruntime

        payload["machine"]["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    _print(payload, args.ks)
    write_json(args.json, payload)
    return payload


def _target(figures: dict) -> dict:
    """The best format's p99 at k = 10 for the GRU; met only when every round's p99 is under the target."""
    best = None
    for fmt, by_k in figures.get(TARGET_ARCH, {}).items():
        cell = by_k.get(str(TARGET_K)) if "error" not in by_k else None
        if cell and (best is None or cell["p99_us"] < best[1]["p99_us"]):
            best = (fmt, cell)
    if best is None:
        return {"target": TARGET_US, "verdict": "not measured", "met": False}
    fmt, cell = best
    rounds = cell["p99_us_rounds"]
    verdict = "met" if max(rounds) <= TARGET_US else "missed" if min(rounds) > TARGET_US else "undecided"
    return {"target": TARGET_US, "format": fmt, "p99_us": cell["p99_us"], "verdict": verdict, "met": verdict == "met"}


def _print(payload: dict, ks: list[int]) -> None:
    fe = payload["frontend_per_hop"]
    print(f"streaming front end, per 10 ms hop: p50 {fe['p50_us']} µs, p99 {fe['p99_us']} µs")
    formats = ("eager", "torchscript", "onnx", "onnx_iobinding")
    print("µs per frame, p50 / p99 [min-max of the rounds' p99]; decision delay (k - 1) x 10 ms")
    for k in ks:
        print(f"k = {k} (delay up to {(k - 1) * HOP_MS} ms)")
        print(f"  {'arch':<6}" + "".join(f"{f:>28}" for f in formats))
        for arch, by_format in payload["architectures"].items():
            cells = []
            for fmt in formats:
                cell = by_format.get(fmt, {})
                if "error" in cell or str(k) not in cell:
                    cells.append("n/a")
                    continue
                c = cell[str(k)]
                r = c["p99_us_rounds"]
                cells.append(f"{c['p50_us']:.1f} / {c['p99_us']:.1f} [{min(r):.0f}-{max(r):.0f}]")
            print(f"  {arch:<6}" + "".join(f"{c:>28}" for c in cells))
    t = payload["targets"]["gru_k10_p99_us_per_frame"]
    if "p99_us" in t:
        where = f"{t['format']}: {t['p99_us']} µs"
        print(f"target: GRU p99 <= {t['target']:g} µs per frame at k = 10: {t['verdict']} ({where})")
    m = payload["machine"]
    print(f"(1-min load {m['load_1min']} before, {m['load_1min_after']} after; {m['cpus']} CPUs; 1 thread)")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
