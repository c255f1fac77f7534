"""An agent: a recurrent model plus the state it carries along an endless stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import numpy as np
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

    It takes the vector env's tensors (``[B, T, F]``, or ``[B, F]`` from a ``-v1`` id: one
    frame per lane) and the single env's numpy observations (``(F,)`` from a ``-v1`` id,
    ``(T, F)`` from ``-v0`` or ``frames_per_step > 1``: one lane), which are moved to the
    model's device; :meth:`act` then answers in the env's action shape.

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

    def _batch(self, x: torch.Tensor | np.ndarray, start: torch.Tensor | np.ndarray | None):
        """``(x [B, T, F], start [B, T] | None)`` from any observation layout the class docstring lists."""
        if isinstance(x, np.ndarray):  # the single env: one lane, (F,) or (T, F)
            if x.ndim not in (1, 2):
                raise ValueError(f"a numpy observation must be (F,) or (T, F) (the single env's), got {x.shape}")
            param = next(self.model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
            frames = torch.as_tensor(x, dtype=dtype, device=device).reshape(1, -1, x.shape[-1])
            starts = None if start is None else torch.as_tensor(np.asarray(start), device=device).reshape(1, -1)
            return frames, starts
        if x.dim() == 2:  # the vector env with one frame per step: [B, F]
            return x[:, None], None if start is None else torch.as_tensor(start, device=x.device)[:, None]
        return x, None if start is None else torch.as_tensor(start, device=x.device)

    def __call__(
        self, x: torch.Tensor | np.ndarray, start: torch.Tensor | np.ndarray | None = None, aux: dict | None = None
    ) -> torch.Tensor:
        """Feed ``x [B, T, F]`` (or a layout the class docstring lists); returns ``logits [B, T, C]``
        and keeps the new state.

        ``start [B, T]`` (bool) marks sample starts; only the ``oracle`` policy reads it.
        """
        x, start = self._batch(x, start)
        if self.state is None or self._batch_size != x.shape[0]:
            self.reset(x.shape[0], x.device)
        reset = start if self.reset_policy == "oracle" else None
        logits, self.state = self.model(x, self.state, reset=reset, aux=aux)
        return logits

    def observe(self, chunk, aux: dict | None = None) -> torch.Tensor:
        """Feed a :class:`~nrstream.stream.stream.Chunk` (its features and sample starts only)."""
        return self(chunk.x, chunk.start, aux=aux)

    @overload
    def act(self, x: np.ndarray, start: np.ndarray | None = None) -> np.ndarray: ...
    @overload
    def act(self, x: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor: ...

    @torch.no_grad()
    def act(
        self, x: torch.Tensor | np.ndarray, start: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor | np.ndarray:
        """The predicted class for every frame, int64, in the observation's layout.

        ``[B, T]`` for ``x [B, T, F]``, ``[B]`` for ``[B, F]``; for the single env's numpy
        ``(F,)`` a numpy array of shape ``()``, for ``(T, F)`` shape ``(T,)``: what its
        ``step`` takes.
        """
        classes = self(x, start).argmax(-1)  # [B, T]
        if isinstance(x, np.ndarray):
            return classes.cpu().numpy().reshape(x.shape[:-1])
        return classes[:, 0] if x.dim() == 2 else classes

    def detach(self) -> None:
        """Keep the state's values but stop gradients flowing into earlier chunks."""
        self.state = detach_state(self.state)
