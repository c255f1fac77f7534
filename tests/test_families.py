"""The minimal gated RNNs (``mingru``, ``minlstm``) and the selective SSM (``mamba``): the contract,
every scan against the frame loop, the carried convolution window, and hand-written references."""

from __future__ import annotations

import logging
import os

import pytest
import torch
import torch.nn.functional as F

from nrstream.errors import ConfigError
from nrstream.plugin.registry import get_registry, reload_plugins
from nrstream.testing import check_architecture

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ["mingru", "minlstm", "mamba"]
SMALL = {"mingru": {"hidden_size": 8}, "minlstm": {"hidden_size": 8}, "mamba": {"hidden_size": 8, "d_state": 4}}
SCANS = ["log", "parallel", "sequential"]


@pytest.fixture(autouse=True)
def family_plugins(monkeypatch):
    monkeypatch.setenv("NRSTREAM_LOAD_PLUGINS", "minimal,mamba,recurrent,toy")
    reload_plugins()
    yield
    monkeypatch.delenv("NRSTREAM_LOAD_PLUGINS")
    reload_plugins()


def build(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_registry().create("architecture", name, input_size=5, num_classes=3, **{**SMALL[name], **options})


def test_registered_by_their_plugins():
    registry = get_registry()
    assert registry.get("architecture", "mingru").plugin == "minimal"
    assert registry.get("architecture", "minlstm").plugin == "minimal"
    assert registry.get("architecture", "mamba").plugin == "mamba"


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("name", FAMILIES)
def test_conformance(name, scan):
    """The kit in float64 to 1e-9, two layers, blocks of 5 frames (so the 12-frame check crosses block edges)."""
    factory = get_registry().get("architecture", name).factory
    options = {**SMALL[name], "num_layers": 2, "scan": scan, "chunk_size": 5}
    check_architecture(factory, options=options, name=f"{name}-{scan}")


@pytest.mark.parametrize("name", FAMILIES)
def test_conformance_in_float32(name):
    factory = get_registry().get("architecture", name).factory
    check_architecture(factory, options={**SMALL[name], "scan": "log"}, dtype=torch.float32, name=name)


def run_in_chunks(model, x, reset, size):
    state, outs = model.initial_state(x.shape[0], "cpu"), []
    for begin in range(0, x.shape[1], size):
        logits, state = model(x[:, begin : begin + size], state, reset[:, begin : begin + size])
        outs.append(logits)
    return torch.cat(outs, 1), state


@pytest.mark.parametrize("name", FAMILIES)
def test_every_scan_and_chunking_gives_the_frame_loop(name):
    """30 frames, resets mid-block (frame 7, lane 0), on a chunk boundary (frame 9, lane 1) and at
    frame 0 (lane 2): chunks of 4 with the log-space scan in blocks of 3 == the frame loop, frame by frame."""
    torch.manual_seed(1)
    x = torch.randn(3, 30, 5, dtype=torch.float64)
    reset = torch.zeros(3, 30, dtype=torch.bool)
    reset[0, 7] = reset[1, 9] = reset[2, 0] = reset[0, 22] = True
    reference = build(name, num_layers=2, scan="sequential").double().eval()
    want, want_state = run_in_chunks(reference, x, reset, 1)
    for scan in SCANS:
        model = build(name, num_layers=2, scan=scan, chunk_size=3).double().eval()
        for size in (4, 30):
            with torch.no_grad():
                got, state = run_in_chunks(model, x, reset, size)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
            flat = state if isinstance(state, tuple) else (state,)
            flat_want = want_state if isinstance(want_state, tuple) else (want_state,)
            for a, b in zip(flat, flat_want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


# --- hand-written references --------------------------------------------------------------


def g(v: torch.Tensor) -> torch.Tensor:
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_minimal_rnns_are_the_papers_equations(name):
    """One layer against Feng et al.'s equations written as a plain loop, from a non-zero state."""
    model = build(name, num_layers=1, scan="log").double().eval()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    start = torch.rand(2, 8, dtype=torch.float64)
    h, expected = start, []
    projected = model.layers[0](x)
    for t in range(9):
        if name == "mingru":
            k, candidate = projected[:, t].chunk(2, -1)
            z = torch.sigmoid(k)
            h = (1 - z) * h + z * g(candidate)
        else:
            kf, ki, candidate = projected[:, t].chunk(3, -1)
            f, i = torch.sigmoid(kf), torch.sigmoid(ki)
            h = f / (f + i) * h + i / (f + i) * g(candidate)
        expected.append(h)
    aux: dict = {}
    with torch.no_grad():
        logits, state = model(x, start[:, None], aux=aux)
    torch.testing.assert_close(aux["hidden"], torch.stack(expected, 1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state[:, 0], expected[-1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logits, model.readout(torch.stack(expected, 1)), rtol=1e-10, atol=1e-12)


def mamba_reference(model, x: torch.Tensor) -> torch.Tensor:
    """Mamba from zeros over a whole sequence, the textbook way: torch's padded ``conv1d`` and a frame loop."""
    y = model.encoder(x)
    for layer in model.layers:
        u, z = layer.in_proj(layer.norm(y)).chunk(2, -1)
        k = layer.conv_weight.shape[1]
        conv = F.conv1d(
            u.transpose(1, 2), layer.conv_weight[:, None], layer.conv_bias, padding=k - 1, groups=layer.inner
        )
        u = F.silu(conv[..., : x.shape[1]].transpose(1, 2))
        dt, b, c = layer.x_proj(u).split([layer.dt_rank, layer.d_state, layer.d_state], -1)
        delta = F.softplus(layer.dt_proj(dt))
        a = -torch.exp(layer.A_log)
        h = torch.zeros(x.shape[0], layer.inner, layer.d_state, dtype=x.dtype)
        out = []
        for t in range(x.shape[1]):
            h = torch.exp(delta[:, t, :, None] * a) * h + delta[:, t, :, None] * b[:, t, None, :] * u[:, t, :, None]
            out.append((h * c[:, t, None, :]).sum(-1) + layer.D * u[:, t])
        y = y + layer.out_proj(torch.stack(out, 1) * F.silu(z))
    return model.readout(model.norm(y))


@pytest.mark.parametrize("scan", SCANS)
def test_mamba_is_the_textbook_block(scan):
    model = build("mamba", num_layers=2, scan=scan, chunk_size=4).double().eval()
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    with torch.no_grad():
        logits, _ = model(x, model.initial_state(3, "cpu"))
        torch.testing.assert_close(logits, mamba_reference(model, x), rtol=1e-10, atol=1e-10)


def test_mamba_carries_the_last_inputs_as_its_convolution_window():
    """After a chunk the window holds the last d_conv - 1 pre-convolution inputs, oldest first; a reset in the
    last d_conv - 1 frames hides the inputs before it (they are zeros in the window)."""
    model = build("mamba", num_layers=1, d_conv=4).double().eval()
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    reset = torch.zeros(2, 6, dtype=torch.bool)
    reset[1, 4] = True
    with torch.no_grad():
        _, (window, _) = model(x, model.initial_state(2, "cpu"), reset)
        layer = model.layers[0]
        u, _ = layer.in_proj(layer.norm(model.encoder(x))).chunk(2, -1)
    torch.testing.assert_close(window[0, 0], u[0, 3:].T, rtol=0, atol=0)
    torch.testing.assert_close(window[1, 0, :, 1:], u[1, 4:].T, rtol=0, atol=0)
    assert torch.equal(window[1, 0, :, 0], torch.zeros(layer.inner, dtype=torch.float64))


def test_mamba_convolution_window_crosses_chunk_boundaries():
    """Chunks of 2 frames with d_conv = 4: every output needs inputs from earlier chunks, and equals the whole run."""
    model = build("mamba", num_layers=2, d_conv=4).double().eval()
    x = torch.randn(2, 10, 5, dtype=torch.float64)
    no_reset = torch.zeros(2, 10, dtype=torch.bool)
    with torch.no_grad():
        whole = mamba_reference(model, x)
        chunked, _ = run_in_chunks(model, x, no_reset, 2)
    torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-10)


def scan_case(lanes=3, steps=7, inner=3, states=4, seed=0):
    """A small selective-scan problem in float64: ``delta, A, du, b, c, h0`` (all requiring gradients) and resets."""
    g = torch.Generator().manual_seed(seed)
    delta = F.softplus(torch.randn(lanes, steps, inner, generator=g, dtype=torch.float64))
    a_matrix = -torch.rand(inner, states, generator=g, dtype=torch.float64) * 2 - 0.1
    du = torch.randn(lanes, steps, inner, generator=g, dtype=torch.float64)
    b, c = (torch.randn(lanes, steps, states, generator=g, dtype=torch.float64) for _ in range(2))
    h0 = torch.randn(lanes, inner, states, generator=g, dtype=torch.float64)
    reset = torch.zeros(lanes, steps, dtype=torch.bool)
    reset[0, 4] = reset[2, 0] = reset[1, steps - 1] = True
    return [t.requires_grad_() for t in (delta, a_matrix, du, b, c, h0)], reset


@pytest.fixture
def small_scan_blocks(monkeypatch):
    """Blocks of 2 lanes and segments of 3 frames, so a 3-lane, 7-frame case crosses both."""
    from nrstream_plugins.architectures import _selective_scan

    monkeypatch.setattr(_selective_scan, "BLOCK_NUMBERS", 2 * 3 * 4)
    monkeypatch.setattr(_selective_scan, "SEGMENT", 3)


@pytest.fixture(scope="module")
def compiled_scan():
    """The C++ kernel, built once per session (cached by torch across sessions); skipped without a compiler."""
    import shutil

    from nrstream_plugins.architectures import _scan_kernel

    if _scan_kernel.disabled():
        pytest.skip("NRSTREAM_NO_CPP is set: the C++ selective scan is not built")
    if shutil.which(os.environ.get("CXX", "c++")) is None or shutil.which("ninja") is None:
        pytest.skip("no C++ compiler (g++) or no ninja on PATH: the selective scan runs its PyTorch loop")
    if not _scan_kernel.python_headers():
        pytest.skip("no Python.h (python3-dev): the selective scan runs its PyTorch loop")
    kernel = _scan_kernel.kernel()
    assert kernel is not None, "g++, ninja and Python.h are there, yet the selective scan kernel did not build (log)"
    return kernel


@pytest.fixture(params=["cpp", "python"])
def scan_impl(request, monkeypatch):
    """Each scan test twice: through the compiled kernel and through the PyTorch loop (``NRSTREAM_NO_CPP=1``)."""
    if request.param == "cpp":
        request.getfixturevalue("compiled_scan")
        monkeypatch.delenv("NRSTREAM_NO_CPP", raising=False)
    else:
        monkeypatch.setenv("NRSTREAM_NO_CPP", "1")
    return request.param


@pytest.mark.usefixtures("small_scan_blocks", "scan_impl")
def test_selective_scan_equals_the_frame_loop_and_its_autograd():
    """Outputs, final state, every state and all six gradients of the fused scan == MambaLayer's frame loop
    under autograd, with resets mid-sequence, at frame 0 and on the last frame."""
    from nrstream_plugins.architectures._selective_scan import selective_scan
    from nrstream_plugins.architectures.mamba import MambaLayer

    inputs, reset = scan_case()
    delta, a_matrix, du, b, c, h0 = inputs
    got = selective_scan(delta, a_matrix, du, b, c, h0, reset, keep_states=True)
    u = du / delta  # the frame loop takes u and forms delta * u itself
    want = MambaLayer._steps(delta, a_matrix, u, b, c, h0, reset, True)
    weights = [torch.randn_like(t) for t in want]
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, got, strict=True)), inputs)
    expected = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, want, strict=True)), inputs)
    for name, a, e in zip(["delta", "A", "du", "b", "c", "h0"], grads, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")


@pytest.mark.usefixtures("small_scan_blocks", "scan_impl")
@pytest.mark.parametrize("keep_states", [False, True])
def test_selective_scan_gradcheck(keep_states):
    """torch.autograd.gradcheck in float64: the hand-written backward is the derivative of the forward."""
    from nrstream_plugins.architectures._selective_scan import selective_scan

    inputs, reset = scan_case(steps=5, seed=1)

    def outputs(*args):
        y, h_last, states = selective_scan(*args, reset, keep_states=keep_states)
        return (y, h_last, states) if keep_states else (y, h_last)

    assert torch.autograd.gradcheck(outputs, inputs)


@pytest.mark.usefixtures("scan_impl")
def test_mamba_sequential_scan_trains_like_the_parallel_scan():
    """Whole-model gradients (two layers, resets, a loss on ``aux["hidden"]`` too) of ``scan: sequential``
    (the fused scan) equal those of ``scan: parallel`` (plain autograd) in float64."""
    torch.manual_seed(2)
    x = torch.randn(3, 13, 5, dtype=torch.float64)
    reset = torch.zeros(3, 13, dtype=torch.bool)
    reset[0, 5] = reset[2, 9] = True
    grads = {}
    for scan in ("sequential", "parallel"):
        model = build("mamba", num_layers=2, scan=scan, chunk_size=4).double().train()
        state = tuple(s + 0.1 for s in model.initial_state(3, "cpu"))
        aux: dict = {}
        logits, (window, h) = model(x, state, reset, aux=aux)
        loss = logits.square().mean() + aux["hidden"].square().mean() + h.square().mean() + window.mean()
        loss.backward()
        grads[scan] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, want in grads["parallel"].items():
        torch.testing.assert_close(grads["sequential"][name], want, rtol=1e-9, atol=1e-12, msg=name)


def scan_outputs_and_gradients(inputs, reset, keep_states, form="du"):
    """Every output of the selective scan and the gradients of all its inputs under random output weights.

    ``form="u"``: the third input is ``u`` (``du = delta * u`` formed inside) and a seventh, ``skip [D]``, is added.
    """
    from nrstream_plugins.architectures._selective_scan import selective_scan

    if form == "u":
        delta, a_matrix, u, b, c, h0, skip = inputs
        outputs = selective_scan(delta, a_matrix, None, b, c, h0, reset, keep_states, u=u, skip=skip)
    else:
        outputs = selective_scan(*inputs, reset, keep_states=keep_states)
    outputs = [t for t in outputs if t is not None]
    g = torch.Generator().manual_seed(7)
    weights = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in outputs]
    grads = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, outputs, strict=True)), inputs)
    return [t.detach() for t in outputs], grads


@pytest.mark.parametrize("form", ["du", "u"])
@pytest.mark.parametrize("keep_states", [False, True])
@pytest.mark.parametrize("segment", [3, 10])
def test_compiled_scan_equals_the_pytorch_loop(compiled_scan, monkeypatch, keep_states, segment, form):
    """The C++ kernel's outputs and gradients == the PyTorch loop's (float64, 1e-10), with resets at frame 0,
    mid-sequence and on the last frame, segments that do or do not divide the length, and no resets at all;
    given ``du``, or ``u`` and the skip term fused."""
    from nrstream_plugins.architectures import _selective_scan

    monkeypatch.setattr(_selective_scan, "SEGMENT", segment)
    for reset_case in ("resets", "none"):
        inputs, reset = scan_case(lanes=4, steps=23, inner=5, states=3, seed=4)
        if form == "u":
            inputs.append(torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(9)))
            inputs[-1].requires_grad_()
        reset = reset if reset_case == "resets" else None
        results = {}
        for impl in ("cpp", "python"):
            monkeypatch.setenv("NRSTREAM_NO_CPP", "1" if impl == "python" else "0")
            results[impl] = scan_outputs_and_gradients(inputs, reset, keep_states, form)
        (outputs, grads), (want_outputs, want_grads) = results["cpp"], results["python"]
        for got, want in zip(outputs, want_outputs, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        names = ["delta", "A", "du" if form == "du" else "u", "b", "c", "h0", "skip"][: len(inputs)]
        for name, got, want in zip(names, grads, want_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"gradient of {name} ({reset_case})")


def test_selective_scan_takes_du_or_u():
    from nrstream_plugins.architectures._selective_scan import selective_scan

    (delta, a_matrix, du, b, c, h0), _ = scan_case()
    with pytest.raises(ValueError, match="takes du or u"):
        selective_scan(delta, a_matrix, du, b, c, h0, u=du)
    with pytest.raises(ValueError, match="skip only with u"):
        selective_scan(delta, a_matrix, du, b, c, h0, skip=delta[0, 0])


@pytest.mark.parametrize("isa", ["0", "3"])
def test_every_instruction_set_of_the_kernel_equals_the_pytorch_loop(compiled_scan, isa):
    """The baseline x86-64 and AVX2 copies of the loops (``NRSTREAM_SCAN_ISA`` caps the one picked, once per
    process: hence a child process) give the PyTorch loop's numbers too; the tests above run the best one."""
    import subprocess
    import sys

    script = """
import os, torch, torch.nn.functional as F
from nrstream_plugins.architectures._selective_scan import selective_scan
torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(0)
delta, u = F.softplus(torch.randn(3, 23, 21, generator=g)), torch.randn(3, 23, 21, generator=g)
a_matrix = -torch.rand(21, 4, generator=g) - 0.1
b, c = torch.randn(3, 23, 4, generator=g), torch.randn(3, 23, 4, generator=g)
h0, skip = torch.randn(3, 21, 4, generator=g), torch.randn(21, generator=g)
reset = torch.zeros(3, 23, dtype=torch.bool)
reset[1, 9] = True
inputs = [t.requires_grad_() for t in (delta, a_matrix, u, b, c, h0, skip)]
results = []
for flag in ("0", "1"):
    os.environ["NRSTREAM_NO_CPP"] = flag
    y, h_last, h = selective_scan(delta, a_matrix, None, b, c, h0, reset, True, u=u, skip=skip)
    loss = y.square().sum() + h_last.sum() + h.sin().sum()
    results.append([y, h_last, h, *torch.autograd.grad(loss, inputs)])
for got, want in zip(*results, strict=True):
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
print("same")
"""
    env = {**os.environ, "NRSTREAM_SCAN_ISA": isa}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr[-2000:]


def test_compiled_scan_trains_mamba_like_the_pytorch_loop(compiled_scan, monkeypatch):
    """One float32 AdamW step of a two-layer mamba with resets: the same loss and parameters with the kernel as
    with the PyTorch loop, to float32 rounding."""
    torch.manual_seed(5)
    x = torch.randn(6, 30, 5)
    target = torch.randint(0, 3, (6, 30))
    reset = torch.zeros(6, 30, dtype=torch.bool)
    reset[1, 12] = reset[4, 0] = True
    after = {}
    for impl in ("cpp", "python"):
        monkeypatch.setenv("NRSTREAM_NO_CPP", "1" if impl == "python" else "0")
        model = build("mamba", num_layers=2, hidden_size=16, d_state=8, scan="sequential").train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        logits, _ = model(x, model.initial_state(6, "cpu"), reset)
        loss = F.cross_entropy(logits.reshape(-1, 3), target.flatten())
        loss.backward()
        optimizer.step()
        after[impl] = (loss.detach(), {n: p.detach().clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(after["cpp"][0], after["python"][0], rtol=1e-6, atol=1e-6)
    for name, want in after["python"][1].items():
        torch.testing.assert_close(after["cpp"][1][name], want, rtol=1e-5, atol=1e-6, msg=name)


def test_no_cpp_selects_the_pytorch_loop_and_says_so_once(monkeypatch, caplog):
    from nrstream_plugins.architectures import _scan_kernel

    monkeypatch.setattr(_scan_kernel, "_state", {})
    monkeypatch.setenv("NRSTREAM_NO_CPP", "1")
    with caplog.at_level(logging.INFO, logger="nrstream.plugins.selective_scan"):
        assert _scan_kernel.kernel() is None
        assert _scan_kernel.kernel() is None
    assert [r.getMessage() for r in caplog.records if r.name == "nrstream.plugins.selective_scan"] == [
        "NRSTREAM_NO_CPP is set: the selective scan runs its PyTorch loop (training is slower)"
    ]


@pytest.mark.parametrize("compiler", ["missing", "false"])
def test_a_failed_build_falls_back_to_the_pytorch_loop(monkeypatch, caplog, tmp_path, compiler):
    """No working compiler (CXX names none, or ``false``; a fresh extensions folder): one notice, and the scan
    still runs, with the PyTorch loop's numbers."""
    from nrstream_plugins.architectures import _scan_kernel
    from nrstream_plugins.architectures._selective_scan import selective_scan

    monkeypatch.setattr(_scan_kernel, "_state", {})
    monkeypatch.delenv("NRSTREAM_NO_CPP", raising=False)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler") if compiler == "missing" else "false")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    inputs, reset = scan_case()
    with caplog.at_level(logging.INFO, logger="nrstream.plugins.selective_scan"):
        y, h_last, _ = selective_scan(*inputs, reset)
        selective_scan(*inputs, reset)
    assert _scan_kernel._state == {"module": None}
    ours = [r for r in caplog.records if r.name == "nrstream.plugins.selective_scan"]
    notices = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(notices) == 1, ours
    assert notices[0].startswith("the selective scan's C++ kernel did not build (")
    assert notices[0].endswith(
        "): mamba runs its PyTorch loop on the CPU, with the same numbers but slower training "
        "(set NRSTREAM_NO_CPP=1 to skip the build)"
    )
    if compiler == "missing":
        assert f"(no C++ compiler: '{tmp_path}/no-such-compiler' is not on PATH)" in notices[0]
    monkeypatch.setenv("NRSTREAM_NO_CPP", "1")
    want = selective_scan(*inputs, reset)
    torch.testing.assert_close((y, h_last), want[:2], rtol=0, atol=0)


def test_scan_helpers_agree_with_the_loop():
    from nrstream_plugins.architectures._common import chunked_scan, linear_scan, log_space_scan

    torch.manual_seed(3)
    log_a = -torch.rand(3, 17, 6, dtype=torch.float64) * 3
    b = torch.randn(3, 17, 6, dtype=torch.float64)
    h0 = torch.randn(3, 6, dtype=torch.float64)
    want = linear_scan(log_a.exp(), b, h0, "sequential")
    torch.testing.assert_close(log_space_scan(log_a, b, h0), want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        log_space_scan(log_a, b.abs(), h0, positive=True), linear_scan(log_a.exp(), b.abs(), h0, "sequential")
    )
    reset = torch.rand(3, 17) < 0.2
    cut = torch.where(reset[..., None], torch.zeros_like(log_a), log_a.exp())
    want = linear_scan(cut, b, h0, "sequential")
    for method in SCANS:
        got = chunked_scan(log_a, b, h0, reset, chunk_size=4, method=method)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_gradients_are_finite_through_zero_inputs():
    """Exact zeros enter the log-space scan as log(tiny): no NaN gradients (log 0 would give them)."""
    from nrstream_plugins.architectures._common import log_space_scan

    log_a = (-torch.rand(2, 9, 4, dtype=torch.float64)).requires_grad_()
    b = torch.zeros(2, 9, 4, dtype=torch.float64, requires_grad=True)
    log_space_scan(log_a, b, torch.zeros(2, 4, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(log_a.grad).all() and torch.isfinite(b.grad).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_aux_hidden(name):
    model = build(name).eval()
    aux: dict = {}
    model(torch.randn(2, 7, 5), model.initial_state(2, "cpu"), aux=aux)
    width = model.inner * model.d_state if name == "mamba" else 8
    assert aux["hidden"].shape == (2, 7, width)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mingru", {"hidden_size": 0}, "hidden_size.*0"),
        ("minlstm", {"num_layers": -1}, "num_layers.*-1"),
        ("mingru", {"scan": "fft"}, "scan.*'fft'"),
        ("minlstm", {"chunk_size": 0}, "chunk_size.*0"),
        ("mamba", {"d_state": 0}, "d_state.*0"),
        ("mamba", {"d_conv": 1}, "d_conv.*1"),
        ("mamba", {"expand": 1.5}, "expand.*1.5"),
        ("mamba", {"dt_rank": "big"}, "dt_rank.*'big'"),
        ("mamba", {"dt_min": 0.5, "dt_max": 0.1}, "dt_min.*0.5"),
        ("mamba", {"norm": "batch"}, "norm.*'batch'"),
        ("mamba", {"dropout": 1.0}, "dropout.*1.0"),
    ],
)
def test_bad_options_name_the_value(name, options, message):
    with pytest.raises(ConfigError, match=message) as info:
        build(name, **options)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", FAMILIES)
def test_learns_toy_well_above_chance(name):
    from test_architectures import toy_accuracy

    from nrstream.data.datasets import load_dataset

    dataset = load_dataset("toy", seed=0)
    torch.manual_seed(0)
    extra = {"hidden_size": 32, "num_layers": 1} if name != "mamba" else {"hidden_size": 16, "d_state": 4}
    model = get_registry().create(
        "architecture", name, input_size=dataset.feature_size, num_classes=dataset.num_classes, **extra
    )
    accuracy = toy_accuracy(model, dataset, 60, 1e-2)
    chance = 1 / dataset.num_classes
    assert accuracy > chance + 0.5 * (1 - chance), f"{name}: toy accuracy {accuracy:.2f}"


def test_plugins_command_lists_them_with_their_options(capsys):
    from nrstream.cli import main

    assert main(["plugins", "--options"]) == 0
    out = capsys.readouterr().out
    assert "    architecture: mingru, minlstm" in out
    assert "        mingru: hidden_size=128, num_layers=1, dropout=0.0, chunk_size=64, scan=auto" in out
    assert (
        "        mamba: hidden_size=64, num_layers=2, dropout=0.0, d_state=16, d_conv=4, expand=2, dt_rank=auto" in out
    )
    from nrstream.plugin.registry import describe_plugins

    (entry,) = [p for p in describe_plugins() if p["name"] == "mamba"]
    assert entry["options"]["architecture"]["mamba"]["d_state"] == 16
    assert "input_size" not in entry["options"]["architecture"]["mamba"]  # filled by nrstream, not an option
