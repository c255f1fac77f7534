"""Built-in losses: ``reset``, ``ce``, ``ce_kl`` (the paper's adaptive loss), ``ce_kl_state``.

See :mod:`nrstream_plugins.losses._losses` for each loss's options and
:mod:`nrstream_plugins.losses.functional` for the shared per-frame maths.
"""

from __future__ import annotations

from nrstream import hookimpl
from nrstream_plugins.losses._losses import AdaptiveLoss, CrossEntropyLoss, ResetLoss, StateKLLoss

__all__ = ["ResetLoss", "CrossEntropyLoss", "AdaptiveLoss", "StateKLLoss"]


@hookimpl
def nrstream_register_losses(register):
    register("reset", ResetLoss)
    register("ce", CrossEntropyLoss)
    register("ce_kl", AdaptiveLoss)
    register("ce_kl_state", StateKLLoss)
