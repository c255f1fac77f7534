"""The training engine: one agent (architecture + loss) trained on the train-split stream.

The loss's ``protocol`` (a row of :data:`nrstream.plugin.protocols.PROTOCOLS`) decides how the
training and validation streams are laid out and when the agent resets its state.
Training is truncated backprop through time: :func:`train_step` reads the next chunk of
``train.chunk_length`` frames of every lane, and the state is detached between chunks, so
gradients span one chunk while the state itself runs on.

An epoch is ``train.samples_per_lane`` samples per lane (default: one pass over the
train split), converted to a fixed number of steps of ``lanes x chunk_length`` frames.
After each epoch the validation split is scored at decision frames under the same
protocol; the best weights go to ``best.pt``. With ``train.patience = p`` training stops
early once ``p`` epochs in a row have not raised the best validation accuracy by more than
``train.min_delta`` (and not before epoch ``train.min_epochs``); the checkpoint is then
finished, and the last history record says ``stopped_early``.

Checkpoints (:mod:`nrstream.artifacts.checkpoints`: ``last.pt`` after each epoch, or every
``train.checkpoint_every`` steps) load with ``torch.load(weights_only=True)`` and are
written atomically. A run that was interrupted resumes from its last checkpoint and, on
the CPU, ends with bitwise the same weights as a run that never stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nrstream.agent import Agent, map_state
from nrstream.artifacts.checkpoints import (
    CHECKPOINT_FORMAT,
    BestCheckpoint,
    TrainingCheckpoint,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
)
from nrstream.artifacts.run_folder import run_folder_lock
from nrstream.data.datasets import make_stream
from nrstream.errors import NonFiniteError, NrstreamError
from nrstream.lab.config import AgentConfig, Config, TrainConfig, agent_key
from nrstream.lab.loading import LoadedData
from nrstream.lab.scoring import decision_accuracy
from nrstream.lab.tracking import Tracker, open_tracker
from nrstream.log import line_logger
from nrstream.plugin.protocols import Protocol, get_protocol, protocol_of
from nrstream.plugin.registry import get_registry
from nrstream.seeds import derive_seed
from nrstream.stream.bank import Dataset
from nrstream.stream.stream import Chunk, Stream

__all__ = [
    "resolve_device",
    "build_model",
    "make_optimizer",
    "optimizer_step",
    "make_scheduler",
    "train_step",
    "steps_per_epoch",
    "validate",
    "TrainResult",
    "train_agent",
    "checkpoint_path",
    "save_atomic",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without CUDA is a user error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NrstreamError("run.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


# ---------------------------------------------------------------------------- data


# progress lines and notices go to logging (nrstream.log), not straight to stderr
_stderr = line_logger(logging.getLogger("nrstream.lab.engine"))


def checkpoint_path(config: Config, agent: AgentConfig, loaded: LoadedData) -> Path:
    """``<checkpoint_dir>/<arch>-<loss>-<hash>``: one folder per distinct training setup."""
    key = agent_key(config, agent, {"source": loaded.source, "options": loaded.options})
    return config.checkpoint_dir / f"{agent.arch}-{agent.loss}-{key}"


# ---------------------------------------------------------------------------- one step


def build_model(agent: AgentConfig, dataset: Dataset, seed: int) -> nn.Module:
    """The architecture, with weights drawn from ``seed``."""
    torch.manual_seed(derive_seed(seed, "init", agent.arch))
    return get_registry().create(
        "architecture",
        agent.arch,
        input_size=dataset.feature_size,
        num_classes=dataset.num_classes,
        **agent.arch_options,
    )


def make_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with ``train.lr`` and ``train.weight_decay``."""
    return torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    """``cosine``: the learning rate falls from ``lr`` to 0 over ``total`` steps; ``constant``."""
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def train_step(
    agent: Agent,
    stream: Stream,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    chunk_length: int,
    grad_clip: float = 0.0,
    amp: bool = False,
) -> tuple[torch.Tensor, Chunk]:
    """One optimiser step of truncated BPTT — the only copy of it.

    Next chunk (``x [B, T, F]``) -> forward (bfloat16 autocast when ``amp`` on CUDA) ->
    loss on float32 logits ``[B, T, C]`` -> backward -> gradient-norm clip (``grad_clip >
    0``) -> optimiser step -> scheduler step -> the agent's state detached (its values
    carry on into the next chunk, its history does not).

    Returns the loss (detached, still on the device: reading it is the caller's sync) and
    the chunk that was read. ``aux["hidden"]`` is collected only for a loss that sets
    ``needs_hidden``.
    """
    chunk = stream.next_chunk(chunk_length)
    aux = {} if getattr(loss_fn, "needs_hidden", False) else None
    device_type = chunk.x.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp and device_type == "cuda"):
        logits = agent.observe(chunk, aux=aux)
    loss = loss_fn(logits.float(), chunk, aux)
    optimizer_step(agent.model, loss, optimizer, grad_clip)
    if scheduler is not None:
        scheduler.step()
    agent.detach()
    return loss.detach(), chunk


def optimizer_step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer, grad_clip: float) -> None:
    """Backpropagate ``loss`` and take one optimiser step, the gradient norm clipped at ``grad_clip`` (0: no clip).

    The one update rule of training and of the prequential protocol (:mod:`nrstream.lab.prequential`).
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def steps_per_epoch(config: Config, dataset: Dataset, protocol: str | Protocol) -> int:
    """Steps that read ``samples_per_lane`` samples per lane (on average)."""
    t = config.train
    bank = dataset.splits["train"]
    samples = t.samples_per_lane or math.ceil(len(bank) / t.lanes)
    settings = get_protocol(protocol).stream_settings(config.data.stream)
    event = settings.mean_event_length(float(bank.lengths.float().mean()))
    return max(1, math.ceil(samples * event / t.chunk_length))


def validate(
    model: nn.Module, dataset: Dataset, config: Config, protocol: str | Protocol, device: torch.device
) -> float:
    """Decision-frame accuracy on the whole validation split, under the training protocol.

    A protocol that carries the state (never reset) is validated as it is evaluated: with
    ``train.validation_warmup = k > 0`` each lane first runs ``k`` unscored decisions, so the
    best checkpoint is picked on a warm state, not on the cold start after a zero state.
    """
    protocol = get_protocol(protocol)
    lanes = min(config.train.validation_lanes, len(dataset.splits["validation"]))
    stream = make_stream(
        dataset,
        "validation",
        protocol.stream_settings(config.data.stream),
        num_lanes=lanes,
        seed=derive_seed(config.run.seed, "validation"),
        device=device,
    )
    per_lane = math.ceil(len(dataset.splits["validation"]) / lanes)
    chunk = config.evaluate.chunk_length
    warmup = config.train.validation_warmup if protocol.carries_state else 0
    result = decision_accuracy(model, stream, protocol.train_reset, per_lane, chunk, what="validation", warmup=warmup)
    return result.accuracy


# ---------------------------------------------------------------------------- a training run


@dataclass
class TrainResult:
    """A trained agent: the model (weights as ``evaluate.checkpoint`` selects), its folder, history."""

    model: nn.Module
    folder: Path
    protocol: str
    history: list = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False
    steps: int = 0


@dataclass
class _Run:
    """Everything one training run holds; :meth:`checkpoint` is what ``last.pt`` saves of it."""

    config: Config
    agent_config: AgentConfig
    dataset: Dataset
    device: torch.device
    folder: Path
    protocol: Protocol
    loss_fn: Callable
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stream: Stream
    agent: Agent
    per_epoch: int
    total: int
    step: int = 0
    history: list = field(default_factory=list)
    best: float = -1.0
    seconds: float = 0.0
    epoch_loss: list = field(default_factory=lambda: [0.0, 0])
    stopped: bool = False  # early stopping (train.patience) ended the run before run.total

    @property
    def label(self) -> str:
        return self.agent_config.label

    @property
    def last_path(self) -> Path:
        return self.folder / "last.pt"

    def checkpoint(self, finished: bool) -> TrainingCheckpoint:
        return TrainingCheckpoint(
            key=self.folder.name,
            arch=self.agent_config.arch,
            loss=self.agent_config.loss,
            protocol=self.protocol.name,
            step=self.step,
            total_steps=self.total,
            finished=finished,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            stream=self.stream.state_dict(),
            agent_state=map_state(lambda s: s.detach().cpu(), self.agent.state),
            rng=rng_state(self.device),
            history=self.history,
            best=self.best,
            seconds=self.seconds,
            epoch_loss=self.epoch_loss,
        )


def _setup(config: Config, agent_config: AgentConfig, loaded: LoadedData, device: torch.device) -> _Run:
    """Loss, protocol, model, optimiser, scheduler, stream and agent, seeded from ``run.seed``."""
    dataset, t, seed = loaded.dataset, config.train, config.run.seed
    loss_fn = get_registry().create("loss", agent_config.loss, **agent_config.loss_options)
    protocol = protocol_of(loss_fn, agent_config.loss)
    model = build_model(agent_config, dataset, seed).to(device)
    per_epoch = steps_per_epoch(config, dataset, protocol)
    total = t.steps or t.epochs * per_epoch
    optimizer = make_optimizer(model, t)
    scheduler = make_scheduler(optimizer, t.schedule, total)
    settings = protocol.stream_settings(config.data.stream)
    stream = make_stream(dataset, "train", settings, num_lanes=t.lanes, seed=derive_seed(seed, "train"), device=device)
    agent = Agent(model, protocol.train_reset)
    agent.reset(t.lanes, device)
    torch.manual_seed(derive_seed(seed, "train", agent_config.label))
    folder = checkpoint_path(config, agent_config, loaded)
    return _Run(config, agent_config, dataset, device, folder, protocol, loss_fn, model, optimizer, scheduler,
                stream, agent, per_epoch, total)  # fmt: skip


def _resume(run: _Run, log: Callable[[str], None]) -> TrainingCheckpoint | None:
    """Restore ``run`` from ``last.pt`` if there is one (after removing temporary files a kill left)."""
    for stale in run.folder.glob(".*.tmp"):  # left by a run killed while saving
        stale.unlink(missing_ok=True)
    if not run.last_path.exists():
        return None
    ckpt = TrainingCheckpoint.load(run.last_path, key=run.folder.name)
    run.model.load_state_dict(ckpt.model)
    if ckpt.finished:
        return ckpt
    run.optimizer.load_state_dict(ckpt.optimizer)
    run.scheduler.load_state_dict(ckpt.scheduler)
    run.stream.load_state_dict(ckpt.stream)
    run.agent.state = map_state(lambda s: s.to(run.device), ckpt.agent_state)
    set_rng_state(ckpt.rng, run.device)
    run.step, run.history, run.best, run.seconds = ckpt.step, list(ckpt.history), ckpt.best, ckpt.seconds
    run.epoch_loss = list(ckpt.epoch_loss)
    log(f"nrstream: resuming {run.label} from step {run.step}/{run.total} ({run.last_path})")
    return ckpt


def _end_epoch(run: _Run, log: Callable[[str], None]) -> None:
    """Validation, ``best.pt``, one history record and log line, then ``last.pt``."""
    epoch = math.ceil(run.step / run.per_epoch)
    record = {"epoch": epoch, "step": run.step, "loss": run.epoch_loss[0] / max(1, run.epoch_loss[1])}
    run.epoch_loss = [0.0, 0]
    if run.config.train.validate:
        try:
            record["val_accuracy"] = validate(run.model, run.dataset, run.config, run.protocol, run.device)
        except NonFiniteError as exc:
            raise NonFiniteError(f"{run.label}: after step {run.step}, {exc}") from None
    score = record.get("val_accuracy", float(epoch))
    if score > run.best:
        run.best = score
        BestCheckpoint(run.folder.name, run.model.state_dict(), epoch, score).save(run.folder / "best.pt")
    run.history.append(record)
    run.stopped = run.step < run.total and _stalled(run.history, run.config.train)
    if run.stopped:
        record["stopped_early"] = True
    val = f", validation accuracy {record['val_accuracy']:.4f}" if "val_accuracy" in record else ""
    log(f"nrstream: {run.label} epoch {epoch}: loss {record['loss']:.4f}{val}")
    if run.stopped:
        log(
            f"nrstream: {run.label} stopped early after epoch {epoch}: the last {run.config.train.patience} epochs "
            f"did not raise the best validation accuracy ({run.best:.4f}) by more than {run.config.train.min_delta}"
        )
    run.checkpoint(finished=run.step == run.total or run.stopped).save(run.last_path)


def _stalled(history: list[dict], train: TrainConfig) -> bool:
    """Early stopping: ``train.patience`` epochs in a row without a validation gain above ``min_delta``.

    Never before epoch ``train.min_epochs``.
    """
    scores = [record["val_accuracy"] for record in history if "val_accuracy" in record]
    if not train.patience or len(scores) <= train.patience or len(history) < train.min_epochs:
        return False
    return max(scores[-train.patience :]) <= max(scores[: -train.patience]) + train.min_delta


def _check_finite(run: _Run, value: float) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(
            f"{run.label}: the loss became {value} at step {run.step}; likely causes: non-finite values in the "
            f"data, a too large data.stream.noise_scale ({run.config.data.stream.noise_scale}), or a too high "
            f"train.lr ({run.config.train.lr})"
        )


def _finish(run: _Run, ckpt: TrainingCheckpoint, reused: bool) -> TrainResult:
    """The model with the weights ``evaluate.checkpoint`` selects, in eval mode."""
    best_path = run.folder / "best.pt"
    if run.config.evaluate.checkpoint == "best" and best_path.exists():
        run.model.load_state_dict(BestCheckpoint.load(best_path).model)
    else:
        run.model.load_state_dict(ckpt.model)
    run.model.eval()
    return TrainResult(run.model, run.folder, run.protocol.name, list(ckpt.history), float(ckpt.seconds), reused,
                       ckpt.step)  # fmt: skip


def train_agent(
    config: Config,
    agent_config: AgentConfig,
    loaded: LoadedData,
    device: torch.device,
    *,
    on_step: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train one agent, resuming from (or reusing) its checkpoint folder; seeded by ``run.seed``.

    Args:
        on_step: called with the step count after every optimiser step (tests use it to
            interrupt a run).
        log: receives one line per epoch (validation accuracy); default the ``nrstream.lab.engine`` logger.

    With ``run.tensorboard`` the curves also go to TensorBoard (:mod:`nrstream.lab.tracking`).
    """
    log = log or _stderr
    folder = checkpoint_path(config, agent_config, loaded)
    # one process trains a checkpoint folder at a time; a second one waits, then resumes or reuses it
    with run_folder_lock(folder, "checkpoint folder", wait=True, notify=log):
        return _train_agent(config, agent_config, loaded, device, on_step, log)


def _train_agent(config, agent_config, loaded, device, on_step, log) -> TrainResult:
    t = config.train
    run = _setup(config, agent_config, loaded, device)
    ckpt = _resume(run, log)
    if ckpt is not None and ckpt.finished:
        return _finish(run, ckpt, reused=True)
    tracker = open_tracker(config, run.label, run.step)  # issue 15 (J): curves; draws no random numbers
    bar = _progress(t.progress, run.total, run.step, run.label)
    run.model.train()
    began, frames = time.perf_counter(), 0
    try:
        while run.step < run.total and not run.stopped:
            if run.protocol.carries_state and t.reset_state_every and run.step % t.reset_state_every == 0:
                run.agent.reset(t.lanes, device)  # bounded training streams (train.reset_state_every)
            loss, chunk = train_step(run.agent, run.stream, run.loss_fn, run.optimizer, run.scheduler,
                                     chunk_length=t.chunk_length, grad_clip=t.grad_clip, amp=t.amp)  # fmt: skip
            run.step, value = run.step + 1, float(loss)
            _record_step(run, tracker, value)
            frames += chunk.x.shape[0] * chunk.x.shape[1]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}", fps=f"{frames / (time.perf_counter() - began):.0f}", refresh=False)
            if run.step % run.per_epoch == 0 or run.step == run.total:
                run.seconds += time.perf_counter() - began
                began, frames = time.perf_counter(), 0
                _end_epoch(run, log)
                _track_epoch(tracker, run.history[-1])
            elif t.checkpoint_every and run.step % t.checkpoint_every == 0:
                run.seconds += time.perf_counter() - began
                began = time.perf_counter()
                run.checkpoint(finished=False).save(run.last_path)
            if on_step is not None:
                on_step(run.step)
    except KeyboardInterrupt:
        saved = load_checkpoint(run.last_path)["step"] if run.last_path.exists() else 0
        log(f"nrstream: {run.label} interrupted at step {run.step}; run the same command again to resume "
            f"from step {saved} ({run.folder})")  # fmt: skip
        raise
    finally:
        if bar is not None:
            bar.close()
        tracker.close()
    return _finish(run, TrainingCheckpoint.load(run.last_path), reused=False)


# ---- issue 15 (J): tracking (nrstream.lab.tracking); the x axis is the optimiser step
def _record_step(run: _Run, tracker: Tracker, loss: float) -> None:
    """After a step: refuse a non-finite loss, add it to the epoch's mean, send it to the tracker."""
    _check_finite(run, loss)
    run.epoch_loss[0] += loss
    run.epoch_loss[1] += 1
    tracker.log_scalar("train/loss", loss, run.step)
    tracker.log_scalar("train/lr", run.optimizer.param_groups[0]["lr"], run.step)


def _track_epoch(tracker: Tracker, record: dict) -> None:
    tracker.log_scalar("epoch/loss", record["loss"], record["step"])
    if "val_accuracy" in record:
        tracker.log_scalar("val/accuracy", record["val_accuracy"], record["step"])


# ---- end issue 15 (J)


def _progress(enabled: bool, total: int, initial: int, label: str):
    if not enabled:
        return None
    from nrstream.log import progress_bar

    # no bar when stderr is not a terminal (logs, CI, tests)
    return progress_bar(total=total, initial=initial, desc=label, unit="step", dynamic_ncols=True)
