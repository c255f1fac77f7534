"""``mamba``: a selective state-space model (Mamba, Gu & Dao 2023) in plain PyTorch.

One block, with ``D = expand * d_model`` channels and ``N = d_state`` states per channel::

    u, z   = in_proj(norm(x))                          two [B, T, D]
    u      = silu(causal depthwise conv1d(u, d_conv))  carries the last d_conv - 1 inputs
    dt, B, C = x_proj(u);  delta = softplus(dt_proj(dt))   input-dependent [B, T, D], [B, T, N], [B, T, N]
    h_t    = exp(delta_t A) * h_{t-1} + delta_t B_t u_t    h [B, D, N], A = -exp(A_log) diagonal (S4D-real)
    y      = (C_t . h_t + D_skip u_t) * silu(z_t)
    x'     = x + out_proj(y)

The recurrence is linear in ``h``, so a chunk can be computed by a log-space scan in blocks
of ``chunk_size`` frames (:func:`~nrstream_plugins.architectures._common.chunked_scan`), not
a loop over frames: ``scan: auto`` does so on accelerators, where it is a few kernels. With
``scan: sequential`` (what ``auto`` picks on the CPU) a chunk runs the frame loop instead, as
one autograd node with a hand-written backward
(:func:`~nrstream_plugins.architectures._selective_scan.selective_scan`), run on the CPU by a
C++ kernel compiled on first use (the PyTorch loop where no compiler is found, or with
``NRSTREAM_NO_CPP=1``), which also forms ``delta * u`` and adds the ``D`` term. Recorded frame by
frame, autograd kept about ten nodes per frame; the PyTorch loop with the depthwise convolution as
one ``conv2d`` took a training step from 9.0x to 5.1x the GRU's time per frame at a matched size,
and the kernel to 2.3x (``benchmarks/architectures.py --threads 1``; ``benchmarks/mamba_parts.py``
splits a step: the rest of the block is now most of it). The log-space scan is far slower on the
CPU (``mamba_n4_log``). A single
frame (``B = 1`` streaming, export) takes the plain stepwise update, as before.
A reset is exact: the SSM decay is zero at the reset frame and the convolution window
hides every input before it, per lane.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nrstream import hookimpl
from nrstream.plugin.contracts import ArchitectureRegister

from ._common import (
    Architecture,
    ArchitectureConfigError,
    chunked_scan,
    fraction,
    positive_float,
    positive_int,
    reset_columns,
    zero_lanes,
)
from ._selective_scan import selective_scan

__all__ = ["RMSNorm", "MambaLayer", "MambaClassifier", "causal_conv", "MAMBA_SCANS", "NORMS"]

MAMBA_SCANS = ("auto", "log", "parallel", "sequential")
NORMS = ("rms", "layer")


def causal_conv(
    u: torch.Tensor, window: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, reset: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution over a chunk, continuing from the carried window.

    Args:
        u: ``[B, T, D]`` this chunk's inputs.
        window: ``[B, D, k - 1]`` the last ``k - 1`` inputs before the chunk.
        weight: ``[D, k]`` (``weight[:, k - 1]`` multiplies the current frame); ``bias [D]``.
        reset: ``[B, T]`` bool or None; an input before a lane's reset frame is invisible
            to every output from that frame on, as if the window had been zeroed there.

    Returns ``(out [B, T, D], window' [B, D, k - 1])``. A chunk is one depthwise convolution;
    a single frame, and a frame whose window reaches past a reset, are ``k`` shifted products
    (with the hidden inputs masked out), which trace and export as elementwise maths.
    """
    k, steps = weight.shape[1], u.shape[1]
    ext = torch.cat([window.transpose(1, 2), u], dim=1)  # [B, k - 1 + T, D]
    tail, seen = ext[:, -(k - 1) :], None
    if reset is not None and bool(reset.any()):
        flags = torch.cat([reset.new_zeros(reset.shape[0], k - 1), reset], dim=1)
        seen = torch.cumsum(flags.to(torch.int32), dim=1)  # resets up to each position
        tail = tail * (seen[:, -1:] == seen[:, -(k - 1) :])[..., None].to(tail.dtype)
    out = bias
    if steps == 1 or seen is not None:  # k shifted products: cheap for one frame, and maskable
        for j in range(k):
            term = ext[:, j : j + steps] * weight[:, j]
            if seen is not None:  # visible iff no reset in (t + j, t + k - 1]
                term = term * (seen[:, k - 1 :] == seen[:, j : j + steps])[..., None].to(term.dtype)
            out = out + term
    if steps > 1:
        # one depthwise convolution, [B, k - 1 + T, D] read as a channels-last [B, D, 1, k - 1 + T]
        # image (no transposed copy): about twice as fast as the k products and their backward
        image = ext[:, None].permute(0, 3, 1, 2)
        conv = F.conv2d(image, weight[:, None, None, :], bias, groups=weight.shape[0]).permute(0, 2, 3, 1)[:, 0]
        # frames whose window reaches past a reset keep the masked products; all others take the
        # convolution's bits, so a reset changes nothing before it or in another lane
        out = conv if seen is None else torch.where((seen[:, k - 1 :] != seen[:, :steps])[..., None], out, conv)
    return out, tail.transpose(1, 2)


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension, written out (``torch.nn.RMSNorm``
    becomes ``aten::rms_norm``, which ONNX opset 17 has no translation for)."""

    def __init__(self, size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps) * self.weight


class MambaLayer(nn.Module):
    """One pre-norm residual Mamba block (see the module docstring). State: ``(window [B, D, k - 1], h [B, D, N])``."""

    def __init__(
        self,
        d_model: int,
        d_state: int,
        d_conv: int,
        expand: int,
        dt_rank: int,
        dt_min: float,
        dt_max: float,
        norm: str,
        dropout: float,
        chunk_size: int,
        scan: str,
    ) -> None:
        super().__init__()
        inner = expand * d_model
        self.inner, self.d_state, self.dt_rank = inner, d_state, dt_rank
        self.chunk_size, self.scan = chunk_size, scan
        self.norm = RMSNorm(d_model) if norm == "rms" else nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * inner, bias=False)
        conv = nn.Conv1d(inner, inner, d_conv, groups=inner)  # only for torch's default initialisation
        self.conv_weight = nn.Parameter(conv.weight.detach().reshape(inner, d_conv).clone())
        self.conv_bias = nn.Parameter(conv.bias.detach().clone())
        self.x_proj = nn.Linear(inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, inner)
        nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
        # delta starts log-uniform in [dt_min, dt_max]: the bias is softplus^-1 of it
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real: A[d, n] = -(n + 1)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, window: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor | None, keep: bool = True
    ):
        """``x [B, T, d_model]``, ``window [B, D, k-1]``, ``h0 [B, D, N]`` ->
        ``(x' [B, T, d_model], window', h_T [B, D, N], h [B, T, D * N] or None)``.

        ``keep`` false lets the frame loop skip stacking the per-frame states ``h``.
        """
        lanes, steps = x.shape[:2]
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)
        u, window = causal_conv(u, window, self.conv_weight, self.conv_bias, reset)
        u = F.silu(u)
        dt, b, c = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))  # [B, T, D]
        a_matrix = -torch.exp(self.A_log)  # [D, N]
        scan = self.scan if self.scan != "auto" else ("sequential" if x.device.type == "cpu" else "log")
        if (scan == "sequential" and steps > 1) and not torch.jit.is_tracing():
            # delta * u and the D term are formed inside the fused scan: two [B, T, D] passes fewer each way
            y, h_last, h = selective_scan(delta, a_matrix, None, b, c, h0, reset, keep, u=u, skip=self.D)
        elif scan == "sequential" or steps == 1:
            y, h_last, h = self._steps(delta, a_matrix, u, b, c, h0, reset, keep)
            y = y + self.D * u
        else:
            log_a = delta[..., None] * a_matrix  # [B, T, D, N], <= 0
            bu = (delta * u)[..., None] * b[:, :, None, :]
            flat = (lanes, steps, self.inner * self.d_state)
            h = chunked_scan(
                log_a.reshape(flat),
                bu.reshape(flat),
                h0.reshape(lanes, -1),
                reset,
                chunk_size=self.chunk_size,
                method=scan,
            )
            y = (h.reshape(lanes, steps, self.inner, self.d_state) * c[:, :, None, :]).sum(-1)
            h_last = h[:, -1].reshape(lanes, self.inner, self.d_state)
            y = y + self.D * u
        y = self.out_proj(y * F.silu(z))  # y holds the D term by now: fused into the scan, or added above
        return x + self.drop(y), window, h_last, h

    @staticmethod
    def _steps(delta, a_matrix, u, b, c, h0, reset, keep: bool):
        """The stepwise form, frame by frame, with no [B, T, D, N] inputs: ``(y [B, T, D], h_T [B, D, N], h | None)``.

        Plain autograd ops: a single frame (streaming at ``B = 1``), a traced export, and the
        reference the fused :func:`selective_scan` is tested against.
        """
        cuts = set(reset_columns(reset))
        h, outputs, states = h0, [], []
        du = delta * u
        frames = zip(delta.unbind(1), du.unbind(1), b.unbind(1), c.unbind(1), strict=True)
        for t, (delta_t, du_t, b_t, c_t) in enumerate(frames):
            if t in cuts:
                h = zero_lanes(h, ~reset[:, t])
            # the input term as a batched outer product: bmm's backward needs no broadcast reductions
            h = torch.exp(delta_t[..., None] * a_matrix) * h + torch.bmm(du_t[..., None], b_t[:, None, :])
            outputs.append(torch.bmm(h, c_t[..., None]).squeeze(-1))
            if keep:
                states.append(h.flatten(1))
        return torch.stack(outputs, 1), h, (torch.stack(states, 1) if keep else None)


class MambaClassifier(Architecture):
    """Encoder, ``num_layers`` Mamba blocks, a final norm and a linear readout per frame.

    Args:
        input_size: ``F``, features per frame.
        num_classes: ``C``, logits per frame.
        hidden_size: ``d_model``, width of the residual stream.
        num_layers: stacked Mamba blocks.
        dropout: drop probability on each block's output (training only).
        d_state: ``N``, SSM states per channel.
        d_conv: ``k``, width of the causal depthwise convolution (``>= 2``).
        expand: channels ``D = expand * hidden_size`` inside a block.
        dt_rank: rank of the ``delta`` projection; ``"auto"`` is ``ceil(hidden_size / 16)``.
        dt_min, dt_max: initial ``delta`` is log-uniform in ``[dt_min, dt_max]``
            (``0 < dt_min < dt_max``); a large ``delta`` forgets fast.
        norm: ``rms`` (RMSNorm, as Mamba) or ``layer`` (LayerNorm).
        chunk_size: frames per block of the log-space scan (its rounding and memory).
        scan: ``log`` (log-space scan), ``parallel`` (log-depth associative scan),
            ``sequential`` (a loop over frames, vectorised over lanes and channels; a chunk
            goes through the fused scan with its hand-written backward) or ``auto``:
            sequential on the CPU, where it is the fastest, ``log`` on accelerators.
            All give the same numbers within rounding.

    State: ``(window [B, L, D, k - 1], h [B, L, D, N])``: each layer's last ``k - 1``
    convolution inputs and its SSM state; zeros at the start, zeroed by a reset.

    ``aux["hidden"]``: ``[B, T, D * N]``, the top layer's SSM state after each frame.
    """

    def __init__(
        self,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        norm: str = "rms",
        chunk_size: int = 64,
        scan: str = "auto",
    ) -> None:
        super().__init__(input_size=input_size, num_classes=num_classes)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.dropout = fraction("dropout", dropout)
        self.d_state = positive_int("d_state", d_state)
        self.d_conv = positive_int("d_conv", d_conv)
        if self.d_conv < 2:
            raise ArchitectureConfigError(f"d_conv must be an integer >= 2, got {d_conv!r}")
        self.expand = positive_int("expand", expand)
        self.dt_rank = math.ceil(self.hidden_size / 16) if dt_rank == "auto" else positive_int("dt_rank", dt_rank)
        self.dt_max = positive_float("dt_max", dt_max)
        self.dt_min = positive_float("dt_min", dt_min)
        if not self.dt_min < self.dt_max:
            raise ArchitectureConfigError(f"dt_min must be below dt_max ({dt_max!r}), got {dt_min!r}")
        if norm not in NORMS:
            raise ArchitectureConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.norm_kind = norm
        self.chunk_size = positive_int("chunk_size", chunk_size)
        if scan not in MAMBA_SCANS:
            raise ArchitectureConfigError(f"scan must be one of {', '.join(MAMBA_SCANS)}, got {scan!r}")
        self.scan = scan
        self.inner = self.expand * self.hidden_size
        self.encoder = nn.Linear(self.input_size, self.hidden_size)
        self.layers = nn.ModuleList(
            MambaLayer(
                self.hidden_size,
                self.d_state,
                self.d_conv,
                self.expand,
                self.dt_rank,
                self.dt_min,
                self.dt_max,
                norm,
                self.dropout,
                self.chunk_size,
                scan,
            )
            for _ in range(self.num_layers)
        )
        self.norm = RMSNorm(self.hidden_size) if norm == "rms" else nn.LayerNorm(self.hidden_size)
        self.readout = nn.Linear(self.hidden_size, self.num_classes)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        """Zeros: ``(window [B, L, D, k - 1], h [B, L, D, N])``."""
        shape = (batch_size, self.num_layers, self.inner)
        return (
            torch.zeros(*shape, self.d_conv - 1, device=device, dtype=self._dtype),
            torch.zeros(*shape, self.d_state, device=device, dtype=self._dtype),
        )

    def forward(self, x: torch.Tensor, state, reset: torch.Tensor | None = None, aux: dict | None = None):
        """Run ``x [B, T, F]`` from ``state``; return ``(logits [B, T, C], state)``.

        ``reset [B, T]`` bool clears a lane's SSM state and convolution window just before that frame.
        """
        self._check(x, reset)
        windows, states = state
        y, new_windows, finals = self.encoder(x), [], []
        for i, layer in enumerate(self.layers):
            top = i == len(self.layers) - 1
            y, window, h_last, h = layer(y, windows[:, i], states[:, i], reset, keep=top and aux is not None)
            new_windows.append(window)
            finals.append(h_last)
        if aux is not None:
            aux["hidden"] = h
        return self.readout(self.norm(y)), (torch.stack(new_windows, dim=1), torch.stack(finals, dim=1))


@hookimpl
def nrstream_register_architectures(register: ArchitectureRegister) -> None:
    register("mamba", MambaClassifier)
