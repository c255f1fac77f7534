"""Soak test: an agent on an endless stream for ``--frames`` frames (default 10^7), watching memory.

The vector env (``gymnasium.make_vec(id, num_envs=B, frames_per_step=T,
vectorization_mode="vector_entry_point")``, test split) feeds an :class:`nrstream.Agent`
(GRU, reset policy ``never`` unless ``--reset oracle``); actions are scored by the env and
the ``accuracy`` and ``rolling_accuracy`` metrics are updated every chunk. Along the way:

* resident memory (RSS: psutil if installed, else ``/proc/self/statm``, else the peak from
  ``resource``) is sampled after every chunk, once ``--warmup-chunks`` chunks have let the
  allocator settle; growth = mean of the last 10 % of samples over the first 10 % (target < 2 %);
* every chunk, the logits and the state are checked for NaN/Inf on the device without a
  host sync (``isfinite`` of their sums: both are bounded for a GRU, so a sum is non-finite
  exactly when an element is); the count is read back at each progress line;
* the rolling accuracy (last 1000 decisions) is printed ``--prints`` times.

The GRU is briefly trained first (``--train-steps`` AdamW steps of ``ce_kl`` on the train
split, 32 lanes; ``--train-steps 0`` soaks an untrained one): accuracy is not the point,
but a trained network makes the rolling-accuracy line mean something.

    python benchmarks/soak.py                          # 10^7 frames, B=256, T=100
    python benchmarks/soak.py --frames 100000000 --json results/soak.json
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from types import SimpleNamespace

import gymnasium
import torch
from _common import add_common_options, env_kwargs, machine, make_vector_env, print_table, setup, sync, write_json

from nrstream import Agent
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.lab.config import TrainConfig
from nrstream.lab.engine import make_optimizer, make_scheduler, train_step
from nrstream.plugin.protocols import protocol_of
from nrstream.plugin.registry import get_registry
from nrstream.stream.settings import StreamSettings

TARGET_GROWTH = 0.02


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=0.0, repeats=1)  # --seconds / --repeats are accepted and unused
    parser.add_argument("--frames", type=float, default=1e7, help="frames to run, all lanes (default %(default)g)")
    parser.add_argument("--reset", choices=("never", "oracle"), default="never", help="agent reset policy")
    parser.add_argument("--train-steps", type=int, default=100, help="ce_kl steps before the soak; 0: untrained")
    parser.add_argument("--warmup-chunks", type=int, default=10, help="chunks before memory sampling starts")
    parser.add_argument("--prints", type=int, default=10, help="progress lines (default %(default)s)")
    parser.add_argument("--window", type=int, default=1000, help="rolling accuracy window, decisions")
    return parser.parse_args(argv)


def _rss_reader():
    """``(name, fn)``: ``fn()`` returns the resident set size in bytes."""
    try:
        import psutil

        process = psutil.Process()
        return "psutil", lambda: process.memory_info().rss
    except ImportError:
        pass
    if os.path.exists("/proc/self/statm"):
        page = os.sysconf("SC_PAGE_SIZE")

        def statm() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        return "/proc/self/statm", statm
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return "resource.ru_maxrss (peak)", lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def brief_training(model, args, device: torch.device) -> dict:
    """``--train-steps`` steps of the engine's :func:`~nrstream.lab.engine.train_step` with ``ce_kl``."""
    if args.train_steps <= 0:
        return {"trained": False, "steps": 0}
    spec = gymnasium.spec(args.env_id)
    options = env_kwargs(args).get("source_options", {})
    dataset = load_dataset(spec.kwargs["source"], **options)
    loss_fn = get_registry().create("loss", "ce_kl")
    protocol = protocol_of(loss_fn, "ce_kl")
    settings = protocol.stream_settings(StreamSettings())
    stream = make_stream(dataset, "train", num_lanes=32, seed=args.seed, device=device, **settings.stream_options())
    train = TrainConfig(lr=3e-3)
    optimizer = make_optimizer(model, train)
    scheduler = make_scheduler(optimizer, train.schedule, args.train_steps)
    agent = Agent(model, protocol.train_reset)
    model.train()
    begin, loss = time.perf_counter(), torch.zeros(())
    for _ in range(args.train_steps):
        loss, _ = train_step(
            agent, stream, loss_fn, optimizer, scheduler, chunk_length=args.chunk, grad_clip=train.grad_clip
        )
    model.eval()
    info = {
        "trained": True,
        "steps": args.train_steps,
        "loss": "ce_kl",
        "lanes": 32,
        "chunk": args.chunk,
        "final_loss": float(loss),
        "seconds": time.perf_counter() - begin,
    }
    print(f"  trained {args.train_steps} ce_kl steps in {info['seconds']:.1f} s, final loss {info['final_loss']:.3f}")
    return info


def _state_sum(state) -> torch.Tensor:
    if isinstance(state, torch.Tensor):
        return state.sum()
    return sum(_state_sum(s) for s in state)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    rss_name, rss = _rss_reader()
    frames_per_chunk = args.batch * args.chunk
    chunks = max(1, math.ceil(args.frames / frames_per_chunk))
    print(
        f"soak: {args.env_id} test split, B={args.batch}, T={args.chunk}, GRU H={args.hidden}, reset {args.reset}, "
        f"{chunks} chunks = {chunks * frames_per_chunk:,} frames, device={device}, memory from {rss_name}",
        flush=True,
    )

    envs = make_vector_env(args, device, split="test")
    features = envs.single_observation_space.shape[-1]
    classes = int(envs.single_action_space.nvec[0])
    torch.manual_seed(args.seed)
    model = (
        get_registry()
        .create("architecture", "gru", input_size=features, num_classes=classes, hidden_size=args.hidden)
        .to(device)
    )
    training = brief_training(model, args, device)
    model.eval()

    agent = Agent(model, args.reset)
    accuracy = get_registry().create("metric", "accuracy")
    rolling = get_registry().create("metric", "rolling_accuracy", window=args.window)
    obs, info = envs.reset(seed=args.seed)
    nonfinite = torch.zeros((), dtype=torch.long, device=device)
    reward = torch.zeros((), device=device)
    samples: list[tuple[int, int]] = []  # (chunk, rss bytes)
    cuda_samples: list[int] = []
    progress: list[dict] = []
    print_every = max(1, chunks // max(1, args.prints))
    rss_start = rss()
    begin = time.perf_counter()
    with torch.inference_mode():
        for i in range(1, chunks + 1):
            logits = agent(obs, info["start"])
            nonfinite += (~torch.isfinite(logits.sum() + _state_sum(agent.state))).long()
            seen = SimpleNamespace(**info)
            accuracy.update(seen, logits)
            rolling.update(seen, logits)
            obs, r, _terminated, _truncated, info = envs.step(logits.argmax(-1))
            reward += r.sum()
            if i > args.warmup_chunks:
                samples.append((i, rss()))
                if device.type == "cuda":
                    cuda_samples.append(torch.cuda.memory_allocated(device))
            if i % print_every == 0 or i == chunks:
                sync(device)
                elapsed = time.perf_counter() - begin
                line = {
                    "chunk": i,
                    "frames": i * frames_per_chunk,
                    "seconds": elapsed,
                    "fps": i * frames_per_chunk / elapsed,
                    "rss_mb": rss() / 2**20,
                    "rolling_accuracy": rolling.compute()["last"],
                    "nonfinite_chunks": int(nonfinite),
                }
                progress.append(line)
                acc = "n/a" if line["rolling_accuracy"] is None else f"{line['rolling_accuracy']:.3f}"
                print(
                    f"  {line['frames']:>13,} frames  {elapsed:7.1f} s  {line['fps']:>10,.0f} frames/s  "
                    f"RSS {line['rss_mb']:8.1f} MB  rolling accuracy {acc}  NaN/Inf chunks {line['nonfinite_chunks']}",
                    flush=True,
                )
    sync(device)
    elapsed = time.perf_counter() - begin

    values = [v for _, v in samples]
    tenth = max(1, len(values) // 10)
    first = statistics.mean(values[:tenth]) if values else float(rss_start)
    last = statistics.mean(values[-tenth:]) if values else float(rss())
    growth = (last - first) / first
    result_accuracy = accuracy.compute()
    rolling_result = rolling.compute()
    payload = {
        "benchmark": "soak",
        "command": "python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {
            "env_id": args.env_id,
            "env_kwargs": env_kwargs(args),
            "split": "test",
            "batch": args.batch,
            "chunk": args.chunk,
            "hidden": args.hidden,
            "features": features,
            "classes": classes,
            "reset": args.reset,
            "warmup_chunks": args.warmup_chunks,
            "window": args.window,
        },
        "machine": machine(device),
        "model": training,
        "frames": chunks * frames_per_chunk,
        "chunks": chunks,
        "seconds": elapsed,
        "fps": chunks * frames_per_chunk / elapsed,
        "memory": {
            "source": rss_name,
            "samples": len(values),
            "rss_start_mb": rss_start / 2**20,
            "rss_first10_mb": first / 2**20,
            "rss_last10_mb": last / 2**20,
            "rss_min_mb": min(values, default=rss_start) / 2**20,
            "rss_max_mb": max(values, default=rss_start) / 2**20,
            "growth": growth,
            # a thinned curve: at most ~200 points
            "curve": [[c, v / 2**20] for c, v in samples[:: max(1, len(samples) // 200)]],
        },
        "cuda_memory_allocated": (
            {"first10": statistics.mean(cuda_samples[:tenth]), "last10": statistics.mean(cuda_samples[-tenth:])}
            if cuda_samples
            else None
        ),
        "nonfinite_chunks": int(nonfinite),
        "accuracy": result_accuracy["accuracy"],
        "decisions": int(result_accuracy["total"]),
        "reward": float(reward),
        "rolling_accuracy": {
            "last": rolling_result["last"],
            "window": args.window,
            "curve_points": len(rolling_result["rolling_accuracy"]["x"]),
        },
        "progress": progress,
        "targets": {
            "memory_growth": {"target": f"< {TARGET_GROWTH:g}", "met": growth < TARGET_GROWTH},
            "finite": {"target": "no NaN/Inf", "met": int(nonfinite) == 0},
        },
    }
    print()
    print_table(
        [
            ("frames", f"{payload['frames']:,} in {elapsed:.1f} s ({payload['fps']:,.0f} frames/s)"),
            ("RSS first 10 %", f"{first / 2**20:.1f} MB"),
            ("RSS last 10 %", f"{last / 2**20:.1f} MB"),
            (
                "growth",
                f"{growth * 100:+.3f} %  (target < {TARGET_GROWTH * 100:g} %: "
                f"{'met' if growth < TARGET_GROWTH else 'MISSED'})",
            ),
            ("NaN/Inf chunks", f"{int(nonfinite)}"),
            (
                "accuracy",
                "n/a"
                if result_accuracy["accuracy"] is None
                else f"{result_accuracy['accuracy']:.4f} over {int(result_accuracy['total']):,} decisions",
            ),
            ("model", "trained {steps} ce_kl steps".format(**training) if training["trained"] else "untrained"),
            ("load average", f"{payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end"),
        ],
        "soak",
    )
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
