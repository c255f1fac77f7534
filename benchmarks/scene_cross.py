"""A small cross-condition check (issue 16): trained on paper-style or scene streams, tested on both.

GRU agents (the registry's ``gru``) trained briefly with the ``reset`` (segmented: gap 0,
oracle resets), ``ce`` and ``ce_kl`` (continual: gaps, state carried, truncated BPTT) losses
on the train split of a speech source, once on the paper-style stream (``background:
none``: recorded noise in the gaps only, clips zero-padded) and once on the acoustic scene
(``background: recorded``, SNR ``[0, 20]`` dB, voiced extent + 10 frames). Each is tested
on the test split's paper-style and scene streams, never reset (and ``reset`` also with
oracle resets): accuracy at the decision frames over ``--passes`` passes of the split.

Small by design (minutes on a CPU): it shows the size of the boundary-cue artifact, not
a reproduction; the issue's full measurement needs seeds and the full corpus.

    python benchmarks/scene_cross.py --words yes no up down left --renderings 40
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from nrstream import Agent
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.plugin.registry import get_registry
from nrstream.stream.settings import StreamSettings

CONDITIONS = {"paper": {"background": "none"}, "scene": {"background": "recorded"}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="Speech Commands layout folder (source speech_commands)")
    parser.add_argument("--words", nargs="+", default=None, help="synth_speech words (instead of --root)")
    parser.add_argument("--renderings", type=int, default=40, help="synth_speech clips per word")
    parser.add_argument("--losses", nargs="+", default=["reset", "ce", "ce_kl"])
    parser.add_argument("--steps", type=int, default=300, help="training chunks per agent")
    parser.add_argument("--lanes", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--passes", type=int, default=3, help="passes over the test split per evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def settings(condition: str, segmented: bool) -> dict:
    base = StreamSettings(gap_min=20, gap_max=100, noise="recorded", **CONDITIONS[condition])
    return (base.replace(gap_min=0, gap_max=0) if segmented else base).stream_options()


def train(dataset, loss_name: str, condition: str, args) -> torch.nn.Module:
    loss_fn = get_registry().create("loss", loss_name)
    segmented = loss_fn.protocol == "segmented"
    torch.manual_seed(args.seed)
    model = get_registry().create(
        "architecture", "gru", input_size=dataset.feature_size, num_classes=dataset.num_classes, hidden_size=args.hidden
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    stream = make_stream(dataset, "train", num_lanes=args.lanes, seed=args.seed, **settings(condition, segmented))
    agent = Agent(model, "oracle" if segmented else "never")
    agent.reset(args.lanes, "cpu")
    model.train()
    for _ in range(args.steps):
        chunk = stream.next_chunk(args.chunk)
        aux = {} if getattr(loss_fn, "needs_hidden", False) else None
        loss = loss_fn(agent.observe(chunk, aux=aux), chunk, aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        agent.detach()
    return model.eval()


@torch.no_grad()
def accuracy(model, dataset, condition: str, reset: str, args) -> tuple[float, int]:
    lanes = 16
    per_lane = args.passes * math.ceil(len(dataset.splits["test"]) / lanes)
    stream = make_stream(dataset, "test", num_lanes=lanes, seed=args.seed + 1, **settings(condition, False))
    agent = Agent(model, reset)
    agent.reset(lanes, "cpu")
    correct = total = 0
    while int(stream.event.min()) < per_lane:
        chunk = stream.next_chunk(args.chunk)
        logits = agent.observe(chunk)
        scored = chunk.end & (chunk.sample_index <= per_lane)
        correct += int(((logits.argmax(-1) == chunk.label) & scored).sum())
        total += int(scored.sum())
    return correct / total, total


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.words:
        dataset = load_dataset("synth_speech", words=args.words, renderings_per_word=args.renderings, progress=False)
    else:
        dataset = load_dataset("speech_commands", root=args.root)
    print(f"{dataset.info['source']}: {dataset.sizes()} samples, {dataset.num_classes} classes", flush=True)
    rows = []
    for trained_on in CONDITIONS:
        for loss in args.losses:
            begin = time.perf_counter()
            model = train(dataset, loss, trained_on, args)
            resets = ("never", "oracle") if loss == "reset" else ("never",)
            for reset in resets:
                row = {"trained_on": trained_on, "loss": loss, "reset": reset}
                for tested_on in CONDITIONS:
                    row[f"test_{tested_on}"], row["decisions"] = accuracy(model, dataset, tested_on, reset, args)
                row["seconds"] = time.perf_counter() - begin
                rows.append(row)
                print(
                    f"trained on {trained_on:5s}  {loss:6s} reset {reset:6s}  test paper {row['test_paper']:.3f}  "
                    f"test scene {row['test_scene']:.3f}  ({row['decisions']} decisions each)",
                    flush=True,
                )
    payload = {"benchmark": "scene_cross", "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return payload


if __name__ == "__main__":
    main()
