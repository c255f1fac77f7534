"""The protocol table: what a loss's ``protocol`` means for training and evaluation.

A loss plugin names the protocol it needs (its ``protocol`` attribute). Everything that
depends on it — how the training and validation streams are laid out, which reset policy
the agent follows while training, which reset policies the trained agent is evaluated
under — is read from :data:`PROTOCOLS`, here and nowhere else:

==============  ==================================  ==============  =====================
protocol        training / validation stream        reset policy    evaluated under
==============  ==================================  ==============  =====================
``segmented``   clean samples back to back (gap 0)  ``oracle``      ``never``, ``oracle``
``continual``   the configured ``data.stream``      ``never``       ``never``
``prequential`` the configured ``data.stream``      the loss's      scored while learning
==============  ==================================  ==============  =====================

* ``segmented`` is the classic baseline: the state is reset by an oracle at every sample
  start, so the network only ever sees one sample at a time. Evaluated both without
  resets (what happens when the oracle is taken away) and with them.
* ``continual`` trains on endless streams with noise gaps, the state carried across
  samples, noise and chunk boundaries; ``train.reset_state_every = k > 0`` restarts every
  lane every ``k`` steps (it applies to protocols whose state is carried,
  :attr:`Protocol.carries_state`).

* ``prequential`` is not a loss's protocol but a way to run any agent (any architecture, any
  loss): on one endless, possibly non-stationary stream (``data.stream.schedule``) each chunk
  is first predicted and scored, then learnt from, forever, the state never reset (river's
  ``progressive_val_score`` for sequence models; :mod:`nrstream.lab.prequential`). The reset
  policy is the loss's own protocol's (``never``; the segmented ``reset`` loss keeps its
  oracle, the reference). The ``continual`` config section holds its optimiser and replay.

Test streams always follow the configured ``data.stream`` with ``evaluate.stream``'s
changes on top (:func:`evaluation_settings`), whatever the protocol: every agent is scored on
the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nrstream.errors import NrstreamError
from nrstream.stream.settings import StreamSettings

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "PREQUENTIAL",
    "prequential_reset",
    "get_protocol",
    "protocol_of",
    "configured_settings",
    "evaluation_settings",
]


@dataclass(frozen=True)
class Protocol:
    """One row of the protocol table.

    Attributes:
        name: the value of a loss's ``protocol`` attribute.
        configured_gaps: ``True``: training and validation streams use the configured
            ``data.stream``; ``False``: clean samples back to back (gap 0).
        train_reset: the agent's reset policy while training and validating.
        eval_resets: the reset policies the trained agent is evaluated under, in order.
    """

    name: str
    configured_gaps: bool
    train_reset: str
    eval_resets: tuple[str, ...]

    @property
    def carries_state(self) -> bool:
        """The state runs on across samples while training (``train.reset_state_every`` applies)."""
        return self.train_reset == "never"

    def stream_settings(self, configured: Any) -> StreamSettings:
        """The training / validation stream settings, from the configured ``data.stream``."""
        if self.configured_gaps:
            return configured_settings(configured)
        # back to back, but a scene keeps its background under the samples
        return configured_settings(configured).replace(gap_min=0, gap_max=0)


PROTOCOLS: dict[str, Protocol] = {
    "segmented": Protocol("segmented", configured_gaps=False, train_reset="oracle", eval_resets=("never", "oracle")),
    "continual": Protocol("continual", configured_gaps=True, train_reset="never", eval_resets=("never",)),
}

#: the prequential row: how any agent is run by :func:`nrstream.lab.prequential.run_prequential`
#: (not a loss's protocol, so not in :data:`PROTOCOLS`; its reset policy is the loss's, see
#: :func:`prequential_reset`); it is scored on the training stream itself, before learning
PREQUENTIAL = Protocol("prequential", configured_gaps=True, train_reset="never", eval_resets=())


def prequential_reset(loss_protocol: Protocol) -> str:
    """The reset policy of a prequential run of a loss with ``loss_protocol``: that protocol's training one."""
    return loss_protocol.train_reset


def get_protocol(name: Any, *, loss: str | None = None) -> Protocol:
    """The table row for ``name`` (a :class:`Protocol` passes through); a one-line error otherwise."""
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(p) for p in PROTOCOLS)
        who = f"loss {loss!r} has protocol {name!r}" if loss else f"unknown protocol {name!r}"
        raise NrstreamError(f"{who}; expected one of {known} (see nrstream.plugin.protocols)") from None


def protocol_of(loss_fn: object, loss: str) -> Protocol:
    """The protocol a loss object declares (its ``protocol`` attribute)."""
    return get_protocol(getattr(loss_fn, "protocol", None), loss=loss)


def configured_settings(configured: Any) -> StreamSettings:
    """The configured ``data.stream`` as :class:`StreamSettings` (it may already be one)."""
    if isinstance(configured, StreamSettings):
        return configured
    return StreamSettings(**{name: getattr(configured, name) for name in StreamSettings.field_names()})


def evaluation_settings(config: Any) -> StreamSettings:
    """The test streams' settings: ``data.stream`` with ``evaluate.stream``'s changes (a shift)."""
    return configured_settings(config.data.stream).replace(**config.evaluate.stream)
