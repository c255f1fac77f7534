"""The training engine: one agent (architecture + loss) trained on the train-split stream.

Protocols (the loss's ``protocol`` attribute picks one):

* ``segmented`` — clean samples back to back (gap 0), the state reset by an oracle at
  every sample start: the classic baseline.
* ``continual`` — the configured stream with noise gaps, the state carried across
  samples, noise and chunk boundaries; truncated backprop through time: the state is
  detached between chunks, so gradients span one chunk of ``train.chunk_length`` frames.
  ``train.reset_state_every = k > 0`` restarts every lane from the initial state every
  ``k`` steps, to study how the length of the training streams matters.

An epoch is ``train.samples_per_lane`` samples per lane (default: one pass over the
train split), converted to a fixed number of steps of ``lanes x chunk_length`` frames.
After each epoch the validation split is scored at decision frames under the same
protocol; the best weights go to ``best.pt``.

Checkpoints (``last.pt`` after each epoch, or every ``train.checkpoint_every`` steps)
hold only tensors and plain containers — weights, optimiser and scheduler state, the
stream's position, the carried recurrent state, RNG states — so they load with
``torch.load(weights_only=True)``. They are written atomically. A run that was
interrupted resumes from its last checkpoint and, on the CPU, ends with bitwise the
same weights as a run that never stopped.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nrstream.agent import Agent, map_state
from nrstream.atomic import atomic_file
from nrstream.bank import Dataset
from nrstream.config import AgentConfig, Config, agent_key
from nrstream.datasets import load_dataset, make_stream
from nrstream.errors import ConfigError, DataNotFoundError, NrstreamError
from nrstream.evaluation import decision_accuracy, derive_seed
from nrstream.plugins import get_registry

__all__ = [
    "resolve_device",
    "LoadedData",
    "load_data",
    "build_model",
    "TrainResult",
    "train_agent",
    "checkpoint_path",
    "save_atomic",
    "load_checkpoint",
]

CHECKPOINT_FORMAT = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NrstreamError("run.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


# ---------------------------------------------------------------------------- data


@dataclass
class LoadedData:
    """The data set that served, and where it came from (for ``results.json``)."""

    dataset: Dataset
    source: str
    options: dict
    fallback_used: bool = False
    reason: str = ""

    def describe(self) -> dict:
        info = dict(self.dataset.info)
        info.update(
            source=self.source,
            options=self.options,
            fallback_used=self.fallback_used,
            sizes=self.dataset.sizes(),
            num_classes=self.dataset.num_classes,
            feature_size=self.dataset.feature_size,
            noise_recordings={k: len(v) for k, v in self.dataset.noise.items()},
        )
        if self.fallback_used:
            info["fallback_reason"] = self.reason
        return info


def load_data(config: Config, notify: Callable[[str], None] | None = None) -> LoadedData:
    """Load ``data.source``; when it finds no data, ``data.fallback`` (with a notice)."""
    data = config.data
    try:
        loaded = LoadedData(load_dataset(data.source, **data.options), data.source, dict(data.options))
    except DataNotFoundError as exc:
        if data.fallback == "none":
            raise
        (notify or _stderr)(
            f"nrstream: notice: data source {data.source!r} found no data; using fallback {data.fallback!r} "
            f"({str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        )
        dataset = load_dataset(data.fallback, **data.fallback_options)
        loaded = LoadedData(dataset, data.fallback, dict(data.fallback_options), True, str(exc))
    if data.stream.noise == "recorded" and data.stream.gap_max > 0 and not loaded.dataset.noise:
        raise ConfigError(
            f"{config.path}: data.stream.noise: 'recorded' needs noise recordings, and data source "
            f"{loaded.source!r} provides none; use 'gaussian' or 'silence'"
        )
    return loaded


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------------------- checkpoints


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` into a temporary file beside ``path``, then rename it into place."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint_path(config: Config, agent: AgentConfig, loaded: LoadedData) -> Path:
    """``<checkpoint_dir>/<arch>-<loss>-<hash>``: one folder per distinct training setup."""
    key = agent_key(config, agent, {"source": loaded.source, "options": loaded.options})
    return config.checkpoint_dir / f"{agent.arch}-{agent.loss}-{key}"


def _cpu(state):
    return map_state(lambda t: t.detach().cpu(), state)


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------------------- training


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


@dataclass
class TrainResult:
    model: nn.Module
    folder: Path
    protocol: str
    history: list = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False
    steps: int = 0


def _protocol_settings(config: Config, protocol: str) -> tuple[dict, str]:
    """A protocol's stream options (keyword arguments of ``make_stream``) and reset policy."""
    if protocol == "segmented":
        return {"gap_min": 0, "gap_max": 0}, "oracle"
    if protocol == "continual":
        s = config.data.stream
        return {"gap_min": s.gap_min, "gap_max": s.gap_max, "noise": s.noise, "noise_scale": s.noise_scale}, "never"
    raise NrstreamError(f"loss protocol must be 'segmented' or 'continual', got {protocol!r}")


def steps_per_epoch(config: Config, dataset: Dataset, protocol: str) -> int:
    """Steps that read ``samples_per_lane`` samples per lane (on average)."""
    t = config.train
    bank = dataset.splits["train"]
    samples = t.samples_per_lane or math.ceil(len(bank) / t.lanes)
    stream_options, _ = _protocol_settings(config, protocol)
    event = float(bank.lengths.float().mean()) + (stream_options["gap_min"] + stream_options["gap_max"]) / 2
    return max(1, math.ceil(samples * event / t.chunk_length))


def _scheduler(optimizer: torch.optim.Optimizer, kind: str, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def validate(model: nn.Module, dataset: Dataset, config: Config, protocol: str, device: torch.device) -> float:
    """Decision-frame accuracy on the whole validation split, under the training protocol."""
    stream_options, reset = _protocol_settings(config, protocol)
    lanes = min(config.train.validation_lanes, len(dataset.splits["validation"]))
    stream = make_stream(
        dataset,
        "validation",
        num_lanes=lanes,
        seed=derive_seed(config.run.seed, "validation"),
        device=device,
        **stream_options,
    )
    per_lane = math.ceil(len(dataset.splits["validation"]) / lanes)
    return decision_accuracy(model, stream, reset, per_lane, config.evaluate.chunk_length).accuracy


def train_agent(
    config: Config,
    agent_config: AgentConfig,
    loaded: LoadedData,
    device: torch.device,
    *,
    on_step: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train one agent, resuming from (or reusing) its checkpoint folder.

    Args:
        on_step: called with the step count after every optimiser step (tests use it to
            interrupt a run).
        log: receives one line per epoch (validation accuracy); default stderr.

    Returns the model holding the weights that ``evaluate.checkpoint`` selects.
    """
    log = log or _stderr
    dataset, t = loaded.dataset, config.train
    folder = checkpoint_path(config, agent_config, loaded)
    last_path, best_path = folder / "last.pt", folder / "best.pt"
    key = folder.name
    loss_fn = get_registry().create("loss", agent_config.loss, **agent_config.loss_options)
    protocol = getattr(loss_fn, "protocol", None)
    if protocol not in ("segmented", "continual"):
        raise NrstreamError(
            f"loss {agent_config.loss!r} has protocol {protocol!r}; expected 'segmented' or 'continual'"
        )
    stream_options, reset = _protocol_settings(config, protocol)
    model = build_model(agent_config, dataset, config.run.seed).to(device)

    per_epoch = steps_per_epoch(config, dataset, protocol)
    total = t.steps or t.epochs * per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = _scheduler(optimizer, t.schedule, total)
    stream = make_stream(
        dataset,
        "train",
        num_lanes=t.lanes,
        seed=derive_seed(config.run.seed, "train"),
        device=device,
        **stream_options,
    )
    agent = Agent(model, reset)
    agent.reset(t.lanes, device)
    torch.manual_seed(derive_seed(config.run.seed, "train", agent_config.label))
    step, history, best, seconds = 0, [], -1.0, 0.0
    epoch_loss = [0.0, 0]

    for stale in folder.glob(".*.tmp"):  # left by a run killed while saving
        stale.unlink(missing_ok=True)
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("key") != key:
            raise NrstreamError(f"{last_path} was written by another nrstream version or config; delete the folder")
        model.load_state_dict(ckpt["model"])
        if ckpt["finished"]:
            return _finish(model, config, folder, protocol, ckpt, reused=True)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        stream.load_state_dict(ckpt["stream"])
        agent.state = map_state(lambda s: s.to(device), ckpt["agent_state"])
        _set_rng_state(ckpt["rng"], device)
        step, history, best, seconds = ckpt["step"], list(ckpt["history"]), ckpt["best"], ckpt["seconds"]
        epoch_loss = list(ckpt["epoch_loss"])
        log(f"nrstream: resuming {agent_config.label} from step {step}/{total} ({last_path})")

    def save(finished: bool) -> None:
        save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "key": key,
                "arch": agent_config.arch,
                "loss": agent_config.loss,
                "protocol": protocol,
                "step": step,
                "total_steps": total,
                "finished": finished,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "stream": stream.state_dict(),
                "agent_state": _cpu(agent.state),
                "rng": _rng_state(device),
                "history": history,
                "best": best,
                "seconds": seconds,
                "epoch_loss": epoch_loss,
            },
            last_path,
        )

    use_amp = t.amp and device.type == "cuda"
    needs_hidden = bool(getattr(loss_fn, "needs_hidden", False))
    bar = _progress(t.progress, total, step, agent_config.label)
    model.train()
    began, frames = time.perf_counter(), 0
    try:
        while step < total:
            if protocol == "continual" and t.reset_state_every and step % t.reset_state_every == 0:
                agent.reset(t.lanes, device)  # bounded training streams (train.reset_state_every)
            chunk = stream.next_chunk(t.chunk_length)
            aux = {} if needs_hidden else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = agent.observe(chunk, aux=aux)
            loss = loss_fn(logits.float(), chunk, aux)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            scheduler.step()
            agent.detach()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NrstreamError(f"{agent_config.label}: the loss became {value} at step {step}; lower train.lr")
            epoch_loss[0] += value
            epoch_loss[1] += 1
            frames += chunk.x.shape[0] * chunk.x.shape[1]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}", fps=f"{frames / (time.perf_counter() - began):.0f}", refresh=False)
            if step % per_epoch == 0 or step == total:
                seconds += time.perf_counter() - began
                began, frames = time.perf_counter(), 0
                epoch = math.ceil(step / per_epoch)
                record = {"epoch": epoch, "step": step, "loss": epoch_loss[0] / max(1, epoch_loss[1])}
                epoch_loss = [0.0, 0]
                if t.validate:
                    record["val_accuracy"] = validate(model, dataset, config, protocol, device)
                score = record.get("val_accuracy", float(epoch))
                if score > best:
                    best = score
                    save_atomic({"key": key, "model": model.state_dict(), "epoch": epoch, "score": score}, best_path)
                history.append(record)
                val = f", validation accuracy {record['val_accuracy']:.4f}" if "val_accuracy" in record else ""
                log(f"nrstream: {agent_config.label} epoch {epoch}: loss {record['loss']:.4f}{val}")
                save(finished=step == total)
            elif t.checkpoint_every and step % t.checkpoint_every == 0:
                seconds += time.perf_counter() - began
                began = time.perf_counter()
                save(finished=False)
            if on_step is not None:
                on_step(step)
    except KeyboardInterrupt:
        saved = load_checkpoint(last_path)["step"] if last_path.exists() else 0
        log(
            f"nrstream: {agent_config.label} interrupted at step {step}; run the same command again to resume "
            f"from step {saved} ({folder})"
        )
        raise
    finally:
        if bar is not None:
            bar.close()
    return _finish(model, config, folder, protocol, load_checkpoint(last_path), reused=False)


def _finish(model: nn.Module, config: Config, folder: Path, protocol: str, ckpt: dict, reused: bool) -> TrainResult:
    best_path = folder / "best.pt"
    if config.evaluate.checkpoint == "best" and best_path.exists():
        model.load_state_dict(load_checkpoint(best_path)["model"])
    else:
        model.load_state_dict(ckpt["model"])
    model.eval()
    return TrainResult(model, folder, protocol, list(ckpt["history"]), float(ckpt["seconds"]), reused, ckpt["step"])


def _progress(enabled: bool, total: int, initial: int, label: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI, tests)
    return tqdm(total=total, initial=initial, desc=label, unit="step", disable=None, leave=False, dynamic_ncols=True)
