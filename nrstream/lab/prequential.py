"""The prequential protocol: on every chunk, predict (and score), then learn; never reset, never stop.

river's ``progressive_val_score`` for sequence models, on an endless and possibly
non-stationary stream (``data.stream.schedule``, :mod:`nrstream.stream.schedule`). One run of
one agent (any architecture, any loss):

1. a chunk of ``continual.chunk_length`` frames of every lane is read from the train split;
2. the agent predicts it (``logits [B, T, C]``, state carried from the chunk before): these
   logits go to the metrics (:func:`prequential_step` returns them, computed before any
   weight changes, so no label of the chunk has been learnt yet);
3. the loss on the same logits and the chunk's labels takes one optimiser step (truncated
   BPTT over the chunk); ``continual.steps_per_chunk > 1`` re-runs the chunk from the state
   it began with for each further step; with ``continual.replay = R > 0`` one chunk from a
   reservoir of ``R`` past chunks (reservoir sampling, seeded) is replayed from the state it
   began with, one more step;
4. the state is detached and carried on. It is never reset (a segmented loss keeps its
   oracle resets: the reference).

At the end of each schedule phase, and once before learning anything, the model is scored
on held-out test streams of every task of the schedule (:meth:`StreamSettings.phase_settings
<nrstream.stream.settings.StreamSettings.phase_settings>`, the test split): row ``i`` of the
accuracy matrix ``R[i][j]`` (the ``accuracy_matrix`` metric). The test runs leave the learning
stream and the learner's state untouched.

:func:`run_prequential` is the loop; :func:`prequential_step` its one step, shared with
``benchmarks/prequential.py`` and the tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nrstream.agent import Agent, map_state
from nrstream.data.datasets import make_stream
from nrstream.errors import ConfigError, NrstreamError
from nrstream.lab.config import AgentConfig, Config, ContinualConfig
from nrstream.lab.engine import build_model, optimizer_step
from nrstream.lab.loading import LoadedData
from nrstream.lab.scoring import decision_accuracy
from nrstream.plugin.protocols import PREQUENTIAL, prequential_reset, protocol_of
from nrstream.plugin.registry import get_registry
from nrstream.seeds import derive_seed
from nrstream.stream.settings import SettingError, StreamSettings
from nrstream.stream.stream import Chunk

__all__ = [
    "PREQUENTIAL",
    "Reservoir",
    "make_online_optimizer",
    "prequential_step",
    "PrequentialResult",
    "run_prequential",
]


def make_online_optimizer(model: nn.Module, c: ContinualConfig) -> torch.optim.Optimizer:
    """``continual.optimizer`` with ``continual.lr`` and ``weight_decay`` (a constant rate: the stream never ends)."""
    params, lr, wd = model.parameters(), c.lr, c.weight_decay
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


class Reservoir:
    """At most ``capacity`` past chunks, each with the state it began with: a uniform sample (Vitter's R)."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = int(capacity)
        self.items: list[tuple[Chunk, Any]] = []
        self.seen = 0
        self._generator = torch.Generator().manual_seed(seed)

    def add(self, chunk: Chunk, state: Any) -> None:
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append((chunk, state))
            return
        slot = int(torch.randint(self.seen, (1,), generator=self._generator))
        if slot < self.capacity:
            self.items[slot] = (chunk, state)

    def sample(self) -> tuple[Chunk, Any]:
        return self.items[int(torch.randint(len(self.items), (1,), generator=self._generator))]


def _learn(agent: Agent, chunk: Chunk, logits: torch.Tensor, aux, loss_fn, optimizer, grad_clip: float) -> torch.Tensor:
    loss = loss_fn(logits.float(), chunk, aux)
    optimizer_step(agent.model, loss, optimizer, grad_clip)
    return loss.detach()


def prequential_step(
    agent: Agent,
    chunk: Chunk,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int = 1,
    grad_clip: float = 0.0,
    amp: bool = False,
    reservoir: Reservoir | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predict ``chunk`` (``x [B, T, F]``), then learn from its labels; the state runs on.

    Returns the loss of the first step (detached) and the prediction ``logits [B, T, C]``
    (detached), made before any optimiser step on this chunk: what the metrics score.
    """
    needs_hidden = getattr(loss_fn, "needs_hidden", False)
    device_type = chunk.x.device.type
    began = agent.state

    def forward(state) -> tuple[torch.Tensor, dict | None]:
        agent.state = state
        aux = {} if needs_hidden else None
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp and device_type == "cuda"):
            return agent.observe(chunk, aux=aux), aux

    logits, aux = forward(began)
    predicted = logits.detach()
    after = agent.state
    loss = _learn(agent, chunk, logits, aux, loss_fn, optimizer, grad_clip)
    for _ in range(steps - 1):  # further steps on the same chunk, from the state it began with
        logits, aux = forward(began)
        after = agent.state
        _learn(agent, chunk, logits, aux, loss_fn, optimizer, grad_clip)
    if reservoir is not None and reservoir.capacity > 0:
        if reservoir.items:
            old, state = reservoir.sample()
            agent.state = state
            aux = {} if needs_hidden else None
            _learn(agent, old, agent.observe(old, aux=aux), aux, loss_fn, optimizer, grad_clip)
        reservoir.add(chunk, began)
    agent.state = after
    agent.detach()
    return loss, predicted


@dataclass
class PrequentialResult:
    """One prequential run: the metrics' ``compute()``, the accuracy matrix, throughput."""

    arch: str
    loss: str
    seed: int
    reset: str
    frames: int
    seconds: float
    metrics: dict = field(default_factory=dict)
    matrix: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan

    def to_json(self) -> dict:
        return {
            "arch": self.arch,
            "loss": self.loss,
            "seed": self.seed,
            "reset": self.reset,
            "protocol": PREQUENTIAL.name,
            "frames_per_lane": self.frames,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "matrix": self.matrix,
            "loss_curve": self.losses,
        }


def _user_error(config: Config, exc: SettingError) -> ConfigError:
    return ConfigError(f"{config.path}: data.stream.{exc.field}: {exc.reason}")


def _phase_ends(settings: StreamSettings, frames: int) -> list[tuple[int, int]]:
    """``(frame, phase)``: where each phase of the schedule clock ends, up to ``frames`` (and at ``frames``)."""
    timeline = settings.timeline
    if timeline is None:
        return [(frames, 0)]
    ends, clock = [], 0
    while clock < frames:
        for i, phase in enumerate(timeline.phases):
            clock += phase.frames
            if clock >= frames or (not timeline.repeat and i == len(timeline.phases) - 1):
                ends.append((frames, i))
                return ends
            ends.append((clock, i))
    return ends


def held_out_accuracies(model: nn.Module, loaded: LoadedData, config: Config, reset: str, seed: int) -> list[float]:
    """Decision accuracy of ``model`` on a held-out test stream of each task (first phase of each)."""
    settings, c = config.data.stream, config.continual
    timeline = settings.timeline
    if timeline is None:
        phases: Sequence[int] = [0]
        streams = [settings]
    else:
        phases = [timeline.task_of.index(t) for t in range(timeline.num_tasks)]
        streams = [settings.phase_settings(i) for i in phases]
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for task, stream_settings in enumerate(streams):
            stream = make_stream(
                loaded.dataset, "test", stream_settings, num_lanes=c.test_lanes,
                seed=derive_seed(seed, "continual-test", task), device=device,
            )  # fmt: skip
            out.append(decision_accuracy(model, stream, reset, c.test_samples, c.chunk_length * 4).accuracy)
    return out


def run_prequential(
    config: Config,
    agent_config: AgentConfig,
    loaded: LoadedData,
    device: torch.device | str = "cpu",
    *,
    seed: int | None = None,
    log: Callable[[str], None] | None = None,
) -> PrequentialResult:
    """Run one agent prequentially for ``continual.frames`` frames per lane (default: the schedule's length).

    Metrics: ``prequential_accuracy`` on the learning stream (scored before learning) and
    ``accuracy_matrix`` on the held-out test streams at every phase end (and before learning:
    its forward-transfer baseline).
    """
    c, seed = config.continual, config.run.seed if seed is None else seed
    device = torch.device(device)
    settings = config.data.stream
    timeline = settings.timeline
    frames = c.frames or (timeline.total_frames if timeline is not None else None)
    if frames is None:
        raise ConfigError(f"{config.path}: continual.frames: needed when data.stream has no schedule")
    registry = get_registry()
    loss_fn = registry.create("loss", agent_config.loss, **agent_config.loss_options)
    reset = prequential_reset(protocol_of(loss_fn, agent_config.loss))
    model = build_model(agent_config, loaded.dataset, seed).to(device)
    optimizer = make_online_optimizer(model, c)
    try:
        stream = make_stream(loaded.dataset, "train", settings, num_lanes=c.lanes,
                             seed=derive_seed(seed, "prequential"), device=device)  # fmt: skip
    except SettingError as exc:
        raise _user_error(config, exc) from None
    phases = len(timeline.phases) if timeline is not None else 1
    tasks = timeline.num_tasks if timeline is not None else 1
    task_of = timeline.task_of if timeline is not None else [0]
    ends = _phase_ends(settings, frames)
    online = registry.create("metric", "prequential_accuracy", window=c.window, margin=c.margin, phases=phases,
                             switches=[end for end, _ in ends[:-1]])  # fmt: skip
    matrix = registry.create("metric", "accuracy_matrix", phases=phases, tasks=tasks, task_of=task_of)
    matrix.record_baseline(held_out_accuracies(model, loaded, config, reset, seed))
    agent = Agent(model, reset)
    agent.reset(c.lanes, device)
    reservoir = Reservoir(c.replay, derive_seed(seed, "replay")) if c.replay else None
    torch.manual_seed(derive_seed(seed, "prequential", agent_config.label))
    model.train()
    # one slot per chunk, written on the device (no sync per chunk, no Python object per chunk)
    previous = [0, *(end for end, _ in ends[:-1])]
    chunks = sum(math.ceil((end - begin) / c.chunk_length) for begin, (end, _) in zip(previous, ends, strict=True))
    losses, step, read, seconds = torch.zeros(chunks, device=device), 0, 0, 0.0
    for end, phase in ends:
        began = time.perf_counter()
        while read < end:
            chunk = stream.next_chunk(min(c.chunk_length, end - read))
            loss, logits = prequential_step(agent, chunk, loss_fn, optimizer, steps=c.steps_per_chunk,
                                            grad_clip=c.grad_clip, reservoir=reservoir)  # fmt: skip
            online.update(chunk, logits)
            losses[step] = loss
            step += 1
            read += chunk.length
        seconds += time.perf_counter() - began
        if step and not math.isfinite(float(losses[step - 1])):
            raise NrstreamError(f"{agent_config.label}: the loss became non-finite; lower continual.lr ({c.lr})")
        state = map_state(lambda s: s.clone(), agent.state)  # the test runs have their own agent and stream
        matrix.record_row(phase, held_out_accuracies(model, loaded, config, reset, seed))
        agent.state = state
        model.train()
        if log is not None:
            log(f"nrstream: {agent_config.label} prequential: phase {phase} ended at frame {read}")
    loss_curve = losses[:step].cpu().tolist()
    return PrequentialResult(
        agent_config.arch, agent_config.loss, seed, reset, read, seconds,
        metrics=online.compute(), matrix=matrix.compute(), losses=loss_curve,
    )  # fmt: skip
