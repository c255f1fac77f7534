"""Accuracy of a trained FSDD agent per speaker and per position in the stream (issue 24).

The ``fsdd`` source records every sample's speaker (``info["sample_speaker"]``); this runs
a trained agent on the test split's stream (the settings it was trained with, from its
``agent.json``), never reset (or ``--reset oracle``), and breaks the decision-frame accuracy
down by speaker and by the word's position in its lane: the first word after a zero state,
words 2-5 (warm-up) and words 6 on (the steady state).

    python scripts/fsdd_by_speaker.py CHECKPOINT_OR_RUN [--agent gru/ce_kl] [--root DIR]
        [--lanes 16] [--words 64] [--seed 0] [--reset never]

Prints one JSON line: ``{"speaker": {name: [correct, total, accuracy]}, "position": {...}}``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch

from nrstream import TrainedAgent, load_dataset, make_stream


def by_speaker(trained: TrainedAgent, options: dict, lanes: int, words: int, seed: int, reset: str) -> dict:
    """``{"speaker": {name: [correct, total, acc]}, "position": {"1" | "2-5" | "6+": [...]}}`` on the test split."""
    dataset = load_dataset("fsdd", **options)
    speakers, of_sample = dataset.info["speakers"], torch.tensor(dataset.info["sample_speaker"]["test"])
    stream = make_stream(dataset, "test", trained.stream, num_lanes=lanes, seed=seed)
    agent = trained.agent(reset)
    counts: dict[str, dict[str, list[int]]] = {
        "speaker": defaultdict(lambda: [0, 0]),
        "position": defaultdict(lambda: [0, 0]),
    }
    seen = torch.zeros(lanes, dtype=torch.long)
    with torch.no_grad():
        while bool((seen < words).any()):
            chunk = stream.next_chunk(256)
            hit = agent(chunk.x, chunk.start).argmax(-1) == chunk.label
            scored = chunk.end & (chunk.sample_index <= words)
            for lane, t in scored.nonzero().tolist():
                position = int(chunk.sample_index[lane, t])
                groups = (
                    speakers[int(of_sample[chunk.sample_id[lane, t]])],
                    "1" if position == 1 else "2-5" if position <= 5 else "6+",
                )
                for kind, key in zip(("speaker", "position"), groups, strict=True):
                    counts[kind][key][0] += int(hit[lane, t])
                    counts[kind][key][1] += 1
            seen += chunk.end.sum(1)
    return {kind: {k: [c, n, round(c / n, 4)] for k, (c, n) in sorted(v.items())} for kind, v in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="run folder, checkpoint folder or .pt of an agent trained on fsdd")
    parser.add_argument("--agent", help="ARCH/LOSS when the run holds several agents")
    parser.add_argument("--root", help="the FSDD root (default: the one the agent was trained on)")
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--words", type=int, default=64, help="scored words per lane")
    parser.add_argument("--seed", type=int, default=0, help="test stream seed")
    parser.add_argument("--reset", default="never", choices=["never", "oracle"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    trained = TrainedAgent.load(args.path, args.agent)
    if trained.source != "fsdd":
        parser.error(f"{args.path} was trained on {trained.source!r}, not fsdd")
    options = dict(trained.data.get("options") or {})
    if args.root:
        options["root"] = args.root
    print(
        json.dumps(
            {"agent": trained.label, **by_speaker(trained, options, args.lanes, args.words, args.seed, args.reset)}
        )
    )


if __name__ == "__main__":
    main()
