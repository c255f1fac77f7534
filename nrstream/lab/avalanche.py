"""Avalanche adapter (optional extra ``nrstream[avalanche]``): a schedule as an Avalanche benchmark.

Avalanche's strategies train on experiences of ``(x, y)`` examples, not on an endless stream; so
each example here is a *window* of the stream: the ``window`` frames that end at one decision
frame (``x [window, F]``, the gap and the sample before it, from whatever came earlier in the
lane), labelled with that decision's class. :func:`schedule_benchmark` turns a schedule into

* a train stream of one experience per schedule phase (windows of a stationary stream of that
  phase alone: its classes and settings, :meth:`StreamSettings.phase_settings
  <nrstream.stream.settings.StreamSettings.phase_settings>`, the train split), and
* a test stream of one experience per task (the test split),

so Avalanche strategies and evaluation plugins run on nrstream's streams.
:class:`WindowClassifier` wraps any nrstream architecture as an Avalanche model (each window
from the initial state; the logits of its last frame). :func:`avalanche_matrix` reads
``R[i][j]`` back from Avalanche's per-experience accuracies, for
:func:`~nrstream_plugins.metrics.continual.continual_scores` and the ``accuracy_matrix`` metric.

Avalanche is imported only by :func:`schedule_benchmark`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrstream.data.datasets import make_stream
from nrstream.seeds import derive_seed
from nrstream.stream.bank import Dataset
from nrstream.stream.settings import StreamSettings

__all__ = ["stream_windows", "schedule_benchmark", "WindowClassifier", "avalanche_matrix", "ACCURACY_KEY"]

#: Avalanche's key of experience ``j``'s test accuracy (task label 0)
ACCURACY_KEY = "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}"


def stream_windows(
    dataset: Dataset,
    split: str,
    settings: StreamSettings,
    *,
    examples: int,
    window: int,
    lanes: int = 16,
    seed: int = 0,
    chunk_length: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [N, window, F]`` and ``y [N]``: the ``window`` frames ending at each of the first ``N`` decisions.

    The lanes start from ``window - 1`` frames of zeros (what came before the stream); the
    decisions are taken in stream order (frame, then lane).
    """
    stream = make_stream(dataset, split, settings, num_lanes=lanes, seed=seed)
    history = torch.zeros(lanes, window - 1, dataset.feature_size)
    xs, ys, count = [], [], 0
    while count < examples:
        chunk = stream.next_chunk(chunk_length)
        frames = torch.cat([history, chunk.x], 1)  # [B, window - 1 + T, F]
        windows = frames.unfold(1, window, 1)  # [B, T, F, window]: the window ending at each frame
        end = chunk.end.T  # time-major: stream order
        xs.append(windows.transpose(0, 1)[end].transpose(1, 2))
        ys.append(chunk.label.T[end])
        count += int(end.sum())
        history = frames[:, frames.shape[1] - (window - 1) :]
    return torch.cat(xs)[:examples].contiguous(), torch.cat(ys)[:examples]


def schedule_benchmark(
    dataset: Dataset,
    settings: StreamSettings,
    *,
    train_examples: int = 512,
    test_examples: int = 256,
    window: int | None = None,
    lanes: int = 16,
    seed: int = 0,
):
    """An Avalanche ``CLScenario``: one train experience per schedule phase, one test experience per task.

    ``window`` defaults to the longest sample plus the longest gap (every window then holds
    its whole sample). Returns the scenario (``train_stream``, ``test_stream``, task label 0).
    """
    from avalanche.benchmarks.scenarios import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.task_aware import with_task_labels
    from avalanche.benchmarks.utils.classification_dataset import (
        _make_taskaware_tensor_classification_dataset as tensor_dataset,
    )

    timeline = settings.timeline
    if timeline is None:
        raise ValueError("an Avalanche benchmark needs a schedule (data.stream.schedule)")
    window = window or int(dataset.splits["train"].lengths.max()) + settings.max_gap

    def experience(split: str, phase: int, examples: int, tag: str):
        x, y = stream_windows(dataset, split, settings.phase_settings(phase), examples=examples, window=window,
                              lanes=lanes, seed=derive_seed(seed, "avalanche", tag, phase))  # fmt: skip
        return tensor_dataset(x, y, task_labels=0)

    train = [experience("train", i, train_examples, "train") for i in range(len(timeline.phases))]
    test = [experience("test", timeline.task_of.index(t), test_examples, "test") for t in range(timeline.num_tasks)]
    return with_task_labels(benchmark_from_datasets(train=train, test=test))


class WindowClassifier(nn.Module):
    """An nrstream architecture as an Avalanche model: ``x [N, W, F]`` -> the logits of the last frame ``[N, C]``.

    Each window runs from the architecture's initial state (an example is one window).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(x, self.model.initial_state(x.shape[0], x.device))
        return logits[:, -1]


def avalanche_matrix(evaluations: Sequence[dict], tasks: int) -> list[list[float]]:
    """``R[i][j]`` from the dicts ``strategy.eval(test_stream)`` returned after each train experience ``i``."""
    return [[float(results[ACCURACY_KEY.format(j=j)]) for j in range(tasks)] for results in evaluations]
