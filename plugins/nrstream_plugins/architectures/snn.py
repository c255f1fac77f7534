"""``snn``: a recurrent spiking network of leaky integrate-and-fire neurons.

Spikes are a Heaviside step, whose derivative is zero almost everywhere; training uses a
surrogate gradient (the fast-sigmoid derivative) in the backward pass. Time constants are
learnt through a sigmoid, so each decay stays in ``(0, 1)``. The readout neurons leak but
never spike: their membrane potential is the logits, a smoothed vote of the spikes.

The spike and threshold make the recurrence nonlinear, so it cannot be scanned in
parallel: the forward pass loops over the ``T`` frames of a chunk (per layer), and
everything inside one frame is vectorised over lanes and neurons. Input projections of a
whole chunk are computed before the loop, so only the recurrent matmul is per frame.
The readout is linear and is computed by the same parallel scan as ``ssm``.
"""

from __future__ import annotations

import torch
from torch import nn

from nrstream import hookimpl
from nrstream.plugin.contracts import ArchitectureRegister

from ._common import (
    Architecture,
    ArchitectureConfigError,
    fraction,
    linear_scan,
    positive_float,
    positive_int,
    reset_columns,
    zero_lanes,
)

__all__ = ["SpikeFunction", "LIFLayer", "SNNClassifier"]


class SpikeFunction(torch.autograd.Function):
    """``s = (v > 0)``; backward ``ds/dv = 1 / (1 + slope * |v|)^2`` (fast sigmoid, Zenke & Ganguli 2018)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.slope = slope
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * v.abs()) ** 2, None


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def _decay_init(size: int, tau_min: float, tau_max: float) -> torch.Tensor:
    """Decay logits for time constants spread uniformly over ``[tau_min, tau_max]`` frames."""
    tau = torch.empty(size).uniform_(tau_min, tau_max)
    return _logit(torch.exp(-1.0 / tau))


class LIFLayer(nn.Module):
    """Recurrent (adaptive) LIF neurons; one frame of it is::

        v_t = alpha * v_{t-1} + W x_t + U s_{t-1}        membrane, alpha = sigmoid(decay)
        b_t = rho * b_{t-1} + (1 - rho) * s_{t-1}         adaptation (zero if not adaptive)
        s_t = H(v_t - theta_t),  theta_t = 1 + beta * b_t   spike, threshold rises after spiking
        v_t <- v_t - theta_t * s_t                         soft reset keeps the overshoot

    State ``(v, s, b)``, each ``[B, H]``.
    """

    def __init__(self, input_size: int, hidden_size: int, adaptive: bool, slope: float) -> None:
        super().__init__()
        self.w_in = nn.Linear(input_size, hidden_size)
        self.w_rec = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.orthogonal_(self.w_rec.weight, gain=0.5)
        self.decay = nn.Parameter(_decay_init(hidden_size, 5.0, 25.0))
        self.adaptive = adaptive
        if adaptive:
            self.adapt_decay = nn.Parameter(_decay_init(hidden_size, 20.0, 100.0))
            self.beta = nn.Parameter(torch.full((hidden_size,), 0.2))
        self.slope = slope

    def forward(self, x: torch.Tensor, state, cuts: list[int], reset: torch.Tensor | None, keep_v: bool):
        """``x [B, T, in]`` -> ``(spikes [B, T, H], membranes [B, T, H] or None, state)``."""
        current = self.w_in(x)  # the whole chunk at once; only U s_{t-1} is per frame
        alpha = torch.sigmoid(self.decay)
        rho = torch.sigmoid(self.adapt_decay) if self.adaptive else None
        v, s, b = state
        spikes, membranes = [], []
        # unbind, not current[:, t]: each indexed frame's backward would zero-fill all of [B, T, H]
        for t, frame in enumerate(current.unbind(1)):
            if t in cuts:
                v, s, b = zero_lanes((v, s, b), ~reset[:, t])
            v = alpha * v + frame + self.w_rec(s)
            if self.adaptive:
                b = rho * b + (1 - rho) * s
                theta = 1 + self.beta * b
            else:
                theta = torch.ones_like(v)
            s = SpikeFunction.apply(v - theta, self.slope)
            v = v - theta * s
            spikes.append(s)
            if keep_v:
                membranes.append(v)
        return torch.stack(spikes, 1), (torch.stack(membranes, 1) if keep_v else None), (v, s, b)


class SNNClassifier(Architecture):
    """Recurrent LIF layers feeding a leaky, non-spiking readout whose membrane is the logits.

    Args:
        input_size: ``F``, features per frame.
        num_classes: ``C``, logits (readout neurons) per frame.
        hidden_size: ``H``, spiking neurons per layer.
        num_layers: stacked recurrent LIF layers.
        dropout: drop probability on spikes between layers and before the readout.
        adaptive: adaptive thresholds (ALIF, Bellec et al. 2018) that rise after each spike.
        surrogate_slope: steepness of the fast-sigmoid surrogate gradient (``> 0``).

    State: ``(layer_1, ..., layer_L, u)``: each layer a tuple ``(v, s, b)`` of ``[B, H]``
    (membrane, last spikes, adaptation), and ``u [B, C]`` the readout membrane.

    ``aux["hidden"]``: ``[B, T, H]``, the top layer's membrane potential after each frame
    (after the spike's soft reset).
    """

    def __init__(
        self,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        adaptive: bool = True,
        surrogate_slope: float = 5.0,
    ) -> None:
        super().__init__(input_size=input_size, num_classes=num_classes)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.dropout = fraction("dropout", dropout)
        if not isinstance(adaptive, bool):
            raise ArchitectureConfigError(f"adaptive must be true or false, got {adaptive!r}")
        self.adaptive = adaptive
        self.surrogate_slope = positive_float("surrogate_slope", surrogate_slope)
        sizes = [self.input_size] + [self.hidden_size] * self.num_layers
        self.layers = nn.ModuleList(
            LIFLayer(sizes[i], self.hidden_size, adaptive, self.surrogate_slope) for i in range(self.num_layers)
        )
        self.drop = nn.Dropout(self.dropout)
        self.readout = nn.Linear(self.hidden_size, self.num_classes)
        self.readout_decay = nn.Parameter(_decay_init(self.num_classes, 5.0, 10.0))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        """All zeros: resting membranes, no spikes, no adaptation."""
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=self._dtype)
        layers = tuple((zeros, zeros, zeros) for _ in self.layers)
        return (*layers, torch.zeros(batch_size, self.num_classes, device=device, dtype=self._dtype))

    def forward(self, x: torch.Tensor, state, reset: torch.Tensor | None = None, aux: dict | None = None):
        """Run ``x [B, T, F]`` from ``state``; return ``(logits [B, T, C], state)``.

        ``reset [B, T]`` bool zeroes a lane's state (every layer and the readout) just
        before that frame.
        """
        self._check(x, reset)
        cuts = set(reset_columns(reset))
        y, new_state = x, []
        for i, layer in enumerate(self.layers):
            top = i == len(self.layers) - 1
            y, membranes, layer_state = layer(y, state[i], cuts, reset, keep_v=top and aux is not None)
            y = self.drop(y)
            new_state.append(layer_state)
        if aux is not None:
            aux["hidden"] = membranes
        # Leaky readout u_t = kappa * u_{t-1} + (1 - kappa) * (W s_t + c): linear, so scanned.
        kappa = torch.sigmoid(self.readout_decay)
        decay = kappa.reshape(1, 1, -1)
        if reset is not None:
            decay = torch.where(reset[..., None], torch.zeros_like(decay), decay)
        logits = linear_scan(decay, (1 - kappa) * self.readout(y), state[-1])
        return logits, (*new_state, logits[:, -1])


@hookimpl
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    register("snn", SNNClassifier)
