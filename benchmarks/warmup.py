"""Why is a never-reset agent's first word worse than its later ones? (issue 24, "expect warm-up")

A state-carrying agent (``ce``, ``ce_kl``) is trained on one endless stream per lane whose
state is zero only at the very first frame of training (``train.reset_state_every: 0``, the
default): thousands of steps later, every state it learns from is a *warm* one, the state
that running on the stream settles into. Evaluation starts each lane from zero, a state it
hardly ever saw. This script measures that, for trained agents, with the same test stream
fed twice:

* **cold**: every lane starts from the model's initial (zero) state, as evaluation does;
* **warm**: every lane starts from the state the agent reached after ``--prefix`` frames of
  a *different* test stream (another seed), then reads the same stream as the cold run.

The inputs are identical, so any difference is the initial state's doing. Printed per agent:
accuracy at word positions 1, 2, 3-5 and 6-``--words`` (cold and warm, with the decisions
behind each), and how fast the two runs' states meet: the relative distance
``|h_cold - h_warm| / |h_warm|`` (every state tensor flattened per lane, averaged over lanes)
at a few frame counts, and the first frame where it falls below 0.1 and 0.01.

    python benchmarks/warmup.py runs/fsdd_seed0 --agent gru/ce --agent gru/ce_kl
    python benchmarks/warmup.py CKPT_A CKPT_B --tag "seed 0" --tag "seed 1" --json warmup.json

Takes run folders (with ``--agent``) or checkpoint folders (each with its ``agent.json``).
The data come from the agent's own source and options (its ``root`` must still exist).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from nrstream.agent import Agent
from nrstream.artifacts.trained_agent import TrainedAgent
from nrstream.data.datasets import load_dataset, make_stream

#: word positions reported (inclusive ranges; the last one ends at --words)
POSITIONS = ((1, 1), (2, 2), (3, 5))
#: frame counts at which the cold/warm state distance is printed
DISTANCE_AT = (1, 10, 50, 100, 200, 400, 800)


def flat_state(state) -> torch.Tensor:
    """Every tensor of a model state flattened per lane: ``[B, S]`` (states are ``[..., B, ...]`` or ``[B, ...]``)."""
    if isinstance(state, torch.Tensor):
        tensors = [state]
    elif isinstance(state, (tuple, list)):
        tensors = [t for s in state for t in [flat_state(s)] if t.numel()]
        return torch.cat(tensors, dim=1) if tensors else torch.zeros(0)
    elif isinstance(state, dict):
        return flat_state(list(state.values()))
    else:
        return torch.zeros(0)
    t = tensors[0]
    if t.is_complex():
        t = torch.view_as_real(t).flatten(-2)
    return t.reshape(t.shape[0], -1) if t.dim() == 2 else t.transpose(0, 1).reshape(t.shape[1], -1)


@torch.no_grad()
def run(agent: Agent, stream, frames: int, chunk: int, track: bool):
    """Feed ``frames`` frames; return per-decision (position, correct) and per-chunk-end states."""
    positions, correct, states = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.bool)], []
    done = 0
    while done < frames:
        c = stream.next_chunk(min(chunk, frames - done))
        logits = agent.observe(c)
        hit = logits.argmax(-1) == c.label
        positions.append(c.sample_index[c.end])
        correct.append(hit[c.end])
        done += c.x.shape[1]
        if track:
            states.append((done, flat_state(agent.state).clone()))
    return torch.cat(positions), torch.cat(correct), states


def study(trained: TrainedAgent, lanes: int, words: int, frames: int, prefix: int, seed: int, chunk: int) -> dict:
    source = trained.data["source"]
    dataset = load_dataset(source, **trained.data.get("options", {}))
    settings = trained.stream

    def test_stream(s: int):
        return make_stream(dataset, "test", settings, num_lanes=lanes, seed=s)

    cold = Agent(trained.model, "never")
    cold.reset(lanes, "cpu")
    warm = Agent(trained.model, "never")
    warm.reset(lanes, "cpu")
    run(warm, test_stream(seed + 1), prefix, 256, track=False)  # settle on another stream first
    pos_c, ok_c, st_c = run(cold, test_stream(seed), frames, chunk, track=True)
    pos_w, ok_w, st_w = run(warm, test_stream(seed), frames, chunk, track=True)
    assert torch.equal(pos_c, pos_w)  # the same stream, the same decisions

    def accuracy(pos: torch.Tensor, ok: torch.Tensor, low: int, high: int) -> dict:
        pick = (pos >= low) & (pos <= high)
        n = int(pick.sum())
        return {"accuracy": round(float(ok[pick].float().mean()), 4) if n else None, "decisions": n}

    ranges = [(lo, min(hi, words)) for lo, hi in (*POSITIONS, (6, words)) if lo <= words]
    table = {
        f"{lo}-{hi}" if lo != hi else str(lo): {
            "cold": accuracy(pos_c, ok_c, lo, hi),
            "warm": accuracy(pos_w, ok_w, lo, hi),
        }
        for lo, hi in ranges
    }
    distance = []
    for (f, a), (_, b) in zip(st_c, st_w, strict=True):
        d = (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)
        distance.append((f, float(d.mean())))
    below = {
        str(level): next((f for f, d in distance if d < level), None) for level in (0.1, 0.01)
    }
    at = {str(t): round(next(d for f, d in distance if f >= t), 4) for t in DISTANCE_AT if t <= frames}
    mean_word = float(frames / max(1, int(pos_c.max())))
    return {
        "agent": trained.label,
        "source": source,
        "lanes": lanes,
        "frames": frames,
        "prefix_frames": prefix,
        "frames_per_word": round(mean_word, 1),
        "accuracy_by_position": table,
        "state_distance_at_frame": at,
        "first_frame_distance_below": below,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run folders (with --agent) or checkpoint folders")
    parser.add_argument("--agent", action="append", default=None, help="ARCH/LOSS in a run folder (repeatable)")
    parser.add_argument("--tag", action="append", default=None, help="a label per path, in order (e.g. its seed)")
    parser.add_argument("--lanes", type=int, default=400)
    parser.add_argument("--words", type=int, default=20, help="the last word position counted")
    parser.add_argument("--frames", type=int, default=2000, help="frames of the test stream per lane")
    parser.add_argument("--prefix", type=int, default=2000, help="frames of another stream that warm the state")
    parser.add_argument("--chunk", type=int, default=1, help="frames per call (state distance measured at each end)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    if args.tag is not None and len(args.tag) != len(args.paths):
        parser.error(f"give one --tag per path ({len(args.paths)}), or none")
    results = []
    for index, path in enumerate(args.paths):
        for label in args.agent or [None]:
            trained = TrainedAgent.load(path, label)
            trained.model.eval()
            r = study(trained, args.lanes, args.words, args.frames, args.prefix, args.seed, args.chunk)
            r["path"] = str(path)
            r["tag"] = args.tag[index] if args.tag else path.name
            results.append(r)
            print(f"{r['tag']} {r['agent']} ({r['frames_per_word']} frames/word, {args.lanes} lanes)")
            for key, v in r["accuracy_by_position"].items():
                c, w = v["cold"], v["warm"]
                print(f"  word {key:>5}: cold {c['accuracy']}  warm {w['accuracy']}  ({c['decisions']} decisions)")
            print(f"  state distance cold/warm at frame: {r['state_distance_at_frame']}")
            print(f"  first frame below 0.1 / 0.01: {r['first_frame_distance_below']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
