"""Continual evaluation: trained agents on endless test streams, scored at decision frames.

Two kinds of run, both vectorised over lanes and chunked over time:

* :func:`decision_accuracy` — ``B`` lanes, each run exactly until its ``n``-th decision
  frame; decisions after the ``n``-th are ignored (the stream is endless). Used for
  accuracy versus stream length and for validation during training.
* :func:`endless_run` — a long stream (thousands of samples per lane) fed to metric
  plugins (rolling accuracy, noise entropy, state norm, ...).

:func:`evaluate_agent` puts both together for one trained model and one reset policy.

Accuracy by length is counted here, in the core, rather than by the ``accuracy`` metric
plugin: it needs the per-lane cut-off at the ``n``-th decision, and the headline numbers
must not depend on which metric plugins are installed. The endless run is where the
configured metric plugins (``evaluate.metrics``) see every chunk.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from nrstream.agent import Agent
from nrstream.bank import Dataset
from nrstream.config import Config
from nrstream.datasets import make_stream
from nrstream.plugins import get_registry
from nrstream.stream import Stream

__all__ = [
    "wilson_interval",
    "derive_seed",
    "lanes_for_length",
    "decision_accuracy",
    "endless_run",
    "evaluate_agent",
    "LengthResult",
]

#: frames (lanes x time) per inference call: bounds memory for the many-lane short runs
FRAME_BUDGET = 1 << 20


def derive_seed(seed: int, *parts: object) -> int:
    """An independent stream seed for ``parts`` (e.g. ``("test", 16)``) under ``seed``."""
    blob = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def wilson_interval(correct: int, total: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for the default ``z``).

    The interval always holds ``correct / total`` itself: at 0 % or 100 % the closed form
    misses the end point by a rounding error (``0.9999999999999999``), which would give a
    plot a negative error bar.
    """
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def lanes_for_length(n: int, min_decisions: int, split_size: int) -> int:
    """Lanes so that ``lanes * n`` decisions reach ``min_decisions`` and cover the split.

    The stream draws samples without replacement, so ``lanes * n >= split_size`` draws
    visit every sample of the split at least once.
    """
    return math.ceil(max(min_decisions, split_size) / n)


@dataclass
class LengthResult:
    correct: int
    total: int
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.total)


def _chunk_length(stream: Stream, n: int, cap: int) -> int:
    """Frames per call: at most what the slowest lane needs to reach its ``n``-th decision."""
    need = n * (stream.gaps.max + int(stream.bank.lengths.max()))
    return max(1, min(cap, need, FRAME_BUDGET // stream.num_lanes))


@torch.inference_mode()
def decision_accuracy(
    model: nn.Module, stream: Stream, reset_policy: str, decisions_per_lane: int, chunk_length: int = 1024
) -> LengthResult:
    """Run every lane of ``stream`` until its ``decisions_per_lane``-th decision frame.

    The prediction at a decision frame (a sample's last frame) is the argmax of the
    logits there. Returns the correct count over exactly ``lanes * decisions_per_lane``
    decisions.
    """
    began = time.perf_counter()
    was_training = model.training
    model.eval()
    n = int(decisions_per_lane)
    agent = Agent(model, reset_policy)
    agent.reset(stream.num_lanes, stream.device)
    length = _chunk_length(stream, n, chunk_length)
    seen = torch.zeros(stream.num_lanes, dtype=torch.long, device=stream.device)
    correct = torch.zeros((), dtype=torch.long, device=stream.device)
    total = torch.zeros((), dtype=torch.long, device=stream.device)
    while True:
        chunk = stream.next_chunk(length)
        logits = agent.observe(chunk)
        scored = chunk.end & (chunk.sample_index <= n)
        correct += ((logits.argmax(-1) == chunk.label) & scored).sum()
        total += scored.sum()
        seen += chunk.end.sum(1)
        if bool((seen >= n).all()):
            break
    model.train(was_training)
    return LengthResult(int(correct), int(total), time.perf_counter() - began)


def _make_metric(name: str, options: dict, window: int):
    registration = get_registry().get("metric", name)
    try:
        params = inspect.signature(registration.factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "window" in params and "window" not in options:
        options = {**options, "window": window}
    return registration.factory(**options)


@torch.inference_mode()
def endless_run(
    model: nn.Module,
    stream: Stream,
    reset_policy: str,
    metrics: dict[str, object],
    frames_per_lane: int,
    chunk_length: int = 1024,
) -> dict[str, dict]:
    """Feed ``frames_per_lane`` frames of every lane to each metric; return their ``compute()``."""
    was_training = model.training
    model.eval()
    agent = Agent(model, reset_policy)
    agent.reset(stream.num_lanes, stream.device)
    needs_hidden = any(getattr(m, "needs_hidden", False) for m in metrics.values())
    for metric in metrics.values():
        metric.reset()
    done = 0
    while done < frames_per_lane:
        length = min(chunk_length, frames_per_lane - done, max(1, FRAME_BUDGET // stream.num_lanes))
        chunk = stream.next_chunk(length)
        aux = {} if needs_hidden else None
        logits = agent.observe(chunk, aux=aux)
        for metric in metrics.values():
            metric.update(chunk, logits, aux)
        done += length
    model.train(was_training)
    return {name: metric.compute() for name, metric in metrics.items()}


def _mean_event_length(dataset: Dataset, split: str, config: Config) -> float:
    lengths = dataset.splits[split].lengths.float()
    gaps = config.data.stream
    return float(lengths.mean()) + (gaps.gap_min + gaps.gap_max) / 2


def evaluate_agent(
    model: nn.Module,
    dataset: Dataset,
    config: Config,
    reset_policy: str,
    device: torch.device,
    progress=None,
) -> dict:
    """Accuracy by stream length (with 95% CIs) and the endless run, for one policy.

    Every length ``n`` runs ``lanes_for_length(n, ...)`` lanes of the test split, each to
    its ``n``-th decision, with noise gaps as configured; the streams depend only on
    ``run.seed`` and ``n``, so every agent and policy sees the same frames.
    """
    ev, stream_config = config.evaluate, config.data.stream
    test_size = len(dataset.splits["test"])

    def stream(lanes: int, *seed_parts) -> Stream:
        return make_stream(
            dataset,
            "test",
            num_lanes=lanes,
            seed=derive_seed(config.run.seed, *seed_parts),
            gap_min=stream_config.gap_min,
            gap_max=stream_config.gap_max,
            noise=stream_config.noise,
            noise_scale=stream_config.noise_scale,
            device=device,
        )

    by_length: dict[str, LengthResult] = {}
    for n in ev.lengths:
        lanes = lanes_for_length(n, ev.min_decisions, test_size)
        by_length[str(n)] = decision_accuracy(model, stream(lanes, "test", n), reset_policy, n, ev.chunk_length)
        if progress is not None:
            progress(n, by_length[str(n)])

    began = time.perf_counter()
    metrics = {m.name: _make_metric(m.name, dict(m.options), ev.rolling_window) for m in ev.metrics}
    frames = math.ceil(ev.endless_samples * _mean_event_length(dataset, "test", config))
    endless = endless_run(model, stream(ev.endless_lanes, "endless"), reset_policy, metrics, frames, ev.chunk_length)
    return {
        "by_length": by_length,
        "metrics": endless,
        "endless": {"lanes": ev.endless_lanes, "frames_per_lane": frames, "seconds": time.perf_counter() - began},
    }
