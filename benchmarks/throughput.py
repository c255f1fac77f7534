"""Inference throughput: the raw model, nrstream's vector env + agent, and a plain Gymnasium loop.

One process, one model (the registry's ``gru``), ``B`` lanes, frames per second for:

1. ``raw``: the model's forward over a pre-built ``[B, T, F]`` tensor, no stream — the ceiling;
   ``raw_reset``: the same forward with the reset tensor of a real chunk (``start``), what
   the model itself costs under oracle resets;
2. ``nrstream``: ``gymnasium.make_vec(id, num_envs=B, frames_per_step=T,
   vectorization_mode="vector_entry_point")`` feeding an :class:`nrstream.Agent` with reset
   policy ``never``; actions are the argmax, the env scores them (reward), and the
   ``accuracy`` and ``noise_entropy`` metrics are updated every step;
3. ``nrstream_oracle``: the same with reset policy ``oracle`` (the agent reads ``info["start"]``);
4. ``gymnasium``: ``gymnasium.vector.SyncVectorEnv`` over ``B`` single envs
   (``gymnasium.make(id)``, one frame per step), the agent stepping a ``torch.nn.GRUCell``
   and a ``Linear`` (the same weights) frame by frame — what one writes without nrstream;
5. ``stream``: the vector env alone, ``envs.step(actions)`` with fixed actions and no model —
   what the stream costs by itself;
   ``gather``: the bound for it, the same number of bytes gathered by one
   ``torch.index_select(bank [60000, F], 0, idx [B * T], out=...)`` (target: stream / gather
   >= 0.25);
6. ``stream_plain`` / ``stream_scene``: ``make_stream(...).next_chunk(T)`` without the env, the
   paper-style stream and the acoustic scene (``background="gaussian"``: the background
   under everything, samples mixed in at a drawn SNR; :mod:`nrstream.stream.scene`) on the same
   data and shapes (target: scene / plain >= 0.5).

Everything runs under ``torch.inference_mode()``. Frames = lanes x frames; warm-up calls
are excluded. The cases run in alternating short blocks of ``--seconds`` for ``--repeats``
rounds (:func:`_common.interleave`); each ratio is the median of the per-round ratios with
its min-max spread, and a target is ``met`` only when the whole spread clears it.

    python benchmarks/throughput.py                          # CPU, B=256, T=100, H=128, F=40
    python benchmarks/throughput.py --device cuda --json results/throughput.json
    python benchmarks/throughput.py --stream-only --threads 1    # cases 5 and 6 alone, one thread
"""

from __future__ import annotations

import argparse
import sys
import time
from types import SimpleNamespace

import gymnasium
import numpy as np
import torch
from _common import (
    add_common_options,
    env_kwargs,
    interleave,
    machine,
    make_vector_env,
    print_table,
    ratio,
    ratio_rows,
    setup,
    verdict,
    write_json,
)
from torch import nn

from nrstream import Agent
from nrstream.plugin.registry import get_registry

METRICS = ("accuracy", "noise_entropy")
TARGETS = {
    "nrstream/raw": 0.95,
    "nrstream_oracle/raw": 0.8,
    "nrstream_oracle/raw_reset": 0.95,
    "nrstream/gymnasium": 50.0,
    "stream/gather": 0.25,
    "stream_scene/stream_plain": 0.5,
}
GATHER_ROWS = 60000  # rows of the table the gather bound reads from


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, seconds=0.5, repeats=9)
    parser.add_argument(
        "--skip-gymnasium", action="store_true", help="leave out case 4 (building B single envs takes a while)"
    )
    parser.add_argument("--stream-only", action="store_true", help="only cases 5 and 6: the stream alone")
    return parser.parse_args(argv)


def build_model(args, features: int, classes: int, device: torch.device) -> nn.Module:
    torch.manual_seed(args.seed)
    model = get_registry().create(
        "architecture", "gru", input_size=features, num_classes=classes, hidden_size=args.hidden
    )
    return model.to(device).eval()


def nrstream_case(args, model: nn.Module, device: torch.device, reset_policy: str):
    """Case 2 / 3: the vector env feeding an agent, decisions scored, metrics updated."""
    envs = make_vector_env(args, device)
    agent = Agent(model, reset_policy=reset_policy)
    metrics = [get_registry().create("metric", name) for name in METRICS]
    obs, info = envs.reset(seed=args.seed)
    total_reward = torch.zeros((), device=device)
    frames = args.batch * args.chunk

    def step() -> int:
        nonlocal obs, info, total_reward
        logits = agent(obs, info["start"])  # only the oracle policy reads start
        seen = SimpleNamespace(**info)  # the metrics read label, mask, end
        for metric in metrics:
            metric.update(seen, logits)
        obs, reward, _terminated, _truncated, info = envs.step(logits.argmax(-1))
        total_reward += reward.sum()  # stays on the device: no sync per step
        return frames

    def summary() -> dict:
        out = {"reward": float(total_reward)}
        for metric in metrics:
            out.update({k: v for k, v in metric.compute().items() if k in ("accuracy", "total", "noise_entropy")})
        return out

    return step, summary, envs


def raw_cases(args, model: nn.Module, device: torch.device):
    """Case 1: the model alone on a pre-built chunk (and with that chunk's resets)."""
    # a real chunk of the stream, so that x and the reset pattern are those of cases 2 and 3
    envs = make_vector_env(args, device)
    obs, info = envs.reset(seed=args.seed + 1)
    x, start = obs.clone(), info["start"].clone()
    frames = args.batch * args.chunk
    state = {"raw": model.initial_state(args.batch, device), "raw_reset": model.initial_state(args.batch, device)}

    def raw() -> int:
        _, state["raw"] = model(x, state["raw"])
        return frames

    def raw_reset() -> int:
        _, state["raw_reset"] = model(x, state["raw_reset"], reset=start)
        return frames

    columns = int(start.any(0).sum())
    return raw, raw_reset, columns


def stream_cases(args, device: torch.device):
    """Case 5: the vector env stepped alone, and the same-bytes gather bound."""
    envs = make_vector_env(args, device)
    obs, _info = envs.reset(seed=args.seed)
    actions = torch.zeros(args.batch, args.chunk, dtype=torch.long, device=device)
    frames = args.batch * args.chunk

    def stream() -> int:
        envs.step(actions)
        return frames

    features = obs.shape[-1]
    generator = torch.Generator().manual_seed(args.seed)
    bank = torch.randn(GATHER_ROWS, features, generator=generator).to(device)
    index = torch.randint(GATHER_ROWS, (frames,), generator=generator).to(device)
    out = torch.empty(frames, features, device=device)

    def gather() -> int:
        torch.index_select(bank, 0, index, out=out)
        return frames

    return stream, gather


def scene_cases(args, device: torch.device):
    """Case 6: the paper-style stream and the scene stream, ``next_chunk`` alone."""
    from nrstream.data.datasets import load_dataset, make_stream
    from nrstream.stream.settings import StreamSettings

    dataset = load_dataset("toy", feature_size=args.features, num_classes=args.classes)
    settings = StreamSettings().stream_options()
    frames = args.batch * args.chunk
    cases = {}
    for name, background in (("stream_plain", "none"), ("stream_scene", "gaussian")):
        options = {**settings, "background": background}
        stream = make_stream(dataset, "train", num_lanes=args.batch, seed=args.seed, device=device, **options)

        def step(stream=stream) -> int:
            stream.next_chunk(args.chunk)
            return frames

        cases[name] = step
    return cases


def gymnasium_case(args, model: nn.Module, device: torch.device):
    """Case 4: SyncVectorEnv over B single envs, a GRUCell stepped frame by frame."""
    kwargs = env_kwargs(args)
    envs = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make(args.env_id, frames_per_step=1, **kwargs) for _ in range(args.batch)]
    )
    features = envs.single_observation_space.shape[-1]
    cell = nn.GRUCell(features, args.hidden).to(device).eval()
    readout = nn.Linear(args.hidden, model.num_classes).to(device).eval()
    # the same weights as the registry's GRU, so that all cases compute the same function
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in model.rnn.state_dict().items() if k.endswith("_l0")})
    readout.load_state_dict(model.readout.state_dict())
    obs, info = envs.reset(seed=args.seed)
    h = torch.zeros(args.batch, args.hidden, device=device)
    counts = {"reward": 0.0, "decisions": 0}

    def step() -> int:
        nonlocal obs, info, h
        x = torch.from_numpy(obs).to(device)[:, 0]  # (B, 1, F) -> (B, F)
        h = cell(x, h)
        actions = readout(h).argmax(-1, keepdim=True).cpu().numpy()  # (B, 1)
        counts["decisions"] += int(info["end"].sum())
        obs, reward, _terminated, _truncated, info = envs.step(actions)
        counts["reward"] += float(np.sum(reward))
        return args.batch

    def summary() -> dict:
        d = counts["decisions"]
        return {"reward": counts["reward"], "total": d, "accuracy": counts["reward"] / d if d else None}

    return step, summary, envs


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    print(
        f"throughput: {args.env_id}, B={args.batch}, T={args.chunk}, GRU H={args.hidden}, device={device}, "
        f"{args.repeats} x {args.seconds:g} s per figure",
        flush=True,
    )
    with torch.inference_mode():
        # the env decides F and C (the toy source is sized by --features / --classes)
        probe = gymnasium.make_vec(args.env_id, num_envs=1, vectorization_mode="vector_entry_point", **env_kwargs(args))
        features = probe.single_observation_space.shape[-1]
        classes = int(probe.single_action_space.nvec[0])
        probe.close()
        model = build_model(args, features, classes, device)

        stream, gather = stream_cases(args, device)
        cases, summaries, reset_columns = {"stream": stream, "gather": gather}, {}, None
        if args.env_id == "nrstream/Toy-v0":
            cases.update(scene_cases(args, device))
        if not args.stream_only:
            raw, raw_reset, reset_columns = raw_cases(args, model, device)
            step_never, summary_never, _ = nrstream_case(args, model, device, "never")
            step_oracle, summary_oracle, _ = nrstream_case(args, model, device, "oracle")
            # compared cases side by side: raw | nrstream, nrstream_oracle | raw_reset
            cases.update(raw=raw, nrstream=step_never, nrstream_oracle=step_oracle, raw_reset=raw_reset)
            summaries = {"nrstream": summary_never, "nrstream_oracle": summary_oracle}
        if not (args.skip_gymnasium or args.stream_only):
            begin = time.perf_counter()
            step_gym, summary_gym, envs_gym = gymnasium_case(args, model, device)
            print(f"  built SyncVectorEnv of {args.batch} envs in {time.perf_counter() - begin:.1f} s", flush=True)
            cases["gymnasium"] = step_gym
            summaries["gymnasium"] = summary_gym

        measured = interleave(
            cases, device, seconds=args.seconds, repeats=args.repeats, progress=lambda s: print(s, flush=True)
        )
        results = measured["cases"]
        for name, summary in summaries.items():
            # the check proves decisions were scored; on a slow or busy machine the timed calls
            # may not have reached one, so step on (untimed) until one is
            for _ in range(100_000):
                if summary()["total"] > 0:
                    break
                cases[name]()
            results[name]["check"] = summary()

    fps = {name: r["fps"] for name, r in results.items()}
    pairs = {"stream/gather": ("stream", "gather")}
    if "stream_scene" in fps:
        pairs["stream_scene/stream_plain"] = ("stream_scene", "stream_plain")
    if "raw" in fps:
        pairs.update(
            {
                "nrstream/raw": ("nrstream", "raw"),
                "nrstream_oracle/raw": ("nrstream_oracle", "raw"),
                "nrstream_oracle/raw_reset": ("nrstream_oracle", "raw_reset"),
                "raw_reset/raw": ("raw_reset", "raw"),
            }
        )
    if "gymnasium" in fps:
        pairs["nrstream/gymnasium"] = ("nrstream", "gymnasium")
        pairs["raw/gymnasium"] = ("raw", "gymnasium")  # the most 2/4 could be
    spread = {key: ratio(measured, num, den) for key, (num, den) in pairs.items()}
    ratios = {key: st["median"] for key, st in spread.items()}
    payload = {
        "benchmark": "throughput",
        "settings": {
            "env_id": args.env_id,
            "env_kwargs": env_kwargs(args),
            "batch": args.batch,
            "chunk": args.chunk,
            "hidden": args.hidden,
            "features": features,
            "classes": classes,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "metrics": list(METRICS),
            "reset_columns_per_chunk": reset_columns,
        },
        "machine": machine(device),
        "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": measured["threads"],
        "load_1min_per_round": measured["load_1min"],
        "fps": fps,
        "ratios": ratios,  # median over rounds of the per-round ratio
        "ratio_spread": spread,
        "targets": {
            k: {"target": v, "verdict": verdict(spread[k], v), "met": verdict(spread[k], v) == "met"}
            for k, v in TARGETS.items()
            if k in spread
        },
        "cases": results,
    }

    labels = {
        "raw": "1  raw model forward",
        "raw_reset": "1r raw model forward, chunk's resets",
        "nrstream": "2  nrstream, reset never",
        "nrstream_oracle": "3  nrstream, reset oracle",
        "gymnasium": "4  plain Gymnasium, GRUCell per frame",
        "stream": "5  the vector env alone, envs.step(actions)",
        "gather": "5g same-bytes gather bound (index_select)",
        "stream_plain": "6  stream.next_chunk, paper-style",
        "stream_scene": "6s stream.next_chunk, acoustic scene",
    }
    print()
    print_table([(labels[k], f"{v:>14,.0f} frames/s") for k, v in fps.items()], "frames per second (median)")
    print_table(ratio_rows(spread, TARGETS), "ratios: median [min - max] over rounds")
    if reset_columns is not None:
        print(f"  oracle reset columns in the raw chunk: {reset_columns} of {args.chunk}")
    print(f"  load average: {payload['machine']['loadavg_start']} at start, {payload['machine']['loadavg']} at end")
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
