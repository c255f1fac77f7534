"""nrstream-mingru: an example third-party architecture plugin; copy it to write your own.

minGRU ("Were RNNs All We Needed?", Feng et al. 2024) drops the hidden state from the
GRU's gates, so both the gate and the candidate depend on the input frame alone::

    z_t = sigmoid(W_z x_t),  h~_t = W_h x_t,  h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

It registers ``example_mingru``: nrstream ships a full minGRU as the built-in ``mingru``
(log-space parallel scan, stacked layers), and two plugins cannot register one name.
This file stays the shortest complete plugin, a frame loop written for reading.
"""

from __future__ import annotations

import torch
from torch import nn

from nrstream import hookimpl
from nrstream.plugin.contracts import ArchitectureRegister


class MinGRU(nn.Module):
    """One minGRU layer and a linear readout per frame.

    State: ``h [B, H]`` (batch first, as nrstream requires). ``aux["hidden"]``: ``[B, T, H]``.
    """

    # Keyword-only arguments named like the config keys; nrstream passes
    # ``input_size`` and ``num_classes``, the rest comes from the user's config.
    def __init__(self, *, input_size: int, num_classes: int, hidden_size: int = 128) -> None:
        super().__init__()
        if not isinstance(hidden_size, int) or hidden_size < 1:
            # quote the bad value: the user sees this line, not a traceback
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        self.hidden_size = hidden_size
        self.gates = nn.Linear(input_size, 2 * hidden_size)  # z_t and h~_t in one matmul
        self.readout = nn.Linear(hidden_size, num_classes)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def initial_state(self, batch_size: int, device=None) -> torch.Tensor:
        # zeros, so that resetting a lane is multiplying it by zero
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.readout.weight.dtype)

    def forward(self, x, state, reset=None, aux=None):
        """``x [B, T, F]``, ``state [B, H]``, ``reset [B, T]`` bool -> ``(logits [B, T, C], state)``."""
        gate, candidate = self.gates(x).chunk(2, dim=-1)  # for all T frames at once
        z = torch.sigmoid(gate)
        h, hidden = state, []
        # Sequential for clarity. The gates do not depend on h, so a parallel scan over T
        # (h_t = a_t h_{t-1} + b_t with a = 1 - z, b = z * h~) would give the same result.
        # unbind gives per-frame views whose backward is cheap (x[:, t] would zero-fill [B, T, H])
        for t, (z_t, candidate_t) in enumerate(zip(z.unbind(1), candidate.unbind(1), strict=True)):
            if reset is not None:
                h = h * ~reset[:, t, None]  # forget, just before frame t, in the reset lanes
            h = (1 - z_t) * h + z_t * candidate_t
            hidden.append(h)
        hidden = torch.stack(hidden, dim=1)
        if aux is not None:  # losses and metrics that read hidden states ask for them
            aux["hidden"] = hidden
        return self.readout(hidden), h


@hookimpl
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    # The name users write in configs; taking a name another plugin has is an error
    # (nrstream's built-in, log-space-scan minGRU is "mingru", so this one is "example_mingru").
    register("example_mingru", MinGRU)
