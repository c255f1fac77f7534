"""``mingru`` and ``minlstm``: the minimal gated RNNs of Feng et al. 2024 ("Were RNNs All We Needed?").

Their gates read the input frame only, never ``h_{t-1}``, so each layer is the linear
recurrence ``h_t = a_t * h_{t-1} + b_t`` with ``a`` and ``b`` computed for a whole chunk at
once. The paper trains it in log space (one ``cumsum`` and one ``logcumsumexp`` per block of
``chunk_size`` frames, :func:`~nrstream_plugins.architectures._common.chunked_scan`), which
``scan: auto`` uses on accelerators; on the CPU ``auto`` runs the stepwise ``a * h + b``
frame by frame, measured 3-4x faster there (``logcumsumexp`` is slow on the CPU; see
``benchmarks/architectures.py``, ``mingru_log``). A single frame (streaming inference,
export) is always the stepwise form. All give the same numbers within float rounding.

A reset is exact: ``a_t = 0`` at a reset frame, so the lane restarts from zero; the lanes
with a reset in a block take their frames from the reset on from an exact parallel scan,
and every other lane is untouched (bit-identical to a run without the reset).

``g(x) = x + 1/2`` for ``x >= 0`` and ``sigmoid(x)`` below keeps the candidate positive (the
paper's choice, which the log-space scan needs), so states started from zero stay positive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nrstream import hookimpl
from nrstream.plugin.contracts import ArchitectureRegister

from ._common import Architecture, ArchitectureConfigError, chunked_scan, fraction, linear_scan, positive_int

__all__ = ["MinimalRNN", "MinGRU", "MinLSTM", "MINIMAL_SCANS"]

#: How a chunk's recurrence is computed (all give the same numbers within rounding).
MINIMAL_SCANS = ("auto", "log", "parallel", "sequential")


def g(x: torch.Tensor) -> torch.Tensor:
    """The positive candidate activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (continuous at 0)."""
    # relu(x) + sigmoid(min(x, 0)) is the same function without torch.where, which is slow on the CPU
    return torch.relu(x) + torch.sigmoid(x.clamp_max(0))


class MinimalRNN(Architecture):
    """A stack of minimal gated layers and a linear readout per frame.

    Args:
        input_size: ``F``, features per frame.
        num_classes: ``C``, logits per frame.
        hidden_size: ``H``, units per layer.
        num_layers: stacked layers (each reads the one below's ``h``).
        dropout: drop probability between layers and before the readout (training only).
        chunk_size: frames per block of the log-space scan; bounds its rounding (which grows
            with the summed log decays of a block) and its memory. Not a limit on ``T``.
        scan: ``log`` (log-space scan, the paper's training form), ``parallel`` (log-depth
            associative scan), ``sequential`` (a loop over frames, vectorised over lanes and
            units) or ``auto``: sequential on the CPU, where it is the fastest (about 8x the
            log-space scan, whose ``logcumsumexp`` is slow there), ``log`` on accelerators.
            All give the same numbers within rounding.

    State: ``h [B, num_layers, H]``, zeros at the start; a reset zeroes a lane.

    ``aux["hidden"]``: ``[B, T, H]``, the top layer's ``h`` after each frame.
    """

    #: linear maps per layer: the gates and the candidate
    projections = 2

    def __init__(
        self,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        chunk_size: int = 64,
        scan: str = "auto",
    ) -> None:
        super().__init__(input_size=input_size, num_classes=num_classes)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.dropout = fraction("dropout", dropout)
        self.chunk_size = positive_int("chunk_size", chunk_size)
        if scan not in MINIMAL_SCANS:
            raise ArchitectureConfigError(f"scan must be one of {', '.join(MINIMAL_SCANS)}, got {scan!r}")
        self.scan = scan
        sizes = [self.input_size] + [self.hidden_size] * self.num_layers
        self.layers = nn.ModuleList(
            nn.Linear(sizes[i], self.projections * self.hidden_size) for i in range(self.num_layers)
        )
        self.drop = nn.Dropout(self.dropout)
        self.readout = nn.Linear(self.hidden_size, self.num_classes)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zeros, ``[batch_size, num_layers, H]``."""
        return torch.zeros(batch_size, self.num_layers, self.hidden_size, device=device, dtype=self._dtype)

    def coefficients(self, projected: torch.Tensor, log: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a [B, T, H], b [B, T, H] >= 0)`` from the layer's projection ``[B, T, k H]``;
        ``log a`` instead of ``a`` when ``log`` (for the scans, computed stably in log space)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: torch.Tensor, reset: torch.Tensor | None = None, aux: dict | None = None):
        """Run ``x [B, T, F]`` from ``state [B, L, H]``; return ``(logits [B, T, C], state)``.

        ``reset [B, T]`` bool zeroes a lane's state just before that frame.
        """
        self._check(x, reset)
        scan = self.scan if self.scan != "auto" else ("sequential" if x.device.type == "cpu" else "log")
        loop = scan == "sequential" or x.shape[1] == 1  # the frame loop takes a itself: no log, no exp
        y, finals = x, []
        for i, layer in enumerate(self.layers):
            a, b = self.coefficients(layer(y), log=not loop)
            if loop:
                if reset is not None:
                    a = torch.where(reset[..., None], torch.zeros_like(a), a)
                h = linear_scan(a, b, state[:, i], "sequential")
            else:
                h = chunked_scan(a, b, state[:, i], reset, chunk_size=self.chunk_size, positive=True, method=scan)
            finals.append(h[:, -1])
            y = self.drop(h)
        if aux is not None:
            aux["hidden"] = h
        return self.readout(y), torch.stack(finals, dim=1)


class MinGRU(MinimalRNN):
    """minGRU: ``z_t = sigmoid(W_z x_t)``, ``h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t)``.

    Options as :class:`MinimalRNN`. In log space ``log(1 - z) = -softplus(k)``.
    """

    projections = 2

    def coefficients(self, projected: torch.Tensor, log: bool) -> tuple[torch.Tensor, torch.Tensor]:
        k, candidate = projected.chunk(2, dim=-1)
        return (-F.softplus(k) if log else torch.sigmoid(-k)), torch.sigmoid(k) * g(candidate)


class MinLSTM(MinimalRNN):
    """minLSTM: forget and input gates from ``x_t`` alone, normalised to sum to one::

        f_t = sigmoid(W_f x_t), i_t = sigmoid(W_i x_t), f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t)
        h_t = f'_t h_{t-1} + i'_t g(W_h x_t)

    Options as :class:`MinimalRNN` (the normalisation keeps ``h`` a convex mix, so it cannot grow).
    """

    projections = 3

    def coefficients(self, projected: torch.Tensor, log: bool) -> tuple[torch.Tensor, torch.Tensor]:
        kf, ki, candidate = projected.chunk(3, dim=-1)
        if log:
            diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
            return -F.softplus(diff), torch.exp(-F.softplus(-diff)) * g(candidate)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        total = f + i  # in (0, 2): the plain quotients are safe
        return f / total, i / total * g(candidate)


@hookimpl
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    register("mingru", MinGRU)
    register("minlstm", MinLSTM)
