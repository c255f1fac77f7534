"""Accuracy at decision frames: what validation (engine) and evaluation both count.

A stream is endless, so "accuracy on a stream of length ``n``" means: run every lane
until its ``n``-th decision frame (a sample's last frame) and count exactly the first
``n`` decisions of each lane. The engine scores the validation split this way after each
epoch; :mod:`nrstream.lab.evaluation` scores the test split at every configured length. Both
import this module, so the engine never imports the evaluation pipeline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from nrstream.agent import Agent
from nrstream.errors import NonFiniteError
from nrstream.stats import wilson_interval
from nrstream.stream.stream import Stream

__all__ = ["FRAME_BUDGET", "LengthResult", "lanes_for_length", "decision_accuracy", "non_finite_error"]

#: frames (lanes x time) per inference call: bounds memory for the many-lane short runs
FRAME_BUDGET = 1 << 20


@dataclass
class LengthResult:
    """Correct decisions out of ``total`` (``lanes x n``), and the seconds it took."""

    correct: int
    total: int
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def ci95(self) -> tuple[float, float]:
        """The Wilson score interval (95 %) of :attr:`accuracy`."""
        return wilson_interval(self.correct, self.total)


def lanes_for_length(n: int, min_decisions: int, split_size: int) -> int:
    """Lanes so that ``lanes * n`` decisions reach ``min_decisions`` and cover the split.

    The stream draws samples without replacement, so ``lanes * n >= split_size`` draws
    visit every sample of the split at least once.
    """
    return math.ceil(max(min_decisions, split_size) / n)


def _chunk_length(stream: Stream, n: int, cap: int) -> int:
    """Frames per call: at most what the slowest lane needs to reach its ``n``-th decision."""
    need = n * (stream.gaps.max + int(stream.bank.lengths.max()))
    return max(1, min(cap, need, FRAME_BUDGET // stream.num_lanes))


def non_finite_error(what: str, chunk: int, frames: tuple[int, int]) -> NonFiniteError:
    """The one line for logits that became NaN or infinite in evaluation or validation."""
    return NonFiniteError(
        f"the logits became NaN or infinite on the {what} stream at chunk {chunk} (frames {frames[0]}..{frames[1]}); "
        "likely causes: a diverged model (non-finite weights in its checkpoint: retrain it with a lower train.lr or "
        "train.grad_clip) or a recurrent state that overflows on long streams (try reset: oracle to compare)"
    )


@torch.inference_mode()
def decision_accuracy(
    model: nn.Module,
    stream: Stream,
    reset_policy: str,
    decisions_per_lane: int,
    chunk_length: int = 1024,
    what: str = "test",
    warmup: int = 0,
) -> LengthResult:
    """Run every lane of ``stream`` until its ``warmup + decisions_per_lane``-th decision frame.

    The prediction at a decision frame is the argmax of the logits ``[B, T, C]`` there.
    Returns the correct count over exactly ``lanes * decisions_per_lane`` decisions: each lane's
    first ``warmup`` decisions run the agent (a warm state, as a never-reset agent has it after
    a while) but are not scored.

    Raises:
        NonFiniteError: the logits held a NaN or infinite value (one ``isfinite`` reduction per
            chunk, read with the same device sync as the stopping test); ``what`` names the stream.
    """
    began = time.perf_counter()
    was_training = model.training
    model.eval()
    n, w = int(decisions_per_lane), int(warmup)
    agent = Agent(model, reset_policy)
    agent.reset(stream.num_lanes, stream.device)
    length = _chunk_length(stream, n + w, chunk_length)
    stream.block_frames = length  # draw events for one chunk at a time: most lanes need one chunk in all
    seen = torch.zeros(stream.num_lanes, dtype=torch.long, device=stream.device)
    correct = torch.zeros((), dtype=torch.long, device=stream.device)
    total = torch.zeros((), dtype=torch.long, device=stream.device)
    index = 0
    while True:
        chunk = stream.next_chunk(length)
        logits = agent.observe(chunk)
        scored = chunk.end & (chunk.sample_index <= n + w)
        if w:
            scored &= chunk.sample_index > w
        # argmax at the scored frames only (a few per lane and chunk), not over all [B, T, C]
        correct += (logits[scored].argmax(-1) == chunk.label[scored]).sum()
        total += scored.sum()
        seen += chunk.end.sum(1)
        done, finite = torch.stack([(seen >= n + w).all(), torch.isfinite(logits).all()]).tolist()
        if not finite:
            model.train(was_training)
            raise non_finite_error(what, index, (index * length, (index + 1) * length - 1))
        if done:
            break
        index += 1
    model.train(was_training)
    return LengthResult(int(correct), int(total), time.perf_counter() - began)
