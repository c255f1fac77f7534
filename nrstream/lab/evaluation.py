"""Evaluation: trained agents on endless test streams, scored at decision frames.

Two kinds of run, both vectorised over lanes and chunked over time:

* :func:`~nrstream.lab.scoring.decision_accuracy` — ``B`` lanes, each run exactly until its
  ``n``-th decision frame; decisions after the ``n``-th are ignored (the stream is
  endless). Used for accuracy versus stream length (and, by the engine, for validation).
* :func:`endless_run` — a long stream (thousands of samples per lane) fed to the metric
  plugins of ``evaluate.metrics``.

:func:`evaluate_agent` puts both together for one trained model and one reset policy.

Accuracy by length is counted here, in the core, rather than by a metric plugin: it
needs the per-lane cut-off at the ``n``-th decision, and the headline numbers must not
depend on which metric plugins are installed. The core knows no specific metric: each
one is built from its config entry (``{name, options}``) and declares what its
``compute()`` returns in its ``produces`` attribute (see :func:`metric_produces`), which
the report renders generically.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from nrstream.agent import Agent
from nrstream.data.datasets import make_stream
from nrstream.lab.config import Config, MetricConfig
from nrstream.lab.scoring import FRAME_BUDGET, LengthResult, decision_accuracy, lanes_for_length, non_finite_error
from nrstream.plugin.protocols import evaluation_settings
from nrstream.plugin.registry import get_registry
from nrstream.seeds import derive_seed
from nrstream.stats import wilson_interval
from nrstream.stream.bank import Dataset
from nrstream.stream.stream import Stream

__all__ = [
    "wilson_interval",
    "derive_seed",
    "lanes_for_length",
    "decision_accuracy",
    "make_metrics",
    "metric_produces",
    "endless_run",
    "evaluate_agent",
    "LengthResult",
    "METRIC_KINDS",
]

#: what a metric's ``produces`` may declare for each key of its ``compute()``
METRIC_KINDS = ("scalar", "curve")


def _config_value(config: Config, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def make_metrics(config: Config) -> dict[str, Any]:
    """One fresh metric object per ``evaluate.metrics`` entry, by name.

    Options come from the entry's ``options``. A metric class may name config keys that
    supply an option's default (``config_defaults = {"window": "evaluate.rolling_window"}``):
    an explicit option always wins.
    """
    registry = get_registry()
    metrics = {}
    for entry in config.evaluate.metrics:
        entry = entry if isinstance(entry, MetricConfig) else MetricConfig(entry)
        factory = registry.get("metric", entry.name).factory
        defaults = {opt: _config_value(config, key) for opt, key in getattr(factory, "config_defaults", {}).items()}
        metrics[entry.name] = registry.create("metric", entry.name, **{**defaults, **entry.options})
    return metrics


def metric_produces(metrics: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{metric: {key: "scalar" | "curve"}}``: what each metric declares its ``compute()`` returns."""
    return {name: dict(getattr(metric, "produces", {}) or {}) for name, metric in metrics.items()}


@torch.inference_mode()
def endless_run(
    model: nn.Module,
    stream: Stream,
    reset_policy: str,
    metrics: dict[str, object],
    frames_per_lane: int,
    chunk_length: int = 1024,
) -> dict[str, dict]:
    """Feed ``frames_per_lane`` frames of every lane to each metric; return their ``compute()``.

    Raises :class:`~nrstream.errors.NonFiniteError` when the logits became NaN or infinite: one
    ``isfinite`` reduction per chunk, gathered on the device and read once at the end (no sync per chunk).
    """
    was_training = model.training
    model.eval()
    agent = Agent(model, reset_policy)
    agent.reset(stream.num_lanes, stream.device)
    needs_hidden = any(getattr(m, "needs_hidden", False) for m in metrics.values())
    for metric in metrics.values():
        metric.reset()
    done, index = 0, 0
    finite: list[torch.Tensor] = []
    starts: list[tuple[int, int]] = []
    while done < frames_per_lane:
        length = min(chunk_length, frames_per_lane - done, max(1, FRAME_BUDGET // stream.num_lanes))
        chunk = stream.next_chunk(length)
        aux = {} if needs_hidden else None
        logits = agent.observe(chunk, aux=aux)
        finite.append(torch.isfinite(logits).all())
        starts.append((done, done + length - 1))
        for metric in metrics.values():
            metric.update(chunk, logits, aux)
        done += length
        index += 1
    model.train(was_training)
    if finite:
        flags = torch.stack(finite).tolist()
        if not all(flags):
            first = flags.index(False)
            raise non_finite_error("endless test", first, starts[first])
    return {name: metric.compute() for name, metric in metrics.items()}


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
    its ``n``-th decision, on streams laid out as configured (``data.stream``, changed by
    ``evaluate.stream``); the streams depend only on ``run.seed`` and ``n``, so every agent
    and policy sees the same frames.

    Returns ``{"by_length": {str(n): LengthResult}, "metrics": {name: compute()},
    "produces": {name: {key: kind}}, "endless": {"lanes", "frames_per_lane", "seconds"}}``.
    """
    ev = config.evaluate
    settings = evaluation_settings(config)
    test_size = len(dataset.splits["test"])

    def stream(lanes: int, *seed_parts) -> Stream:
        return make_stream(
            dataset, "test", settings, num_lanes=lanes, seed=derive_seed(config.run.seed, *seed_parts), device=device
        )

    by_length: dict[str, LengthResult] = {}
    for n in ev.lengths:
        lanes = lanes_for_length(n, ev.min_decisions, test_size)
        by_length[str(n)] = decision_accuracy(model, stream(lanes, "test", n), reset_policy, n, ev.chunk_length)
        if progress is not None:
            progress(n, by_length[str(n)])

    began = time.perf_counter()
    metrics = make_metrics(config)
    frames = math.ceil(
        ev.endless_samples * settings.mean_event_length(float(dataset.splits["test"].lengths.float().mean()))
    )
    endless = endless_run(model, stream(ev.endless_lanes, "endless"), reset_policy, metrics, frames, ev.chunk_length)
    return {
        "by_length": by_length,
        "metrics": endless,
        "produces": metric_produces(metrics),
        "endless": {"lanes": ev.endless_lanes, "frames_per_lane": frames, "seconds": time.perf_counter() - began},
    }
