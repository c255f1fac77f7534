"""Mamba's selective scan as one autograd node: a frame loop with a hand-written backward.

On CPU tensors (float32, float64) the node runs a compiled C++ kernel (``_selective_scan.cpp``,
built on first use by :mod:`._scan_kernel`; ``NRSTREAM_NO_CPP=1`` or a failed build keeps the
PyTorch loop below, which stays the reference it is tested against). The kernel walks one lane at
a time with its ``[N, D]`` state in the L1 cache, a frame's whole update in one pass (its own
vectorised ``exp``), in the model's ``[B, T, D]`` layout (no time-major copies), lanes split over
torch's threads, the backward recomputing states from a checkpoint every ``SEGMENT`` frames as
below. It can also form ``du = delta * u`` and add Mamba's ``D * u`` term itself (``u=``,
``skip=``), saving those passes over memory and their backward. On a step of ``B = 256, T = 100,
D = 126, N = 16`` (one thread) forward and backward took 290 ms through the PyTorch loop and 80 ms
through the kernel (``benchmarks/mamba_parts.py``'s ``scan`` case: 3.1x to 0.74x the GRU's step).
The rest of this docstring is the PyTorch loop.

``h_t = a_t * h_{t-1} + B_t (x) du_t`` and ``y_t = C_t . h_t`` with ``a_t = exp(delta_t A)``
(real, in ``(0, 1]``), ``h [B, D, N]``. Written with per-frame autograd, the loop records
about ten nodes per frame, saves every frame's intermediates and reduces broadcasts over
``[B, D, N]`` (``delta_t (x) A``) frame by frame in the backward: on the CPU that took about
twice the time of this version. Here the forward is a loop of five in-place ops per frame and
the backward the reverse loop written out (``dh``, ``d a`` → ``d delta``, ``d A``, ``d B``,
``d C``, ``d du``), with the layout and blocking chosen for the CPU's caches:

* the state is kept as ``[lanes, N, D]`` (``D`` innermost, long rows), where the products
  with ``C_t`` and ``B_t`` are batched matrix-vector products and the reductions over ``N``
  are cheap;
* lanes are processed in blocks of about 64k state numbers per torch thread (``32`` lanes
  for ``D = 126, N = 16`` on one thread), so a frame's ``[lanes, N, D]`` work stays in the
  L2 caches, and an op parallelised over ``n`` threads still gives each of them that much;
* the forward keeps only the state at the start of every ``SEGMENT`` (10) frames; the backward
  recomputes a segment's states and decays into a small reused buffer and walks it
  backwards, instead of writing and reading all ``T`` states ``[T, B, N, D]`` through memory.

A reset multiplies ``a_t`` by 0 for that lane (``a * 0 * h`` is what ``zero_lanes`` gives),
so resets stay exact, and a lane's numbers never depend on another lane's resets. The
arithmetic is the autograd loop's, summed in another order in places (the batched products,
the gradient of ``A`` per block of lanes): the two agree to rounding (1e-10 in float64 in the
tests, which also run ``gradcheck`` on this backward).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import _scan_kernel

__all__ = ["selective_scan", "BLOCK_NUMBERS", "SEGMENT"]

#: state numbers per lane block on the CPU: ``[lanes, N, D]`` float32 of 256 KiB, a few of which fit the L2 cache
BLOCK_NUMBERS = 65536
#: frames between the states the forward keeps for the backward (which recomputes the others)
SEGMENT = 10


def _block_lanes(lanes: int, numbers: int, device: torch.device) -> int:
    """Lanes per block: ``BLOCK_NUMBERS`` state numbers per CPU thread (each op splits over the threads)."""
    if device.type != "cpu":
        return lanes  # an accelerator wants the widest ops, not cache-sized ones
    return max(1, min(lanes, BLOCK_NUMBERS * torch.get_num_threads() // numbers))


def _run(dl, at, dut, bt, ct, keep, cuts, h0, block, hlast, y, checkpoints=None, states=None):
    """The forward loop over time-major inputs, lane block by lane block.

    ``dl, dut [T, B, D]``, ``bt, ct [T, B, N]``, ``at [N, D]``, ``keep [T, B]`` (1, or 0 at a
    reset) or None, ``cuts`` the frames with a reset, ``h0 [B, N, D]``. Writes ``y [T, B, D]``,
    ``hlast [B, N, D]``, and where given the state before every ``SEGMENT``-th frame into
    ``checkpoints [S, B, N, D]`` and every state into ``states [T, B, N, D]``.
    """
    steps, lanes = dl.shape[:2]
    shape = (min(block, lanes), *at.shape)
    a_buf, ping = dl.new_empty(shape), dl.new_empty((2, *shape))
    for lo in range(0, lanes, block):
        hi = min(lanes, lo + block)
        width = hi - lo
        a = a_buf[:width]
        dls, dus = _frames(dl, lo, hi, False), _frames(dut, lo, hi, False)
        bs, cs, ys = _frames(bt, lo, hi, True), _frames(ct, lo, hi, False), _frames(y, lo, hi, False)
        h = h0[lo:hi]
        for t in range(steps):
            if checkpoints is not None and t % SEGMENT == 0:
                checkpoints[t // SEGMENT, lo:hi] = h
            torch.mul(dls[t], at, out=a)
            a.exp_()
            if t in cuts:
                a.mul_(keep[t, lo:hi, None, None])
            out = states[t, lo:hi] if states is not None else ping[t % 2, :width]
            torch.mul(a, h, out=out)
            out.baddbmm_(bs[t], dus[t])  # + B_t (x) du_t; a batched outer product beats a broadcast
            torch.bmm(cs[t], out, out=ys[t])
            h = out
        hlast[lo:hi] = h


def _frames(x: torch.Tensor, lo: int, hi: int, column: bool) -> tuple[torch.Tensor, ...]:
    """Lanes ``lo:hi`` of a time-major ``[T, B, K]``, frame by frame: ``[w, K, 1]`` (column) or ``[w, 1, K]`` views."""
    return (x[:, lo:hi, :, None] if column else x[:, lo:hi, None, :]).unbind(0)


def _compiled(x: torch.Tensor):
    """The compiled kernel where it serves ``x`` (a CPU float32/float64 tensor and a kernel that built), else None."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    return _scan_kernel.kernel()


def _none() -> torch.Tensor:
    return torch.empty(0)


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dl, at, dut, bt, ct, h0, keep, cuts, want_states):
        steps, lanes = dl.shape[:2]
        block = _block_lanes(lanes, at.numel(), dl.device)
        y, hlast = dl.new_empty(steps, lanes, at.shape[1]), torch.empty_like(h0)
        checkpoints = dl.new_empty(-(-steps // SEGMENT), *h0.shape)
        states = dl.new_empty(steps, *h0.shape) if want_states else None
        _run(dl, at, dut, bt, ct, keep, cuts, h0, block, hlast, y, checkpoints, states)
        ctx.save_for_backward(dl, at, dut, bt, ct, keep, checkpoints)
        ctx.cuts, ctx.block = cuts, block
        return y, hlast, states

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, ghlast, gstates):
        dl, at, dut, bt, ct, keep, checkpoints = ctx.saved_tensors
        cuts, block = ctx.cuts, ctx.block
        steps, lanes = dl.shape[:2]
        n_states, inner = at.shape
        g_dl, g_dut = torch.empty_like(dl), torch.empty_like(dut)
        g_bt, g_ct, g_h0 = torch.empty_like(bt), torch.empty_like(ct), torch.empty_like(checkpoints[0])
        width_max = min(block, lanes)
        g_at = dl.new_zeros(width_max, n_states, inner)
        seg_h = dl.new_empty(SEGMENT, width_max, n_states, inner)  # a segment's states, recomputed
        seg_a = torch.empty_like(seg_h)  # and its decays
        q = dl.new_empty(width_max, n_states, inner)
        gy = gy.contiguous() if gy is not None else dl.new_zeros(steps, lanes, inner)
        for lo in range(0, lanes, block):
            hi = min(lanes, lo + block)
            width = hi - lo
            qb, acc = q[:width], g_at[:width]
            g = ghlast[lo:hi].clone() if ghlast is not None else dl.new_zeros(width, n_states, inner)
            dls, dus, gys = _frames(dl, lo, hi, False), _frames(dut, lo, hi, False), _frames(gy, lo, hi, False)
            bs, bs_row, cs_col = _frames(bt, lo, hi, True), _frames(bt, lo, hi, False), _frames(ct, lo, hi, True)
            g_c, g_b, g_du = _frames(g_ct, lo, hi, False), _frames(g_bt, lo, hi, False), _frames(g_dut, lo, hi, False)
            for s in range(checkpoints.shape[0] - 1, -1, -1):
                begin, end = s * SEGMENT, min(steps, (s + 1) * SEGMENT)
                h = checkpoints[s, lo:hi]
                for t in range(begin, end):  # this segment's decays and states again
                    a, out = seg_a[t - begin, :width], seg_h[t - begin, :width]
                    torch.mul(dls[t], at, out=a)
                    a.exp_()
                    if t in cuts:
                        a.mul_(keep[t, lo:hi, None, None])
                    torch.mul(a, h, out=out)
                    out.baddbmm_(bs[t], dus[t])
                    h = out
                for t in range(end - 1, begin - 1, -1):
                    g.baddbmm_(cs_col[t], gys[t])  # dL/dh_t: from y_t, and from h_{t+1} (already in g)
                    if gstates is not None:
                        g.add_(gstates[t, lo:hi])
                    # dC_t = dy_t . h_t and dB_t = du_t . dh_t as [w, 1, D] x [w, D, N]: a row times a
                    # transposed matrix, about twice as fast as [w, N, D] x [w, D, 1]
                    torch.bmm(gys[t], seg_h[t - begin, :width].transpose(1, 2), out=g_c[t])
                    torch.bmm(dus[t], g.transpose(1, 2), out=g_b[t])
                    torch.bmm(bs_row[t], g, out=g_du[t])  # d du_t = B_t . dh_t
                    g.mul_(seg_a[t - begin, :width])  # now dL/dh_{t-1}
                    before = seg_h[t - begin - 1, :width] if t > begin else checkpoints[s, lo:hi]
                    torch.mul(g, before, out=qb)  # dL/d(log a_t) = dh_t * a_t * h_{t-1}
                    acc.addcmul_(qb, dls[t])  # d A   += q * delta_t   (log a = delta (x) A)
                    qb.mul_(at)
                    torch.sum(qb, 1, out=g_dl[t, lo:hi])  # d delta_t = sum_n q * A
            g_h0[lo:hi] = g
        return g_dl, g_at.sum(0), g_dut, g_bt, g_ct, g_h0, None, None, None


def _or(x: torch.Tensor | None, none: torch.Tensor) -> torch.Tensor:
    return none if x is None else x


class _CompiledScan(torch.autograd.Function):
    """The same node through the C++ kernel, in the caller's layout: ``dl, du [B, T, D]``, ``bt, ct [B, T, N]``,
    ``at [N, D]``, ``h0 [B, D, N]``, ``keep [B, T]`` or None; returns ``y [B, T, D]``, ``h_T [B, D, N]`` and
    ``states [B, T, D, N]`` or None. With ``times_delta`` the ``du`` argument is ``u`` (``du = dl * u`` is formed
    in the kernel) and ``skip [D]`` (or None) adds ``skip * u`` to ``y``."""

    @staticmethod
    def forward(ctx, kernel, dl, at, du, bt, ct, h0, keep, skip, want_states, times_delta):
        lanes, steps, inner = dl.shape
        none = _none()
        y, hlast = torch.empty_like(dl), torch.empty_like(h0)
        checkpoints = dl.new_empty(-(-steps // SEGMENT), lanes, *at.shape) if ctx is not None else none
        states = dl.new_empty(lanes, steps, *h0.shape[1:]) if want_states else None
        keep, skip = _or(keep, none), _or(skip, none)
        outputs = (y, hlast, checkpoints, _or(states, none))
        kernel.forward(dl, at, du, bt, ct, keep, skip, h0, *outputs, SEGMENT, times_delta)
        if ctx is not None:
            ctx.save_for_backward(dl, at, du, bt, ct, keep, skip, checkpoints)
            ctx.kernel, ctx.segment, ctx.times_delta = kernel, SEGMENT, times_delta
        return y, hlast, states

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, ghlast, gstates):
        dl, at, du, bt, ct, keep, skip, checkpoints = ctx.saved_tensors
        none = _none()
        g_dl, g_du, g_bt, g_ct = (torch.empty_like(t) for t in (dl, du, bt, ct))
        g_h0 = dl.new_empty(dl.shape[0], at.shape[1], at.shape[0])
        # dA and d skip per lane ([B, N, D], [B, D]): summed below over lanes, in a fixed order
        g_at, g_skip = dl.new_empty(dl.shape[0], *at.shape), (dl.new_empty(dl.shape[::2]) if skip.numel() else none)
        gy = gy.contiguous() if gy is not None else torch.zeros_like(dl)
        grads = [none if g is None else g.contiguous() for g in (ghlast, gstates)]
        ctx.kernel.backward(
            dl, at, du, bt, ct, keep, skip, checkpoints, gy, *grads,
            g_dl, g_at, g_du, g_bt, g_ct, g_h0, g_skip, ctx.segment, ctx.times_delta,
        )  # fmt: skip
        g_skip = g_skip.sum(0) if skip.numel() else None
        return None, g_dl, g_at.sum(0), g_du, g_bt, g_ct, g_h0, None, g_skip, None, None


def _compiled_scan(kernel, delta, a_matrix, du, b, c, h0, reset, keep_states, u, skip):
    """:func:`selective_scan` through the C++ kernel."""
    keep = (~reset).to(delta.dtype).contiguous() if reset is not None and bool(reset.any()) else None
    times_delta = u is not None
    du = (u if times_delta else du).contiguous()
    args = (delta.contiguous(), a_matrix.t().contiguous(), du, b.contiguous(), c.contiguous(), h0.contiguous())
    args = (*args, keep, skip.contiguous() if skip is not None else None, keep_states, times_delta)
    tensors = (delta, a_matrix, du, b, c, h0, skip)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        y, hlast, states = _CompiledScan.apply(kernel, *args)
    else:
        y, hlast, states = _CompiledScan.forward(None, kernel, *args)
    return y, hlast, (states.flatten(2) if states is not None else None)


def selective_scan(
    delta: torch.Tensor,
    a_matrix: torch.Tensor,
    du: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    h0: torch.Tensor,
    reset: torch.Tensor | None = None,
    keep_states: bool = False,
    *,
    u: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """All outputs of ``h_t = exp(delta_t A) * h_{t-1} + B_t (x) du_t``, ``y_t = C_t . h_t``.

    Args:
        delta: ``[B, T, D]`` step sizes (``> 0``); ``a_matrix``: ``[D, N]`` (``<= 0``).
        du: ``[B, T, D]`` ``delta * u``; ``b``, ``c``: ``[B, T, N]`` input and output maps.
        h0: ``[B, D, N]`` the state before the first frame.
        reset: ``[B, T]`` bool or None: a lane's state is zeroed just before that frame.
        keep_states: also return every state.
        u: ``[B, T, D]`` instead of ``du`` (which is then None): ``du = delta * u`` is formed inside,
            where the kernel saves its own pass over memory (forward and backward).
        skip: ``[D]`` or None, with ``u`` only: ``y_t += skip * u_t`` (Mamba's ``D`` term), fused likewise.

    Returns ``(y [B, T, D], h_T [B, D, N], h [B, T, D * N] or None)``, differentiable in
    every tensor input (through one autograd node when any needs a gradient).
    """
    if (u is None) == (du is None) or (skip is not None and u is None):
        raise ValueError("selective_scan takes du or u (not both), and skip only with u")
    kernel = _compiled(delta)
    if kernel is not None:
        return _compiled_scan(kernel, delta, a_matrix, du, b, c, h0, reset, keep_states, u, skip)
    if u is not None:
        du = delta * u
    lanes, steps, inner = delta.shape
    keep, cuts = None, frozenset()
    if reset is not None:
        cuts = frozenset(torch.nonzero(reset.any(0)).flatten().tolist())
        keep = (~reset).t().to(delta.dtype).contiguous()
    # time-major, state as [lanes, N, D]: each frame is one contiguous slab per lane block
    args = (
        delta.transpose(0, 1).contiguous(),
        a_matrix.t().contiguous(),
        du.transpose(0, 1).contiguous(),
        b.transpose(0, 1).contiguous(),
        c.transpose(0, 1).contiguous(),
        h0.transpose(1, 2).contiguous(),
    )
    if torch.is_grad_enabled() and any(t.requires_grad for t in (delta, a_matrix, du, b, c, h0)):
        y, hlast, states = _SelectiveScan.apply(*args, keep, cuts, keep_states)
    else:
        dl, at, dut, bt, ct, h0t = args
        y, hlast = dl.new_empty(steps, lanes, inner), torch.empty_like(h0t)
        states = dl.new_empty(steps, *h0t.shape) if keep_states else None
        block = _block_lanes(lanes, at.numel(), dl.device)
        _run(dl, at, dut, bt, ct, keep, cuts, h0t, block, hlast, y, None, states)
    if states is not None:  # [T, B, N, D] -> [B, T, D * N], D-major like the state
        states = states.permute(1, 0, 3, 2).reshape(lanes, steps, -1)
    y = y.transpose(0, 1)
    if skip is not None:
        y = y + skip * u
    return y, hlast.transpose(1, 2), states
