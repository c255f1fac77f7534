"""Argument and action checks shared by the single and the vector env.

Gymnasium's ``action_space.contains`` says yes or no; these say what is wrong, in one line, and cost one
``aminmax`` reduction per step (``benchmarks/env_action_check.py`` measures them against a vector step).
A wrong action is a ``ValueError`` (shape, range) or ``TypeError`` (dtype), never a torch broadcast error,
a silent truncation of a float or a class index out of range that scores as "wrong".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nrstream.plugin.registry import did_you_mean
from nrstream.stream.bank import Dataset

__all__ = ["check_actions", "check_split", "check_count"]


def check_split(dataset: Dataset, split: str) -> str:
    """``split`` if the data set has it; else a ``ValueError`` naming the splits (with a suggestion)."""
    if not isinstance(split, str) or split not in dataset.splits:
        known = list(dataset.splits)
        hint = did_you_mean(str(split), known, "split") if isinstance(split, str) else ""
        raise ValueError(f"split must be one of {', '.join(known)}, got {split!r}{hint}")
    return split


def check_count(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """A positive int argument (``num_envs``, ``max_episode_steps``); bools and floats are refused."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_actions(
    actions: Any, shape: tuple[int, ...], num_classes: int, device: torch.device | str = "cpu", who: str = "step"
) -> torch.Tensor:
    """``actions`` as int64 class indices of ``shape`` on ``device``, or a one-line error.

    Accepted: integer torch tensors, numpy arrays or scalars, Python ints and lists of them,
    of exactly ``shape`` (one frame per step: a trailing frame axis of 1 may be left out or
    given). Refused: floats and bools (a ``TypeError``: a float would be truncated), any
    other shape (no broadcasting of one action over lanes or frames), and classes outside
    ``[0, num_classes)``.
    """
    if isinstance(actions, torch.Tensor):
        tensor = actions
    elif isinstance(actions, bool | float | complex):
        raise TypeError(f"{who}: actions must be integer class indices, got {type(actions).__name__} {actions!r}")
    else:
        try:
            tensor = torch.as_tensor(np.asarray(actions))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{who}: actions must be integer class indices, got {type(actions).__name__}") from exc
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(
            f"{who}: actions must be integer class indices, got dtype {tensor.dtype} "
            "(convert with .long() or .astype(np.int64); a float would be truncated)"
        )
    got = tuple(tensor.shape)
    if got != shape:
        loose = (shape[-1:] == (1,) and got == shape[:-1]) or (shape[-1:] != (1,) and got == (*shape, 1))
        if not (loose and tensor.numel() == int(np.prod(shape))):
            raise ValueError(f"{who}: actions must have shape {shape} (the action space's), got shape {got}")
        tensor = tensor.reshape(shape)
    if tensor.numel():
        low, high = torch.aminmax(tensor)
        low, high = int(low), int(high)
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"{who}: actions must be classes in [0, {num_classes}), got {bad}")
    return tensor.to(device=device, dtype=torch.long)
