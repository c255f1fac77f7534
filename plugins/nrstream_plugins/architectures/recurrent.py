"""Classic recurrent networks ``rnn`` (tanh), ``gru`` and ``lstm`` on PyTorch's fused kernels.

One base class does the work; the three subclasses only name their ``torch.nn`` layer.
Resets inside a chunk split it at the frames where any lane resets, zero those lanes'
state there and run the fused kernel on each segment in between: a chunk with ``k``
reset columns costs ``k + 1`` kernel calls, never a Python loop over frames.
"""

from __future__ import annotations

import torch
from torch import nn

from nrstream import hookimpl

from ._common import Architecture, fraction, positive_int, reset_columns, zero_lanes

__all__ = ["RecurrentClassifier", "RNNClassifier", "GRUClassifier", "LSTMClassifier"]


class RecurrentClassifier(Architecture):
    """A stack of fused recurrent layers and a linear readout per frame.

    Args:
        input_size: ``F``, features per frame.
        num_classes: ``C``, logits per frame.
        hidden_size: ``H``, units per layer.
        num_layers: stacked recurrent layers.
        dropout: drop probability between layers and before the readout (training only).

    State: ``h [B, num_layers, H]``; for the LSTM the tuple ``(h, c)`` of two such tensors.
    Zeros are the initial state, so a reset is "multiply the lane by zero".

    ``aux["hidden"]``: ``[B, T, H]``, the top layer's ``h`` after each frame.
    """

    layer_class: type[nn.RNNBase] = nn.RNN
    layer_kwargs: dict = {}

    def __init__(
        self,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size=input_size, num_classes=num_classes)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.dropout = fraction("dropout", dropout)
        # torch only applies its dropout between layers and warns when there are none.
        self.rnn = self.layer_class(
            input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
            batch_first=True,
            **self.layer_kwargs,
        )
        self.drop = nn.Dropout(self.dropout)
        self.readout = nn.Linear(self.hidden_size, self.num_classes)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        """Zeros, ``[batch_size, num_layers, H]`` (a pair of them for the LSTM)."""
        return torch.zeros(batch_size, self.num_layers, self.hidden_size, device=device, dtype=self._dtype)

    # The fused layers want [layers, B, H]; our states keep the batch first.
    @staticmethod
    def _to_torch(state):
        if isinstance(state, tuple):
            return tuple(s.transpose(0, 1).contiguous() for s in state)
        return state.transpose(0, 1).contiguous()

    @staticmethod
    def _from_torch(state):
        if isinstance(state, tuple):
            return tuple(s.transpose(0, 1) for s in state)
        return state.transpose(0, 1)

    def forward(self, x: torch.Tensor, state, reset: torch.Tensor | None = None, aux: dict | None = None):
        """Run ``x [B, T, F]`` from ``state``; return ``(logits [B, T, C], state)``.

        ``reset [B, T]`` bool zeroes a lane's state just before that frame.
        """
        self._check(x, reset)
        cuts = reset_columns(reset)
        bounds = sorted({0, *cuts, x.shape[1]})
        torch_state = self._to_torch(state)
        outputs = []
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            if reset is not None and begin in cuts:
                # States are [layers, B, H] here, so move the batch first to reuse zero_lanes.
                torch_state = self._to_torch(zero_lanes(self._from_torch(torch_state), ~reset[:, begin]))
            out, torch_state = self.rnn(x[:, begin:end], torch_state)
            outputs.append(out)
        hidden = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
        if aux is not None:
            aux["hidden"] = hidden
        return self.readout(self.drop(hidden)), self._from_torch(torch_state)


class RNNClassifier(RecurrentClassifier):
    """Elman network, ``h_t = tanh(W x_t + U h_{t-1} + b)``."""

    layer_class = nn.RNN
    layer_kwargs = {"nonlinearity": "tanh"}


class GRUClassifier(RecurrentClassifier):
    """Gated recurrent unit (Cho et al. 2014)."""

    layer_class = nn.GRU


class LSTMClassifier(RecurrentClassifier):
    """Long short-term memory; state is ``(h, c)``, each ``[B, num_layers, H]``."""

    layer_class = nn.LSTM

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        h = super().initial_state(batch_size, device)
        return h, torch.zeros_like(h)


@hookimpl
def nrstream_register_architectures(register):
    register("rnn", RNNClassifier)
    register("gru", GRUClassifier)
    register("lstm", LSTMClassifier)
