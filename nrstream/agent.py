"""An agent: a recurrent model plus the state it carries along an endless stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["Agent", "RESET_POLICIES", "map_state", "detach_state"]

RESET_POLICIES = ("never", "oracle")

State = Any  # a tensor or a (nested) tuple of tensors, batch first


def map_state(fn: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    """Apply ``fn`` to every tensor of a (nested tuple) state."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    if state is None:
        return None
    raise TypeError(f"a recurrent state must be a tensor or a tuple of tensors, got {type(state).__name__}")


def detach_state(state: State) -> State:
    """Cut the autograd graph (truncated backprop through time keeps values, drops history)."""
    return map_state(torch.Tensor.detach, state)


class Agent:
    """Runs a model over consecutive chunks, carrying its state from one to the next.

    The agent never sees labels. With ``reset_policy="never"`` (the point of nrstream) the
    state runs on through samples and noise forever; with ``"oracle"`` it is reset at
    every sample start, which needs an oracle that knows where samples begin (the
    classic baseline).

    Args:
        model: an architecture (see :func:`nrstream.plugin.hookspecs.nrstream_register_architectures`).
        reset_policy: ``never`` or ``oracle``.
    """

    def __init__(self, model: nn.Module, reset_policy: str = "never") -> None:
        if reset_policy not in RESET_POLICIES:
            raise ValueError(f"reset_policy must be one of {RESET_POLICIES}, got {reset_policy!r}")
        self.model = model
        self.reset_policy = reset_policy
        self.state: State = None
        self._batch_size: int | None = None

    def __repr__(self) -> str:
        return f"Agent({type(self.model).__name__}, reset_policy={self.reset_policy!r})"

    def reset(self, batch_size: int, device: torch.device | str | None = None) -> None:
        """Start every lane from the model's initial state."""
        if device is None:
            device = next(self.model.parameters()).device
        self.state = self.model.initial_state(batch_size, torch.device(device))
        self._batch_size = batch_size

    def __call__(self, x: torch.Tensor, start: torch.Tensor | None = None, aux: dict | None = None) -> torch.Tensor:
        """Feed ``x [B, T, F]``; returns ``logits [B, T, C]`` and keeps the new state.

        ``start [B, T]`` (bool) marks sample starts; only the ``oracle`` policy reads it.
        """
        if self.state is None or self._batch_size != x.shape[0]:
            self.reset(x.shape[0], x.device)
        reset = start if self.reset_policy == "oracle" else None
        logits, self.state = self.model(x, self.state, reset=reset, aux=aux)
        return logits

    def observe(self, chunk, aux: dict | None = None) -> torch.Tensor:
        """Feed a :class:`~nrstream.stream.stream.Chunk` (its features and sample starts only)."""
        return self(chunk.x, chunk.start, aux=aux)

    @torch.no_grad()
    def act(self, x: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted class for every frame, ``[B, T]`` int64."""
        return self(x, start).argmax(-1)

    def detach(self) -> None:
        """Keep the state's values but stop gradients flowing into earlier chunks."""
        self.state = detach_state(self.state)
