"""Conformance kit for plugin authors: the checks the built-in plugins pass, importable.

Gymnasium ships ``check_env`` so that a third-party environment is checked the way the
built-ins are; this module does the same for nrstream's plugin kinds (the contracts are in
:mod:`nrstream.plugin.contracts`)::

    from nrstream.testing import check_architecture, check_loss, check_metric

    def test_my_architecture():
        check_architecture(MyNet, options={"hidden_size": 8})

Each check returns ``None`` when the component keeps its contract and raises
:class:`ConformanceError` (an ``AssertionError``, so pytest shows it as a failed assertion)
whose one-line message names the component and says exactly what broke, e.g.
``MyNet: state not reset on reset=True in lane 1 (frame 4): ... max |diff| = 0.31``.

Checks run on tiny inputs (a few lanes, a dozen frames), in float64 by default so that
"equal" can mean equal to ``1e-9``; they seed their own random generator and leave the
global one as they found it.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from nrstream.plugin.contracts import CURVE_KEYS, METRIC_KINDS, Architecture
from nrstream.plugin.protocols import PROTOCOLS
from nrstream.plugin.registry import Registration
from nrstream.stream.stream import Chunk

__all__ = [
    "ConformanceError",
    "make_chunk",
    "check_architecture",
    "check_loss",
    "check_metric",
    "check_data_source",
    "known_protocols",
]


class ConformanceError(AssertionError):
    """A plugin component breaks its contract; the message says what broke."""


def _fail(name: str, message: str) -> None:
    raise ConformanceError(f"{name}: {message}")


def _name(component: Any) -> str:
    if isinstance(component, Registration):
        return f"{component.kind} {component.name!r} (plugin {component.plugin})"
    return getattr(component, "__name__", None) or type(component).__name__


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block only (CUDA ones are not touched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --- chunks ---------------------------------------------------------------------------


def make_chunk(
    *,
    lanes: int = 3,
    frames: int = 12,
    features: int = 4,
    num_classes: int = 3,
    label: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    end: torch.Tensor | None = None,
    x: torch.Tensor | None = None,
    gap: tuple[int, int] = (1, 2),
    sample_length: tuple[int, int] = (2, 4),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> Chunk:
    """A small, valid :class:`~nrstream.stream.stream.Chunk` built by hand.

    By default each lane is ``gap, sample, gap, sample, ...`` with gap lengths drawn from
    ``gap`` and sample lengths from ``sample_length`` (inclusive ranges), random classes,
    and ``x [lanes, frames, features]`` standard normal. Every lane starts with a gap of at
    least one frame, so a default chunk has noise frames, sample starts and decision frames.

    Pass ``label [B, T]`` (``-1`` on noise) to lay the chunk out yourself: ``mask`` is then
    ``label >= 0``, a sample starts where a run of one label begins and ends where it stops,
    the last frame included (so two samples back to back need different labels, or
    explicit ``start``/``end``).
    ``mask``, ``start``, ``end`` and ``x`` override what would be derived.
    ``sample_index`` counts the starts seen so far in the lane; ``sample_id`` numbers the
    samples of the chunk (``-1`` on noise).
    """
    with _seeded(seed):
        if label is None:
            label = torch.full((lanes, frames), -1, dtype=torch.long)
            starts, ends = torch.zeros(lanes, frames, dtype=torch.bool), torch.zeros(lanes, frames, dtype=torch.bool)
            for lane in range(lanes):
                t = max(1, _randint(*gap))
                while t < frames:
                    length = _randint(*sample_length)
                    label[lane, t : t + length] = _randint(0, num_classes - 1)
                    starts[lane, t] = True
                    if t + length <= frames:  # a sample the chunk cuts off has no decision frame in it
                        ends[lane, t + length - 1] = True
                    t += length + _randint(*gap)
            start = starts if start is None else start
            end = ends if end is None else end
        label = label.to(torch.long)
        lanes, frames = label.shape
        if x is None:
            x = torch.randn(lanes, frames, features, dtype=dtype)
    if mask is None:
        mask = label >= 0
    previous = torch.cat([torch.full_like(label[:, :1], -1), label[:, :-1]], dim=1)
    following = torch.cat([label[:, 1:], torch.full_like(label[:, :1], -1)], dim=1)
    if start is None:
        start = mask & (label != previous)
    if end is None:
        end = mask & (label != following)
    sample_index = torch.cumsum(start.long(), dim=1)
    sample_id = torch.where(mask, sample_index - 1 + frames * torch.arange(lanes)[:, None], -1)
    chunk = Chunk(x=x, label=label, mask=mask, start=start, end=end, sample_index=sample_index, sample_id=sample_id)
    return chunk.to(device)


def _randint(low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, ()))


# --- architectures ----------------------------------------------------------------------


def _leaves(state: Any, path: str = "state") -> list[tuple[str, torch.Tensor]]:
    """``[(path, tensor), ...]`` of a tensor or (nested) tuple state, e.g. ``state[1]``."""
    if isinstance(state, tuple | list):
        return [leaf for i, s in enumerate(state) for leaf in _leaves(s, f"{path}[{i}]")]
    return [(path, state)]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _where_max(a: torch.Tensor, b: torch.Tensor) -> str:
    """``lane b, frame t`` of the largest difference of two ``[B, T, ...]`` tensors."""
    diff = (a.double() - b.double()).abs()
    while diff.dim() > 2:
        diff = diff.amax(-1)
    index = int(diff.flatten().argmax())
    lane, frame = divmod(index, diff.shape[1]) if diff.dim() == 2 else (index, None)
    return f"lane {lane}" + ("" if frame is None else f", frame {frame}")


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def _run_chunks(model, x: torch.Tensor, reset: torch.Tensor | None, size: int, state=None):
    """Feed ``x [B, T, F]`` in chunks of ``size`` frames; returns ``(logits [B, T, C], state)``."""
    state = model.initial_state(x.shape[0], x.device) if state is None else state
    outputs = []
    for begin in range(0, x.shape[1], size):
        part = None if reset is None else reset[:, begin : begin + size]
        logits, state = model(x[:, begin : begin + size], state, part)
        outputs.append(logits)
    return torch.cat(outputs, 1), state


def _default_tolerance(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-5


def _same_device(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def check_architecture(
    factory: Callable[..., Any],
    *,
    input_size: int = 5,
    num_classes: int = 3,
    options: dict[str, Any] | None = None,
    lanes: int = 4,
    frames: int = 12,
    chunk_sizes: Sequence[int] = (1, 5),
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    check_hidden: bool = True,
    seed: int = 0,
    name: str | None = None,
) -> None:
    """Check an architecture factory against :class:`nrstream.plugin.contracts.Architecture`.

    Builds ``factory(input_size=..., num_classes=..., **options)``, casts it to ``dtype``
    on ``device`` and checks, in this order:

    1. ``initial_state(batch, device)``: tensors (or nested tuples) on ``device``, batch on
       dimension 0, floating tensors in ``dtype``.
    2. ``forward(x [B, T, F], state)``: ``logits [B, T, C]`` in ``dtype``, finite; the
       returned state has the structure, shapes and dtypes of the initial one;
       ``reset`` all false gives the same result as ``reset=None``; with ``check_hidden``,
       ``aux["hidden"]`` is a finite ``[B, T, H]`` tensor; the state passed in is not
       changed in place.
    3. Chunked == stepwise: chunks of every size in ``chunk_sizes`` (frame by frame is
       size 1) give the logits and final state of one chunk of ``frames`` frames, within
       ``rtol``/``atol``, without and with resets (some at chunk boundaries).
    4. A reset lane equals a fresh start: with ``reset[1, t]``, lane 1's logits from frame
       ``t`` and its final state equal a fresh run on ``x[1, t:]``; its frames before ``t``
       and all the other lanes are bit-identical to a run without the reset.
    5. Gradients (in train mode, with resets) reach every parameter that requires them;
       ``num_parameters``, when the module has it, counts them.

    Tolerances default to ``1e-9`` in float64 and ``1e-5`` otherwise. Raises
    :class:`ConformanceError` naming the factory and what broke.
    """
    name = name or _name(factory)
    if isinstance(factory, Registration):  # get_registry().get("architecture", name) works as well
        factory = factory.factory
    options = dict(options or {})
    device = torch.device(device)
    rtol = _default_tolerance(dtype) if rtol is None else rtol
    atol = _default_tolerance(dtype) if atol is None else atol
    if lanes < 3:
        raise ValueError(f"check_architecture needs lanes >= 3 (a reset lane between two others), got {lanes}")
    with _seeded(seed):
        model = factory(input_size=input_size, num_classes=num_classes, **options)
        x = torch.randn(lanes, frames, input_size, dtype=dtype).to(device)
    if not isinstance(model, torch.nn.Module):
        _fail(name, f"factory returned {type(model).__name__}, not a torch.nn.Module")
    if not isinstance(model, Architecture):
        _fail(name, "the module lacks initial_state(batch_size, device) (see nrstream.plugin.contracts.Architecture)")
    model = model.to(device=device, dtype=dtype).eval()

    with torch.no_grad():
        initial = _check_initial_state(name, model, lanes, device, dtype)
        _check_forward(name, model, x, initial, num_classes, dtype, check_hidden)
        _check_chunking(name, model, x, chunk_sizes, rtol, atol)
        _check_reset(name, model, x, rtol, atol)
    with _seeded(seed + 1):
        _check_gradients(name, model, x, num_classes)


def _check_initial_state(name: str, model, lanes: int, device: torch.device, dtype: torch.dtype):
    for batch in (1, lanes):
        state = model.initial_state(batch, device)
        leaves = _leaves(state)
        for path, leaf in leaves:
            if not isinstance(leaf, torch.Tensor):
                _fail(name, f"initial_state({batch}, {device}): {path} is a {type(leaf).__name__}, not a tensor")
            if not _same_device(leaf, device):
                _fail(name, f"initial_state({batch}, {device}): {path} is on {leaf.device}, not on {device}")
            if leaf.dim() == 0 or leaf.shape[0] != batch:
                _fail(name, f"initial_state({batch}, {device}): {path} has shape {tuple(leaf.shape)}, batch not first")
            if leaf.is_floating_point() and leaf.dtype != dtype:
                _fail(name, f"initial_state: {path} is {leaf.dtype} in a model cast to {dtype}")
    return state


def _check_forward(name: str, model, x: torch.Tensor, initial, num_classes: int, dtype: torch.dtype, hidden: bool):
    lanes, frames = x.shape[:2]
    aux: dict[str, Any] = {}
    output = model(x, initial, None, aux) if hidden else model(x, initial)
    if not (isinstance(output, tuple) and len(output) == 2):
        _fail(name, f"forward must return (logits, state), got {type(output).__name__}")
    logits, state = output
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (lanes, frames, num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        _fail(name, f"logits must be [B, T, C] = {(lanes, frames, num_classes)}, got {shape}")
    if logits.dtype != dtype:
        _fail(name, f"logits are {logits.dtype} from a model and input in {dtype}")
    if not torch.isfinite(logits).all():
        _fail(name, "logits are not finite on a standard normal input")
    expected = _leaves(initial)
    got = _leaves(state)
    if [p for p, _ in got] != [p for p, _ in expected]:
        _fail(name, f"forward returned a state shaped {[p for p, _ in got]}, initial_state {[p for p, _ in expected]}")
    for (path, before), (_, after) in zip(expected, got, strict=True):
        if not isinstance(after, torch.Tensor) or after.shape != before.shape or after.dtype != before.dtype:
            what = f"{tuple(after.shape)} {after.dtype}" if isinstance(after, torch.Tensor) else type(after).__name__
            _fail(name, f"forward returned {path} as {what}; initial_state gave {tuple(before.shape)} {before.dtype}")
    if hidden:
        h = aux.get("hidden")
        if not isinstance(h, torch.Tensor) or h.dim() != 3 or tuple(h.shape[:2]) != (lanes, frames):
            what = tuple(h.shape) if isinstance(h, torch.Tensor) else repr(h)
            _fail(
                name,
                f"forward(..., aux={{}}) must store aux['hidden'] [B, T, H] with B, T = {lanes, frames}; got {what}",
            )
        if not torch.isfinite(h).all():
            _fail(name, "aux['hidden'] is not finite")
    # the caller keeps the state it passed in (an agent may still need it): no in-place updates
    before = [leaf.clone() for _, leaf in got]
    reset = _reset_pattern(lanes, frames, x.device)
    reset[::2, 0] = True  # a reset on the first frame acts on the state passed in
    model(x, state, reset)
    for (path, leaf), kept in zip(got, before, strict=True):
        if not torch.equal(leaf, kept):
            _fail(name, f"forward changed the {path} passed to it in place; return a new state instead")
    quiet = torch.zeros(lanes, frames, dtype=torch.bool, device=x.device)
    logits_quiet, state_quiet = model(x, initial, quiet)
    if _max_diff(logits_quiet, logits) != 0:
        _fail(
            name,
            f"reset all false changes the logits from reset=None: max |diff| = {_max_diff(logits_quiet, logits):.3g}",
        )
    for (path, a), (_, b) in zip(_leaves(state_quiet), got, strict=True):
        if _max_diff(a, b) != 0:
            _fail(name, f"reset all false changes {path} from reset=None: max |diff| = {_max_diff(a, b):.3g}")


def _reset_pattern(lanes: int, frames: int, device: torch.device) -> torch.Tensor:
    """Resets at a quarter, seven twelfths and five sixths of the frames, in lanes 0-2 (3, 7, 10 of 12)."""
    reset = torch.zeros(lanes, frames, dtype=torch.bool, device=device)
    a, b, c = frames // 4, frames * 7 // 12, frames * 5 // 6
    reset[0, a] = reset[1, a] = reset[2, b] = reset[0, c] = True
    return reset


def _check_chunking(name: str, model, x: torch.Tensor, sizes: Sequence[int], rtol: float, atol: float) -> None:
    frames = x.shape[1]
    for reset in (None, _reset_pattern(x.shape[0], frames, x.device)):
        with_resets = "without resets" if reset is None else "with resets"
        full, full_state = _run_chunks(model, x, reset, frames)
        for size in sizes:
            logits, state = _run_chunks(model, x, reset, size)
            how = "frame by frame" if size == 1 else f"in chunks of {size} frames"
            if not _close(logits, full, rtol, atol):
                _fail(
                    name,
                    f"chunked != stepwise: logits {how} differ from one chunk of {frames} frames ({with_resets}): "
                    f"max |diff| = {_max_diff(logits, full):.3g} at {_where_max(logits, full)}",
                )
            for (path, a), (_, b) in zip(_leaves(state), _leaves(full_state), strict=True):
                if not _close(a, b, rtol, atol):
                    _fail(
                        name,
                        f"chunked != stepwise: final {path} {how} differs from one chunk of {frames} frames "
                        f"({with_resets}): max |diff| = {_max_diff(a, b):.3g}",
                    )


def _lane(state, lane: int):
    if isinstance(state, tuple | list):
        return tuple(_lane(s, lane) for s in state)
    return state[lane : lane + 1]


def _check_reset(name: str, model, x: torch.Tensor, rtol: float, atol: float) -> None:
    lanes, frames = x.shape[:2]
    lane, at = 1, frames // 3
    others = [b for b in range(lanes) if b != lane]
    reset = torch.zeros(lanes, frames, dtype=torch.bool, device=x.device)
    reset[lane, at] = True
    with_reset, state = model(x, model.initial_state(lanes, x.device), reset)
    without, state_without = model(x, model.initial_state(lanes, x.device))
    fresh, fresh_state = model(x[lane : lane + 1, at:], model.initial_state(1, x.device))
    where = f"in lane {lane} (frame {at})"
    if not _close(with_reset[lane : lane + 1, at:], fresh, rtol, atol):
        _fail(
            name,
            f"state not reset on reset=True {where}: its logits from there differ from a fresh start by "
            f"max |diff| = {_max_diff(with_reset[lane : lane + 1, at:], fresh):.3g}",
        )
    for (path, a), (_, b) in zip(_leaves(_lane(state, lane)), _leaves(fresh_state), strict=True):
        if not _close(a, b, rtol, atol):
            _fail(
                name,
                f"state not reset on reset=True {where}: final {path} differs from a fresh start by "
                f"max |diff| = {_max_diff(a, b):.3g}",
            )
    if _max_diff(with_reset[lane, :at], without[lane, :at]) != 0:
        _fail(name, f"reset=True {where} changed the logits of the frames before it")
    if _max_diff(with_reset[others], without[others]) != 0:
        _fail(
            name,
            f"reset=True {where} changed the other lanes' logits: max |diff| = "
            f"{_max_diff(with_reset[others], without[others]):.3g} (they must be bit-identical)",
        )
    for (path, a), (_, b) in zip(_leaves(state), _leaves(state_without), strict=True):
        if _max_diff(a[others], b[others]) != 0:
            _fail(name, f"reset=True {where} changed the other lanes' final {path} (they must be bit-identical)")


def _check_gradients(name: str, model, x: torch.Tensor, num_classes: int) -> None:
    lanes, frames = x.shape[:2]
    model.train()
    try:
        reset = _reset_pattern(lanes, frames, x.device)
        model.zero_grad(set_to_none=True)
        logits, _ = model(x, model.initial_state(lanes, x.device), reset)
        target = torch.randint(0, num_classes, (lanes * frames,)).to(x.device)
        torch.nn.functional.cross_entropy(logits.reshape(-1, num_classes), target).backward()
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        missing = [n for n, p in params if p.grad is None or not p.grad.abs().sum() > 0]
        if missing:
            _fail(name, f"no gradient reaches the parameters {missing} (a cross-entropy on all frames, with resets)")
        broken = [n for n, p in params if not torch.isfinite(p.grad).all()]
        if broken:
            _fail(name, f"gradients are not finite for {broken}")
        count = getattr(model, "num_parameters", None)
        if count is not None and count != sum(p.numel() for _, p in params):
            _fail(
                name, f"num_parameters = {count}, but the trainable parameters hold {sum(p.numel() for _, p in params)}"
            )
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


# --- losses -----------------------------------------------------------------------------


def known_protocols() -> tuple[str, ...]:
    """The training protocol names: the keys of the protocol table, ``nrstream.plugin.protocols.PROTOCOLS``."""
    return tuple(PROTOCOLS)


def _build(component: Any, options: dict[str, Any] | None, marker: str) -> Any:
    """An instance: ``component`` itself, or ``component(**options)`` for a class, a factory or a
    registry entry (``get_registry().get(kind, name)``: its factory)."""
    if isinstance(component, Registration):
        component = component.factory
    if isinstance(component, type) or not hasattr(component, marker):
        return component(**(options or {}))
    if options:
        raise ValueError(f"options were given for an instance of {type(component).__name__}; pass its factory")
    return component


def _hidden(chunk: Chunk, size: int = 6) -> torch.Tensor:
    return torch.randn(chunk.batch_size, chunk.length, size, dtype=chunk.x.dtype, device=chunk.x.device)


def check_loss(
    loss: Any,
    *,
    options: dict[str, Any] | None = None,
    num_classes: int = 3,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    noise_label_free: bool = True,
    seed: int = 0,
    name: str | None = None,
) -> None:
    """Check a loss against :class:`~nrstream.plugin.contracts.Loss` (an instance, or a factory and ``options``).

    Checks that ``protocol`` is a name of the protocol table; that the loss of a chunk with
    noise and sample frames, of one with no noise frame and of one with only noise frames
    is a finite scalar tensor; that the gradient reaches the logits and is finite. With
    ``noise_label_free`` (the built-ins' contract: "noise frames never enter a
    cross-entropy"), it also checks that the ``-1`` label of noise frames is never read as a
    class: permuting the classes of the logits on noise frames leaves the loss unchanged.
    A loss with ``needs_hidden`` gets ``aux["hidden"] [B, T, 6]``.
    """
    instance = _build(loss, options, "protocol")
    name = name or _name(loss)
    protocol = getattr(instance, "protocol", None)
    names = known_protocols()
    if protocol not in names:
        _fail(name, f"protocol {protocol!r} is not a training protocol; the protocol table has {', '.join(names)}")
    with _seeded(seed):
        mixed = make_chunk(lanes=3, frames=12, num_classes=num_classes, dtype=dtype, device=device, seed=seed)
        labels_only = make_chunk(
            label=torch.arange(36).reshape(3, 12) // 4 % num_classes, dtype=dtype, device=device, seed=seed
        )
        noise_only = make_chunk(label=torch.full((3, 12), -1), dtype=dtype, device=device, seed=seed)
        for what, chunk in (("a chunk of noise and samples", mixed), ("a chunk without noise", labels_only)):
            _check_loss_value(name, instance, chunk, num_classes, what, gradient=True)
        _check_loss_value(name, instance, noise_only, num_classes, "a chunk of noise only", gradient=False)
        if noise_label_free:
            logits = torch.randn(3, 12, num_classes, dtype=dtype, device=device)
            aux = {"hidden": _hidden(mixed)}
            shuffled = torch.where(~mixed.mask[..., None], logits.flip(-1), logits)
            before, after = instance(logits, mixed, dict(aux)), instance(shuffled, mixed, dict(aux))
            tolerance = _default_tolerance(dtype)
            if not torch.allclose(before, after, rtol=tolerance, atol=tolerance):
                _fail(
                    name,
                    f"the -1 label of noise frames is read as a class: reversing the class order of the logits on "
                    f"noise frames changes the loss from {float(before):.6g} to {float(after):.6g}",
                )


def _check_loss_value(name: str, loss, chunk: Chunk, num_classes: int, what: str, gradient: bool) -> None:
    logits = torch.randn(chunk.batch_size, chunk.length, num_classes, dtype=chunk.x.dtype, device=chunk.x.device)
    logits.requires_grad_(True)
    aux = {"hidden": _hidden(chunk)}
    try:
        value = loss(logits, chunk, aux)
    except Exception as exc:  # the kit reports any failure as a contract failure
        _fail(name, f"raised {type(exc).__name__} on {what}: {exc}")
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        _fail(name, f"must return a scalar tensor, got {shape} on {what}")
    if not value.is_floating_point() or not torch.isfinite(value):
        _fail(name, f"returned {value.item()!r} ({value.dtype}) on {what}; expected a finite float")
    if not value.requires_grad:
        _fail(name, f"the loss on {what} does not depend on the logits (no gradient)")
    value.backward()
    if logits.grad is None or not torch.isfinite(logits.grad).all():
        _fail(name, f"the gradient w.r.t. the logits on {what} is missing or not finite")
    if gradient and not logits.grad.abs().sum() > 0:
        _fail(name, f"the gradient w.r.t. the logits on {what} is zero everywhere")


# --- metrics ----------------------------------------------------------------------------


def check_metric(
    metric: Any,
    *,
    options: dict[str, Any] | None = None,
    num_classes: int = 3,
    chunks: Sequence[Chunk] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    name: str | None = None,
) -> None:
    """Check a metric against :class:`~nrstream.plugin.contracts.Metric` (an instance, or a factory and ``options``).

    Checks ``produces`` (a non-empty dict of ``"scalar"``/``"curve"``), and that
    ``compute()`` — before any update, after each of ``chunks`` (default: three chunks of
    :func:`make_chunk`, random logits) — returns exactly the keys of ``produces``, each of
    its declared kind (a scalar: a finite number or ``None``; a curve: ``{"x", "y",
    "x_label", "y_label"}`` with lists of finite numbers of one length and string labels),
    JSON-serialisable; that ``compute()`` does not change the metric; that ``reset()``
    restores the initial ``compute()``, and that the same updates after it give the same
    result. Every update gets ``aux["hidden"] [B, T, 6]``.
    """
    instance = _build(metric, options, "update")
    name = name or _name(metric)
    produces = getattr(instance, "produces", None)
    if not isinstance(produces, dict) or not produces:
        _fail(name, f"produces must be a non-empty dict of compute() key -> kind, got {produces!r}")
    for key, kind in produces.items():
        if not isinstance(key, str) or kind not in METRIC_KINDS:
            _fail(name, f"produces[{key!r}] = {kind!r}; kinds are {', '.join(METRIC_KINDS)}")
    instance.reset()
    initial = _checked_compute(name, instance, produces, "before any update")
    with _seeded(seed):
        if chunks is None:
            chunks = [make_chunk(num_classes=num_classes, device=device, seed=seed + i) for i in range(3)]
        inputs = [
            (c, torch.randn(c.batch_size, c.length, num_classes, device=c.x.device), {"hidden": _hidden(c)})
            for c in chunks
        ]
    results = []
    for i, (chunk, logits, aux) in enumerate(inputs):
        instance.update(chunk, logits, aux)
        results.append(_checked_compute(name, instance, produces, f"after update {i + 1}"))
        if _checked_compute(name, instance, produces, f"after update {i + 1}") != results[-1]:
            _fail(name, f"calling compute() twice after update {i + 1} gave two results: compute() must not change it")
    instance.reset()
    after_reset = _checked_compute(name, instance, produces, "after reset()")
    if after_reset != initial:
        _fail(name, f"reset() does not restore the initial compute(): {_diff_keys(initial, after_reset)}")
    for i, (chunk, logits, aux) in enumerate(inputs):
        instance.update(chunk, logits, aux)
        again = _checked_compute(name, instance, produces, f"after reset() and update {i + 1}")
        if again != results[i]:
            _fail(name, f"the same updates after reset() give another compute(): {_diff_keys(results[i], again)}")


def _diff_keys(a: dict, b: dict) -> str:
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return ", ".join(f"{k!r}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys)[:300]


def _checked_compute(name: str, metric, produces: dict[str, str], when: str) -> dict:
    """``compute()`` as JSON-normalised data, checked against ``produces``."""
    result = metric.compute()
    if not isinstance(result, dict):
        _fail(name, f"compute() {when} returned {type(result).__name__}, not a dict")
    if set(result) != set(produces):
        extra, missing = sorted(set(result) - set(produces)), sorted(set(produces) - set(result))
        _fail(name, f"compute() {when} keys differ from produces: not declared {extra}, missing {missing}")
    for key, kind in produces.items():
        problem = _scalar_problem(result[key]) if kind == "scalar" else _curve_problem(result[key])
        if problem:
            _fail(name, f"compute()[{key!r}] {when} is not a {kind}: {problem}")
    try:
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        _fail(name, f"compute() {when} is not JSON-serialisable: {exc}")
    raise AssertionError("unreachable")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _scalar_problem(value: Any) -> str | None:
    if value is None or (_is_number(value) and isinstance(value, float | int)):
        return None
    return f"{value!r} ({type(value).__name__}); a scalar is a finite Python float or None"


def _curve_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or set(value) != CURVE_KEYS:
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        return f"a curve is a dict with exactly the keys {sorted(CURVE_KEYS)}, got {got}"
    x, y = value["x"], value["y"]
    if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y):
        return f"x and y must be lists of one length, got {type(x).__name__} and {type(y).__name__}"
    bad = [v for v in (*x, *y) if not (_is_number(v) and isinstance(v, float | int))]
    if bad:
        return f"x and y must hold finite Python numbers, got {bad[0]!r} ({type(bad[0]).__name__})"
    if not isinstance(value["x_label"], str) or not isinstance(value["y_label"], str):
        return "x_label and y_label must be strings"
    return None


# ---------------------------------------------------------------------------- data sources


def check_data_source(
    source: Any,
    *,
    options: dict[str, Any] | None = None,
    name: str | None = None,
    dataset: Any = None,
) -> None:
    """Check a data source against :class:`~nrstream.plugin.contracts.DataSource` (or a bare factory).

    Loads it with ``options`` (or takes the ``dataset`` it already loaded) and checks the
    :class:`~nrstream.stream.bank.Dataset`: the three splits, each non-empty, with one feature
    size, labels in ``[0, num_classes)``, finite features on every valid frame; noise banks of
    the same feature size, finite. What the source declares beyond loading is checked too:
    ``download`` is callable with a ``dest``; ``split_audio(dataset, split)`` gives a
    :class:`~nrstream.plugin.contracts.SplitAudio` for every split whose clip files exist, are
    disjoint across splits, and whose noise shares are disjoint parts of ``[0, 1]``.
    """
    import inspect
    from pathlib import Path

    from nrstream.plugin.contracts import DataSource, SplitAudio
    from nrstream.stream.bank import SPLITS, Dataset

    declared = DataSource.of(source)
    name = name or _name(declared.load)
    if dataset is None:
        dataset = declared.load(**(options or {}))
    if not isinstance(dataset, Dataset):
        _fail(name, f"load returned {type(dataset).__name__}, not nrstream.Dataset")
    sizes = {split: bank.feature_size for split, bank in dataset.splits.items()}
    if len(set(sizes.values())) != 1:
        _fail(name, f"the splits have different feature sizes {sizes}")
    classes = dataset.num_classes
    for split in SPLITS:
        bank = dataset.splits[split]
        labels = bank.labels
        if labels.dtype != torch.int64 or int(labels.min()) < 0 or int(labels.max()) >= classes:
            _fail(name, f"{split} labels must be int64 in [0, {classes}), got {labels.dtype} "
                        f"{int(labels.min())}..{int(labels.max())}")  # fmt: skip
        finite = torch.isfinite(bank.features).all(-1) | ~bank.valid_mask()
        if not bool(finite.all()):
            first = int((~finite).any(-1).nonzero()[0])
            _fail(name, f"{split} sample {first} has NaN or infinite features on a valid frame")
    for split, bank in dataset.noise.items():
        if split not in SPLITS:
            _fail(name, f"noise bank for unknown split {split!r}; expected {', '.join(SPLITS)}")
        if bank.feature_size != dataset.feature_size or not bool(torch.isfinite(bank.features).all()):
            _fail(name, f"the {split} noise bank must have {dataset.feature_size} finite features per frame")
    if declared.download is not None:
        if not callable(declared.download):
            _fail(name, "download is not callable")
        try:
            params = inspect.signature(declared.download).parameters
        except (TypeError, ValueError):
            params = {}
        if params and "dest" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            _fail(name, "download must take dest (the folder to download into; None: the default data folder)")
    if declared.split_audio is None:
        return
    seen: dict[Path, str] = {}
    shares = []
    for split in SPLITS:
        files = declared.split_audio(dataset, split)
        if not isinstance(files, SplitAudio):
            _fail(name, f"split_audio(dataset, {split!r}) returned {type(files).__name__}, not SplitAudio")
        if files.split != split or files.sample_rate <= 0:
            _fail(name, f"split_audio(dataset, {split!r}) describes split {files.split!r} at {files.sample_rate} Hz")
        for word, path in files.clips:
            path = Path(path)
            if not path.is_file():
                _fail(name, f"split_audio(dataset, {split!r}) lists {path} ({word}), which is not a file")
            if path in seen:
                _fail(name, f"clip {path} is in both the {seen[path]} and the {split} split; splits must be disjoint")
            seen[path] = split
        low, high = files.noise_share
        if not 0.0 <= low <= high <= 1.0 + 1e-9:
            _fail(name, f"split_audio(dataset, {split!r}) noise_share {files.noise_share} is not a part of [0, 1]")
        shares.append((low, high, split))
    for (_, high, first), (low, _, second) in zip(sorted(shares), sorted(shares)[1:], strict=False):
        if low < high - 1e-9:
            _fail(name, f"the {first} and {second} splits share noise (noise_share overlaps)")
