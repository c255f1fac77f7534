"""``ssm``: a stack of diagonal linear state-space layers (LRU, Orvieto et al. 2023).

Each layer keeps a complex diagonal state ``h_t = lambda * h_{t-1} + gamma * B u_t`` with
``|lambda| < 1`` by construction, so it is stable whatever the training does. The
recurrence is linear, so a whole chunk is computed by a parallel (log-depth) scan instead
of a loop over frames (on accelerators; see ``scan`` for the CPU); the carried state makes
chunked and frame-by-frame calls agree.
A reset is exact and free: the scan's decay ``a_t`` is set to zero at reset frames, which
cuts every lane's dependence on what came before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nrstream import hookimpl
from nrstream.plugin.contracts import ArchitectureRegister

from ._common import (
    SCAN_METHODS,
    Architecture,
    ArchitectureConfigError,
    fraction,
    linear_scan,
    positive_float,
    positive_int,
)

__all__ = ["LRULayer", "SSMClassifier"]


class LRULayer(nn.Module):
    """Pre-norm LRU block: ``x + GLU(GELU(Re(C h_t) + D u_t))``, ``u = LayerNorm(x)``.

    ``lambda = exp(-exp(nu_log) + i exp(theta_log))`` keeps ``|lambda| < 1``; its modulus is
    initialised uniformly on the ring ``[r_min, r_max]``, its phase in ``[0, max_phase]``.
    ``gamma = sqrt(1 - |lambda|^2)`` normalises the input so the state's scale does not
    depend on how slowly it decays.
    """

    def __init__(
        self,
        hidden_size: int,
        state_size: int,
        r_min: float,
        r_max: float,
        max_phase: float,
        dropout: float,
        scan: str = "auto",
    ) -> None:
        super().__init__()
        self.scan = scan
        h, n = hidden_size, state_size
        self.norm = nn.LayerNorm(h)
        u1, u2 = torch.rand(n), torch.rand(n)
        radius_squared = (u1 * (r_max**2 - r_min**2) + r_min**2).clamp_min(1e-8)  # r_min may be 0
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(radius_squared)))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2 + 1e-8))
        modulus = torch.exp(-torch.exp(self.nu_log.detach()))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - modulus**2)))
        self.b_re = nn.Parameter(torch.randn(n, h) / math.sqrt(2 * h))
        self.b_im = nn.Parameter(torch.randn(n, h) / math.sqrt(2 * h))
        self.c_re = nn.Parameter(torch.randn(h, n) / math.sqrt(n))
        self.c_im = nn.Parameter(torch.randn(h, n) / math.sqrt(n))
        self.d = nn.Parameter(torch.randn(h))
        self.glu = nn.Linear(h, 2 * h)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor | None):
        """``x [B, T, H]``, complex ``h0 [B, N]`` -> ``(y [B, T, H], h [B, T, N] complex)``."""
        u = self.norm(x)
        lam = torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))
        gamma = torch.exp(self.gamma_log)
        # Two real matmuls instead of a complex one: the input is real. Under bf16/fp16 autocast the
        # products are half precision, which has no complex type: the recurrence runs in float32.
        b_re, b_im = u @ self.b_re.T, u @ self.b_im.T
        if b_re.dtype in (torch.bfloat16, torch.float16):
            b_re, b_im = b_re.float(), b_im.float()
        bu = torch.complex(b_re, b_im) * gamma
        a = lam.reshape(1, 1, -1)
        if reset is not None:
            a = torch.where(reset[..., None], torch.zeros((), dtype=a.dtype, device=a.device), a)
        h = linear_scan(a, bu, h0, self.scan)
        y = h.real @ self.c_re.T - h.imag @ self.c_im.T + self.d * u
        y = self.drop(F.glu(self.glu(F.gelu(y)), dim=-1))
        return x + y, h


class SSMClassifier(Architecture):
    """Encoder, ``num_layers`` LRU blocks, final LayerNorm and a linear readout per frame.

    Args:
        input_size: ``F``, features per frame.
        num_classes: ``C``, logits per frame.
        hidden_size: ``H``, width of the residual stream.
        num_layers: stacked LRU blocks.
        dropout: drop probability after each block's GLU (training only).
        state_size: ``N``, complex state dimensions per layer (default ``H``).
        r_min, r_max: initial ring of ``|lambda|``, ``0 <= r_min < r_max < 1``; a low
            ``r_min`` gives fast-forgetting modes, which a reset-free stream needs.
        max_phase: initial phases of ``lambda`` lie in ``[0, max_phase]`` radians.
        scan: how a chunk's recurrence is computed: ``parallel`` (log-depth associative
            scan), ``sequential`` (a loop over frames, vectorised over lanes and states) or
            ``auto`` (parallel on accelerators, sequential on the CPU, where the scan's extra
            memory traffic makes it slower). All give the same numbers.

    State: ``[B, num_layers, N, 2]`` float, the complex states as (real, imaginary) pairs
    (real, so that detaching, moving and norms behave as for the other architectures).

    ``aux["hidden"]``: ``[B, T, 2N]``, the top layer's complex state after each frame,
    real parts then imaginary parts (its norm is the state norm).
    """

    def __init__(
        self,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        state_size: int | None = None,
        r_min: float = 0.4,
        r_max: float = 0.99,
        max_phase: float = math.pi,
        scan: str = "auto",
    ) -> None:
        super().__init__(input_size=input_size, num_classes=num_classes)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.dropout = fraction("dropout", dropout)
        self.state_size = positive_int("state_size", hidden_size if state_size is None else state_size)
        self.r_max = fraction("r_max", r_max, low=0.0, high=1.0)
        self.r_min = fraction("r_min", r_min, low=0.0, high=self.r_max)
        self.max_phase = positive_float("max_phase", max_phase)
        if scan not in SCAN_METHODS:
            raise ArchitectureConfigError(f"scan must be one of {', '.join(SCAN_METHODS)}, got {scan!r}")
        self.scan = scan
        self.encoder = nn.Linear(self.input_size, self.hidden_size)
        self.layers = nn.ModuleList(
            LRULayer(self.hidden_size, self.state_size, self.r_min, self.r_max, self.max_phase, self.dropout, scan)
            for _ in range(self.num_layers)
        )
        self.norm = nn.LayerNorm(self.hidden_size)
        self.readout = nn.Linear(self.hidden_size, self.num_classes)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zeros, ``[batch_size, num_layers, N, 2]``."""
        return torch.zeros(batch_size, self.num_layers, self.state_size, 2, device=device, dtype=self._dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor, reset: torch.Tensor | None = None, aux: dict | None = None):
        """Run ``x [B, T, F]`` from ``state``; return ``(logits [B, T, C], state)``.

        ``reset [B, T]`` bool zeroes a lane's state just before that frame.
        """
        self._check(x, reset)
        y = self.encoder(x)
        finals = []
        for i, layer in enumerate(self.layers):
            y, h = layer(y, torch.view_as_complex(state[:, i].contiguous()), reset)
            finals.append(torch.view_as_real(h[:, -1]))
        if aux is not None:
            aux["hidden"] = torch.cat([h.real, h.imag], dim=-1)
        return self.readout(self.norm(y)), torch.stack(finals, dim=1)


@hookimpl
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    register("ssm", SSMClassifier)
