"""Classic recurrent networks ``rnn`` (tanh), ``gru`` and ``lstm`` on PyTorch's fused kernels.

One base class does the work; the three subclasses only name their ``torch.nn`` layer.
Resets inside a chunk split it at the frames where any lane resets, zero those lanes'
state there and run the fused kernel on each segment in between: a chunk with ``k``
reset columns costs ``k + 1`` kernel calls, never a Python loop over frames.

The exception is ``lstm`` with ``forget_gate: false`` (the LSTM without a forget gate,
for the saturation experiments): torch has no fused kernel for it, so
:class:`NoForgetLSTM` loops over frames, vectorised over lanes and units.
"""

from __future__ import annotations

import torch
from torch import nn

from nrstream import hookimpl
from nrstream.plugin.contracts import ArchitectureRegister

from ._common import Architecture, ArchitectureConfigError, fraction, positive_int, reset_columns, zero_lanes

__all__ = ["RecurrentClassifier", "RNNClassifier", "GRUClassifier", "LSTMClassifier", "NoForgetLSTM"]


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
        self.rnn = self._make_layers()
        self.drop = nn.Dropout(self.dropout)
        self.readout = nn.Linear(self.hidden_size, self.num_classes)

    def _make_layers(self) -> nn.Module:
        """The recurrent stack: called like ``torch.nn.RNN`` (batch first, states ``[layers, B, H]``)."""
        # torch only applies its dropout between layers and warns when there are none.
        return self.layer_class(
            self.input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
            batch_first=True,
            **self.layer_kwargs,
        )

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


class NoForgetLSTM(nn.Module):
    """LSTM layers without a forget gate, the original LSTM (Hochreiter & Schmidhuber 1997).

    One frame of one layer, with ``sigma`` the logistic function::

        i_t = sigma(W_i x_t + U_i h_{t-1} + b_i)      input gate
        g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)       candidate
        o_t = sigma(W_o x_t + U_o h_{t-1} + b_o)      output gate
        c_t = c_{t-1} + i_t * g_t                     no forget gate: the cell only accumulates
        h_t = o_t * tanh(c_t)

    On an endless input ``c_t`` grows without bound unless something resets it: the
    classic case Gers, Schmidhuber & Cummins (2000) added the forget gate for.

    Called like ``torch.nn.LSTM(batch_first=True)``: ``forward(x [B, T, F], (h0, c0))``
    with states ``[num_layers, B, H]`` returns ``(out [B, T, H], (h, c))``. Parameters are
    named like torch's (``weight_ih_l0`` ``[3H, F]``, ``weight_hh_l0`` ``[3H, H]``,
    ``bias_ih_l0``, ``bias_hh_l0``, gates in the order ``i, g, o``) and initialised the
    same way, uniform in ``±1/sqrt(H)``.

    Speed: torch has no fused kernel for this cell, so each layer loops over the ``T``
    frames in Python (the input projections of the whole chunk are one matmul before the
    loop; the loop does the recurrent matmul and the gates, vectorised over lanes and
    units). On the 2-core CPU (one thread, load ~11; B = 256, T = 100, F = 28, H = 128,
    medians of 5 timed calls) it reads 33.6k frames/s forward against 47.2k for the
    fused ``lstm`` (1.4x slower) and trains at the same speed (14.6k vs 14.1k frames/s
    forward + backward). On a GPU, where the fused kernel is one launch per chunk and
    this loop several per frame, expect a larger gap (not measured here).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        bound = 1.0 / hidden_size**0.5
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            for kind, shape in (("weight_ih", (3 * hidden_size, width)), ("weight_hh", (3 * hidden_size, hidden_size))):
                self.register_parameter(f"{kind}_l{layer}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))
            for kind in ("bias_ih", "bias_hh"):
                self.register_parameter(
                    f"{kind}_l{layer}", nn.Parameter(torch.empty(3 * hidden_size).uniform_(-bound, bound))
                )

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B, T, F]``, states ``[num_layers, B, H]``, ``reset [B, T]`` -> ``(out [B, T, H], (h, c))``.

        Resets happen inside the frame loop (every layer's ``h`` and ``c`` of a reset lane
        are zeroed just before its frame), so the chunk is never split: the input
        projection of a frame is the same whether or not another lane resets.
        """
        h0, c0 = state
        cuts = set(reset_columns(reset))
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.training and self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout, training=True)
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            bias = getattr(self, f"bias_ih_l{layer}") + getattr(self, f"bias_hh_l{layer}")
            inputs = nn.functional.linear(x, w_ih, bias)  # [B, T, 3H], the whole chunk at once
            h, c, outputs = h0[layer], c0[layer], []
            # unbind, not inputs[:, t]: each indexed frame's backward would zero-fill all of [B, T, 3H]
            for t, frame in enumerate(inputs.unbind(1)):
                if t in cuts:
                    keep = (~reset[:, t, None]).to(h.dtype)
                    h, c = h * keep, c * keep
                i, g, o = (frame + nn.functional.linear(h, w_hh)).chunk(3, dim=-1)
                c = c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
            finals_h.append(h)
            finals_c.append(c)
        return x, (torch.stack(finals_h), torch.stack(finals_c))


class LSTMClassifier(RecurrentClassifier):
    """Long short-term memory; state is ``(h, c)``, each ``[B, num_layers, H]``.

    Args:
        forget_gate: ``true`` (default): the usual LSTM with a forget gate (Gers,
            Schmidhuber & Cummins 2000), torch's fused ``nn.LSTM``. ``false``: the LSTM
            without one, ``c_t = c_{t-1} + i_t * g_t`` (:class:`NoForgetLSTM`), whose cell
            grows without bound on a stream that is never reset; a per-frame loop (1.4x
            slower than the fused kernel forward on the CPU, see its docstring).
    """

    layer_class = nn.LSTM

    def __init__(
        self,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        forget_gate: bool = True,
    ) -> None:
        if not isinstance(forget_gate, bool):
            raise ArchitectureConfigError(f"forget_gate must be true or false, got {forget_gate!r}")
        self.forget_gate = forget_gate
        super().__init__(
            input_size=input_size,
            num_classes=num_classes,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )

    def _make_layers(self) -> nn.Module:
        if self.forget_gate:
            return super()._make_layers()
        return NoForgetLSTM(self.input_size, self.hidden_size, self.num_layers, self.dropout)

    def forward(self, x: torch.Tensor, state, reset: torch.Tensor | None = None, aux: dict | None = None):
        """Run ``x [B, T, F]`` from ``state``; return ``(logits [B, T, C], state)``.

        ``reset [B, T]`` bool zeroes a lane's state just before that frame.
        """
        if self.forget_gate:
            return super().forward(x, state, reset, aux)
        self._check(x, reset)
        hidden, torch_state = self.rnn(x, self._to_torch(state), reset)
        if aux is not None:
            aux["hidden"] = hidden
        return self.readout(self.drop(hidden)), self._from_torch(torch_state)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        h = super().initial_state(batch_size, device)
        return h, torch.zeros_like(h)


@hookimpl
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    register("rnn", RNNClassifier)
    register("gru", GRUClassifier)
    register("lstm", LSTMClassifier)
