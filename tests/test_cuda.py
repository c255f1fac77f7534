"""On CUDA: each architecture's chunked forward equals its stepwise one (skipped without a GPU).

Run by ``pytest -m cuda`` and by ``benchmarks/gpu_check.py``. A direct comparison rather
than the whole conformance kit (:func:`nrstream.testing.check_architecture`), whose reset
check asks for bit-identical untouched lanes — a property of the CPU kernels that cuDNN's
batched kernels need not have. Here: one chunk of ``T`` frames against chunks of 7 and
against frame-by-frame calls, with and without resets, logits and final state, float64 to
``1e-9`` and float32 (the dtype training uses) to ``1e-3`` (cuDNN may use TF32 and another
summation order than a frame-by-frame call).
"""

from __future__ import annotations

import pytest
import torch

from nrstream.plugin.registry import get_registry

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ARCHITECTURES = sorted(get_registry().names("architecture"))
DEVICE = "cuda"


def _leaves(state) -> list[torch.Tensor]:
    return [state] if isinstance(state, torch.Tensor) else [t for s in state for t in _leaves(s)]


def _run(model, x: torch.Tensor, reset: torch.Tensor | None, size: int):
    state, outs = model.initial_state(x.shape[0], x.device), []
    for begin in range(0, x.shape[1], size):
        part = None if reset is None else reset[:, begin : begin + size]
        logits, state = model(x[:, begin : begin + size], state, reset=part)
        outs.append(logits)
    return torch.cat(outs, 1), state


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-9), (torch.float32, 1e-3)])
def test_chunked_forward_equals_stepwise_on_cuda(name, dtype, tolerance):
    torch.manual_seed(0)
    model = get_registry().create("architecture", name, input_size=8, num_classes=4, hidden_size=32)
    model = model.to(device=DEVICE, dtype=dtype).eval()
    lanes, frames = 6, 40
    x = torch.randn(lanes, frames, 8, dtype=dtype).to(DEVICE)
    reset = torch.zeros(lanes, frames, dtype=torch.bool)
    reset[1, 13] = reset[2, 7] = reset[3, 21] = reset[4, 0] = True  # 7 and 21 fall on chunk boundaries
    with torch.no_grad():
        for resets in (None, reset.to(DEVICE)):
            whole, whole_state = _run(model, x, resets, frames)
            assert whole.shape == (lanes, frames, 4) and torch.isfinite(whole).all()
            for size in (1, 7):
                logits, state = _run(model, x, resets, size)
                torch.testing.assert_close(logits, whole, rtol=tolerance, atol=tolerance)
                for a, b in zip(_leaves(state), _leaves(whole_state), strict=True):
                    torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)
