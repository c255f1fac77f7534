"""Exported streaming steps equal eager PyTorch over a long stream, the state carried by the caller."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nrstream.deploy.export import ExportError, export_model, flatten_state
from nrstream.plugin.registry import get_registry

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAMES = 10_000
#: (architecture, format) pairs that export; the other two raise ExportError saying why. ``mingru``,
#: ``minlstm`` and ``mamba`` export as the scripted frame loop ("looped"): their one-frame step is elementwise
#: maths, linear maps and (``mamba``) the convolution window as shifted products.
EXPORTABLE = [
    ("rnn", "torchscript"),
    ("rnn", "onnx"),
    ("gru", "torchscript"),
    ("gru", "onnx"),
    ("lstm", "torchscript"),
    ("lstm", "onnx"),
    ("ssm", "torchscript"),
    ("snn", "onnx"),
    ("mingru", "torchscript"),
    ("mingru", "onnx"),
    ("minlstm", "torchscript"),
    ("minlstm", "onnx"),
    ("mamba", "torchscript"),
    ("mamba", "onnx"),
]


def tiny(arch: str) -> torch.nn.Module:
    """Hidden size 8, 6 features, 5 classes; ``ssm`` with one LRU layer (its state keeps its ``[B, L, N, 2]`` form).

    Small, because a frame's cost here is the interpreter's, not the arithmetic's: the
    ``ssm``'s scripted loop costs about 0.25 ms per frame and layer, and the test feeds
    20,000 frames.
    """
    torch.manual_seed(0)
    extra = {"num_layers": 1} if arch in ("ssm", "mamba") else {}
    if arch == "mamba":  # two states (convolution window, SSM state), both exported
        extra["d_state"] = 4
    return get_registry().create("architecture", arch, input_size=6, num_classes=5, hidden_size=8, **extra).eval()


def loader(fmt: str, path):
    if fmt == "torchscript":
        graph = torch.jit.load(str(path))

        def run(x, state):
            with torch.no_grad():
                return list(graph(x, *state))

        return run
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(x, state):
        out = session.run(None, {n: t.numpy() for n, t in zip(names, [x, *state], strict=True)})
        return [torch.from_numpy(o) for o in out]

    return run


@pytest.mark.parametrize(("arch", "fmt"), EXPORTABLE)
def test_exported_equals_eager_over_a_long_stream(tmp_path, arch, fmt):
    """10,000 frames fed in chunks of 1 and of 100, the state carried by the caller from call to call.

    The reference is eager PyTorch over the whole stream in one call (its state carried
    inside): every frame's logits and the final state agree within 1e-4.
    """
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="pip install 'nrstream[export]'")
    model = tiny(arch)
    out = tmp_path / f"{arch}.{fmt}"
    exported = export_model(model, fmt, out, label=arch)
    side = json.loads(exported.sidecar.read_text())
    assert side["inputs"]["frames"] == ["B", "T", 6] and side["outputs"]["logits"] == ["B", "T", 5]
    run = loader(fmt, out)
    x = torch.randn(1, FRAMES, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, final = model(x, model.initial_state(1, "cpu"))
    final = flatten_state(final)
    for chunk in (1, 100):
        state = [torch.zeros(1, *s[1:]) for s in exported.state_shapes]
        got = []
        for i in range(0, FRAMES, chunk):
            logits, *state = run(x[:, i : i + chunk], state)
            got.append(logits)
        got = torch.cat(got, 1)
        assert got.shape == (1, FRAMES, 5) and len(state) == len(final)
        worst = float((got - want).abs().max())
        worst_state = max(float((a - b).abs().max()) for a, b in zip(state, final, strict=True))
        assert worst <= 1e-4 and worst_state <= 1e-4, (arch, fmt, chunk, worst, worst_state)


@pytest.mark.parametrize(
    ("arch", "fmt", "reason"),
    [("ssm", "onnx", "complex-valued"), ("snn", "torchscript", "autograd.Function")],
)
def test_what_cannot_export_says_why(tmp_path, arch, fmt, reason):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "model.bin"
    with pytest.raises(ExportError, match=reason) as info:
        export_model(tiny(arch), fmt, out, label=arch)
    assert "\n" not in str(info.value) and arch in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unknown_format(tmp_path):
    with pytest.raises(ExportError, match="choose one of onnx, torchscript"):
        export_model(tiny("gru"), "tflite", tmp_path / "m")


def test_state_shapes_in_the_sidecar(tmp_path):
    model = tiny("lstm")
    exported = export_model(model, "torchscript", tmp_path / "m.pt", sidecar={"class_names": list("abcde")})
    side = json.loads((tmp_path / "m.pt.json").read_text())
    init = flatten_state(model.initial_state(3, "cpu"))
    assert [side["inputs"][f"state_{i}"][1:] for i in range(len(init))] == [list(t.shape[1:]) for t in init]
    assert side["class_names"] == list("abcde") and exported.how == "direct"
    assert np.all([s[0] == "B" for s in exported.state_shapes])


def test_an_existing_file_is_replaced_only_by_a_successful_export(tmp_path):
    """An earlier export (nrstream's, recorded in the folder's manifest) survives a failed one."""
    out, side = tmp_path / "m.pt", tmp_path / "m.pt.json"
    export_model(tiny("rnn"), "torchscript", out, label="rnn")
    older, older_side = out.read_bytes(), side.read_text()
    with pytest.raises(ExportError, match="autograd.Function"):
        export_model(tiny("snn"), "torchscript", out, label="snn")
    assert out.read_bytes() == older and side.read_text() == older_side
    export_model(tiny("gru"), "torchscript", out, label="gru")
    graph = torch.jit.load(str(out))  # the new model, whole
    assert graph(torch.zeros(1, 3, 6), torch.zeros(1, 1, 8))[0].shape == (1, 3, 5)
    assert json.loads(side.read_text())["inputs"]["frames"] == ["B", "T", 6]
    # no temporary files left; the manifest records what nrstream wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nrstream-outputs.json", "m.pt", "m.pt.json"]


@pytest.mark.parametrize(("arch", "fmt"), EXPORTABLE)
def test_blocks_of_k_frames_equal_frame_by_frame(tmp_path, arch, fmt):
    """A device that calls the exported model on k = 4 or 10 frames at a time (the state carried) gets, frame
    for frame, the logits and final state of one call per frame (k = 1, today's contract)."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="pip install 'nrstream[export]'")
    model = tiny(arch)
    exported = export_model(model, fmt, tmp_path / f"{arch}.{fmt}", label=arch)
    run = loader(fmt, exported.path)
    x = torch.randn(1, 400, 6, generator=torch.Generator().manual_seed(2))

    def feed(k: int):
        state, got = [torch.zeros(1, *s[1:]) for s in exported.state_shapes], []
        for i in range(0, x.shape[1], k):
            logits, *state = run(x[:, i : i + k], state)
            got.append(logits)
        return torch.cat(got, 1), state

    one, one_state = feed(1)
    for k in (4, 10):
        got, state = feed(k)
        worst = max(
            [float((got - one).abs().max())]
            + [float((a - b).abs().max()) for a, b in zip(state, one_state, strict=True)]
        )
        assert got.shape == one.shape and worst <= 1e-5, (arch, fmt, k, worst)


def test_onnx_io_binding_carries_the_state_like_run(tmp_path):
    """onnxruntime's IO binding (inputs and outputs bound once, the state ping-ponged between two buffers, as
    ``benchmarks/latency.py`` times it) gives what ``InferenceSession.run`` gives, block after block."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="pip install 'nrstream[export]'")
    model = tiny("gru")
    exported = export_model(model, "onnx", tmp_path / "gru.onnx", label="gru")
    run = loader("onnx", exported.path)
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    k = 10
    frames, logits = np.zeros((1, k, 6), np.float32), np.zeros((1, k, 5), np.float32)
    sets = [[np.zeros((1, *s[1:]), np.float32) for s in exported.state_shapes] for _ in range(2)]
    inputs, outputs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]

    def binding(src, dst):
        b = session.io_binding()
        wrap = onnxruntime.OrtValue.ortvalue_from_numpy
        for name, arr in zip(inputs, [frames, *src], strict=True):
            b.bind_ortvalue_input(name, wrap(arr))
        for name, arr in zip(outputs, [logits, *dst], strict=True):
            b.bind_ortvalue_output(name, wrap(arr))
        return b

    bindings = [binding(sets[0], sets[1]), binding(sets[1], sets[0])]
    x = torch.randn(1, 100, 6, generator=torch.Generator().manual_seed(3))
    state = [torch.zeros(1, *s[1:]) for s in exported.state_shapes]
    for i in range(0, 100, k):
        want, *state = run(x[:, i : i + k], state)
        frames[...] = x[:, i : i + k].numpy()  # the device writes its next k frames in place
        session.run_with_iobinding(bindings[(i // k) % 2])
        assert np.allclose(logits, want.numpy(), atol=1e-6)
        assert all(np.allclose(a, b.numpy(), atol=1e-6) for a, b in zip(sets[(i // k + 1) % 2], state, strict=True))
