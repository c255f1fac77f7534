"""The streaming step of a trained agent as a standalone model: ONNX or TorchScript, plus a JSON sidecar.

The exported model is the agent's step over any number of frames with its state made
explicit::

    logits [B, T, C], state_1', ..., state_K' = model(frames [B, T, F], state_1, ..., state_K)

``T`` (and ``B``) are dynamic: a device may call it once per 10 ms frame (``T = 1``) or on blocks
of ``k`` frames with the state carried, which pays the fixed cost of a call once per ``k`` frames
and delays a decision by up to ``k - 1`` frames; the outputs are the same frame for frame (tested
for every exportable pair; ``benchmarks/latency.py`` times k = 1, 4, 10). The state is the
architecture's state flattened into its tensors in order (a GRU: one ``[B, layers, H]``; an
LSTM: ``h`` and ``c``; the SNN: ``v, s, b`` per layer and the readout membrane). A device
starts from zeros of the shapes in the sidecar and feeds each call's new state to the next
call, never resetting.

Two ways to build the graph, tried in this order and each checked against eager PyTorch
(T = 1 and T = 7, non-zero state, 1e-4) before anything is written:

* ``direct``: the model traced once; right for models whose graph does not depend on
  ``T`` (``rnn``, ``gru``, ``lstm``: torch's fused layers become ONNX ``RNN/GRU/LSTM`` ops).
* ``looped``: the model traced for one frame, and a scripted loop over ``T`` around it;
  for models that loop over frames in Python (``snn``, and ``ssm``'s sequential scan).

Precisely what does not export (measured here, torch 2.9.1, onnx 1.23, onnxruntime 1.32):

* ``ssm`` to ONNX: its LRU state is complex-valued (``torch.complex``, ``.real``,
  ``.imag``) and ONNX has no complex tensor type. ``ssm`` exports to TorchScript (looped).
* ``snn`` to TorchScript: its spike is a custom ``torch.autograd.Function`` (the
  surrogate gradient), which TorchScript cannot serialise (a ``PythonOp``). ``snn``
  exports to ONNX (looped; the exporter inlines the function's forward, a step).

``rnn``, ``gru`` and ``lstm`` export to both (direct). The error messages say the above.

The sidecar (``FILE.json``) holds what a device needs besides the graph: the feature front
end's parameters and train statistics (mean, std), class names, state names and shapes
(``B`` for the batch), and the detection defaults (:class:`nrstream.deploy.detector.DetectorSettings`).
Both files are written atomically: an existing file under the name is replaced only once the
export has succeeded, and a failed export writes neither. The output's folder must exist.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nrstream.artifacts.run_folder import check_output_files, output_file, write_problem
from nrstream.errors import NrstreamError

__all__ = [
    "ExportError",
    "StepModule",
    "export_model",
    "export_agent",
    "check_format",
    "check_out",
    "flatten_state",
    "unflatten_state",
    "FORMATS",
]

FORMATS = ("onnx", "torchscript")
SIDE_FORMAT = 1
TOLERANCE = 1e-4


class ExportError(NrstreamError):
    """An agent that cannot be exported in the format asked for (one line: which, and why)."""


def flatten_state(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in flatten_state(s)]


def _structure(state):
    if isinstance(state, torch.Tensor):
        return None
    return tuple(_structure(s) for s in state)


def unflatten_state(flat: list[torch.Tensor], structure):
    it = iter(flat)

    def build(node):
        if node is None:
            return next(it)
        return tuple(build(n) for n in node)

    return build(structure)


class StepModule(nn.Module):
    """``forward(frames [B, T, F], *state) -> (logits [B, T, C], *new_state)`` around an architecture."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        self.structure = _structure(model.initial_state(1, "cpu"))

    def forward(self, frames: torch.Tensor, *state: torch.Tensor):
        logits, new = self.model(frames, unflatten_state(list(state), self.structure))
        return (logits, *flatten_state(new))


def _looped(step: torch.jit.ScriptModule, k: int) -> torch.jit.ScriptModule:
    """Script ``for t in range(T)`` around ``step``; TorchScript needs the state count fixed in the source."""
    args = ", ".join(f"s{i}" for i in range(k))
    src = f"""
import torch
from typing import List

class Loop(torch.nn.Module):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def forward(self, frames: torch.Tensor, {", ".join(f"s{i}: torch.Tensor" for i in range(k))}):
        outs: List[torch.Tensor] = []
        for t in range(frames.shape[1]):
            out = self.step(frames[:, t : t + 1], {args})
            {args}{"," if k == 1 else ""} = out[1:]
            outs.append(out[0])
        return (torch.cat(outs, 1), {args}{"," if k == 1 else ""})
"""
    import linecache

    filename = f"<nrstream.deploy.export loop {k}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)  # torch.jit.script reads the source
    namespace: dict = {"__name__": "nrstream_export_loop"}
    exec(compile(src, filename, "exec"), namespace)  # noqa: S102 - a fixed template, no user input
    return torch.jit.script(namespace["Loop"](step))


def _examples(model: nn.Module, batch: int, frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, model.input_size, generator=g)
    state = [torch.randn(t.shape, generator=g) * 0.5 for t in flatten_state(model.initial_state(batch, "cpu"))]
    return x, state


def _reference(step: StepModule, x, state):
    with torch.no_grad():
        return [t.clone() for t in step(x, *state)]


def _check(run, step: StepModule, model: nn.Module, label: str) -> None:
    for frames in (1, 7):
        x, state = _examples(model, 2, frames, seed=frames)
        want = _reference(step, x, state)
        got = run(x, state)
        worst = max(float((a - b).abs().max()) for a, b in zip(want, got, strict=True))
        if not worst <= TOLERANCE:
            raise ExportError(f"{label}: the exported graph differs from PyTorch by {worst:.2e} at T={frames}")


def _torchscript(step: StepModule, model: nn.Module, label: str) -> tuple[bytes, str]:
    errors = []
    x, state = _examples(model, 1, 3)
    for how in ("direct", "looped"):
        try:
            with torch.no_grad(), _quiet():
                if how == "direct":
                    graph = torch.jit.trace(step, (x, *state), check_trace=False)
                else:
                    one = torch.jit.trace(step, (x[:, :1], *state), check_trace=False)
                    graph = _looped(one, len(state))
                buffer = io.BytesIO()
                torch.jit.save(graph, buffer)
                blob = buffer.getvalue()
                loaded = torch.jit.load(io.BytesIO(blob))  # check what is written, not what is in memory

            def run(xx, ss, graph=loaded):
                with torch.no_grad():
                    return list(graph(xx, *ss))

            _check(run, step, model, label)
            return blob, how
        except Exception as exc:  # a failed trace, save or check: try the next way
            errors.append(f"{how}: {_first_line(exc)}")
    if any("Python function call" in e for e in errors):
        raise ExportError(
            f"{label} cannot export to TorchScript: it calls a custom torch.autograd.Function (e.g. a spike's "
            "surrogate gradient), which TorchScript cannot serialise; use --format onnx"
        )
    raise ExportError(f"{label} cannot export to TorchScript ({'; '.join(errors)})")


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


class _quiet:
    """Silence tracer warnings (they describe exactly the specialisation the checks catch)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@contextlib.contextmanager
def _no_fd_stdout():
    """Keep torch's C++ ONNX log ("Torch IR graph at exception: ...") off stdout during a failed attempt."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _onnx_bytes(graph_or_step, x, state, names, state_names) -> bytes:
    buffer = io.BytesIO()
    dynamic = {"frames": {0: "B", 1: "T"}, "logits": {0: "B", 1: "T"}}
    for n in state_names:
        dynamic[n] = {0: "B"}
        dynamic[f"{n}_out"] = {0: "B"}
    with torch.no_grad(), _quiet(), _no_fd_stdout():
        torch.onnx.export(
            graph_or_step,
            (x, *state),
            buffer,
            input_names=["frames", *state_names],
            output_names=["logits", *[f"{n}_out" for n in state_names]],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def _onnx_run(blob: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # a failed "direct" attempt is expected for some models; say it once, ourselves
    session = onnxruntime.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(x, state):
        feeds = {n: t.numpy() for n, t in zip(names, [x, *state], strict=True)}
        return [torch.from_numpy(o) for o in session.run(None, feeds)]

    return run


def _onnx(step: StepModule, model: nn.Module, label: str, state_names: list[str]) -> tuple[bytes, str]:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'nrstream[export]'") from None
    x, state = _examples(model, 1, 3)
    errors = []
    for how in ("direct", "looped"):
        try:
            if how == "direct":
                blob = _onnx_bytes(step, x, state, None, state_names)
            else:
                with torch.no_grad(), _quiet():
                    one = torch.jit.trace(step, (x[:, :1], *state), check_trace=False)
                    loop = _looped(one, len(state))
                blob = _onnx_bytes(loop, x, state, None, state_names)
            _check(_onnx_run(blob), step, model, label)
            return blob, how
        except Exception as exc:
            errors.append(f"{how}: {_first_line(exc)}")
    if any("complex" in e.lower() for e in errors) or getattr(model, "state_is_complex", False):
        raise ExportError(
            f"{label} cannot export to ONNX: its state is complex-valued and ONNX has no complex tensors; "
            "use --format torchscript"
        )
    raise ExportError(f"{label} cannot export to ONNX ({'; '.join(errors)})")


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS`; else one line listing them."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def check_out(out: str | os.PathLike, inputs: dict | None = None) -> Path:
    """``out`` as a path the export can write (checked before any work); else one line naming it.

    The folder must exist (it is not created: a mistyped folder is an error, not a new
    folder) and be writable; ``out`` and its sidecar ``out.json`` must not be folders. An
    existing file is replaced, atomically, once the export has succeeded, and only if nrstream
    wrote it (:func:`nrstream.artifacts.run_folder.check_output_files`); ``inputs`` (flag -> path)
    may not be named as outputs.
    """
    out = Path(out)
    for path in (out, out.with_name(out.name + ".json")):
        if path.is_dir():
            raise ExportError(f"cannot write {path}: it is a folder; give --out a file name")
    folder = out.parent
    if not folder.exists():
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            raise ExportError(f"cannot write {out}: {existing} is a file, not a folder")
        raise ExportError(f"cannot write {out}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise ExportError(f"cannot write {out}: {folder} is a file, not a folder")
    reason = write_problem(folder)
    if reason:
        raise ExportError(f"cannot write {out}: {reason} in {folder}")
    # the one output rule: replace only an export nrstream wrote (recorded in the folder's manifest)
    check_output_files({"--out": out, "the sidecar (--out + .json)": out.with_name(out.name + ".json")}, inputs or {})
    return out


@dataclass
class Exported:
    path: Path
    sidecar: Path
    how: str
    state_shapes: list[list]
    label: str = "model"


def export_model(
    model: nn.Module,
    fmt: str,
    out: str | Path,
    *,
    label: str = "model",
    sidecar: dict | None = None,
) -> Exported:
    """Export ``model`` (an architecture) as ``fmt`` to ``out`` and its sidecar to ``out + '.json'``.

    Raises:
        ExportError: the format is unknown, or this architecture cannot be exported in it.
    """
    check_format(fmt)
    out = check_out(out)
    model = model.eval()
    step = StepModule(model)
    init = flatten_state(model.initial_state(1, "cpu"))
    state_names = [f"state_{i}" for i in range(len(init))]
    if fmt == "torchscript":
        blob, how = _torchscript(step, model, label)
    else:
        blob, how = _onnx(step, model, label, state_names)
    shapes = [["B", *t.shape[1:]] for t in init]
    side = {
        "format": SIDE_FORMAT,
        "model_format": fmt,
        "graph": how,
        "inputs": {"frames": ["B", "T", int(model.input_size)], **dict(zip(state_names, shapes, strict=True))},
        "outputs": {
            "logits": ["B", "T", int(model.num_classes)],
            **{f"{n}_out": s for n, s in zip(state_names, shapes, strict=True)},
        },
        "initial_state": "zeros",
        **(sidecar or {}),
    }
    side_path = out.with_name(out.name + ".json")
    with output_file(out) as tmp, output_file(side_path) as side_tmp:
        tmp.write_bytes(blob)
        side_tmp.write_text(json.dumps(side, indent=2) + "\n")
    return Exported(out, side_path, how, shapes, label)


def export_agent(run: str | Path, label: str | None, fmt: str, out: str | Path) -> Exported:
    """Export agent ``label`` of a run folder, or the agent of a checkpoint folder or file, with its sidecar.

    ``run`` and ``label`` as :meth:`nrstream.artifacts.trained_agent.TrainedAgent.load` takes them; the format and
    ``out`` are checked before the agent is loaded. An existing ``out`` (and ``out.json``) is
    replaced atomically once the export has succeeded; a failed export leaves them as they were.
    """
    from dataclasses import asdict

    from nrstream.artifacts.trained_agent import TrainedAgent
    from nrstream.deploy.detector import DetectorSettings

    check_format(fmt)
    check_out(out, {"RUN": run})
    agent = TrainedAgent.load(run, label)
    sidecar = {
        "agent": agent.label,
        "arch": agent.arch,
        "arch_options": agent.arch_options,
        "source": agent.source,
        "class_names": agent.class_names,
        "frontend": agent.frontend,
        "normalization": None
        if agent.mean is None
        else {"mean": agent.mean.tolist(), "std": agent.std.tolist(), "apply": "(features - mean) / std"},
        "detection": {**asdict(DetectorSettings()), "ignore": list(DetectorSettings().ignore)},
    }
    return export_model(agent.model, fmt, out, label=agent.label, sidecar=sidecar)
