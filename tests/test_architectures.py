"""The built-in architectures honour the contract of ``nrstream_register_architectures``."""

from __future__ import annotations

import pytest
import torch

from nrstream.errors import ConfigError
from nrstream.plugins import get_registry, reload_plugins

ARCHITECTURES = ["rnn", "gru", "lstm", "ssm", "snn"]
# Contract tests run each SSM scan method, since "auto" picks only one of them on the CPU.
CASES = {
    "rnn": {},
    "gru": {},
    "lstm": {},
    "ssm": {"scan": "parallel"},
    "ssm-sequential": {"scan": "sequential"},
    "snn": {},
}
F, C = 5, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def architecture_plugins(monkeypatch):
    """Load only the plugins these tests need, so a broken unrelated plugin cannot fail them."""
    monkeypatch.setenv("NRSTREAM_LOAD_PLUGINS", "recurrent,ssm,snn,toy")
    reload_plugins()
    yield
    monkeypatch.delenv("NRSTREAM_LOAD_PLUGINS")
    reload_plugins()


def build(case: str, **config) -> torch.nn.Module:
    """A small model of a test case (an architecture name, or ``ssm-sequential``)."""
    config = {"hidden_size": 8, "num_layers": 2, **CASES.get(case, {}), **config}
    return get_registry().create(
        "architecture", case.split("-")[0], input_size=config.pop("input_size", F), num_classes=C, **config
    )


def flatten(state) -> list[torch.Tensor]:
    if isinstance(state, tuple):
        return [t for s in state for t in flatten(s)]
    return [state]


def run_chunks(model, x, reset, size):
    state, outputs = model.initial_state(x.shape[0], x.device), []
    for begin in range(0, x.shape[1], size):
        part = None if reset is None else reset[:, begin : begin + size]
        logits, state = model(x[:, begin : begin + size], state, part)
        outputs.append(logits)
    return torch.cat(outputs, 1), state


def assert_states_close(a, b):
    for s, t in zip(flatten(a), flatten(b), strict=True):
        assert s.shape == t.shape
        torch.testing.assert_close(s, t, rtol=1e-9, atol=1e-9)


def test_all_registered_by_their_plugins():
    registry = get_registry()
    assert set(ARCHITECTURES) <= set(registry.names("architecture"))
    assert {registry.get("architecture", n).plugin for n in ("rnn", "gru", "lstm")} == {"recurrent"}
    assert registry.get("architecture", "ssm").plugin == "ssm"
    assert registry.get("architecture", "snn").plugin == "snn"


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("with_reset", [False, True], ids=["no_reset", "reset"])
def test_chunked_equals_frame_by_frame(name, with_reset):
    torch.manual_seed(0)
    model = build(name).double().eval()
    x = torch.randn(4, 12, F, dtype=torch.float64)
    reset = None
    if with_reset:
        reset = torch.zeros(4, 12, dtype=torch.bool)
        reset[0, 3] = reset[1, 3] = reset[2, 7] = reset[0, 10] = True
    full, full_state = run_chunks(model, x, reset, 12)
    assert full.shape == (4, 12, C)
    for size in (1, 5):
        logits, state = run_chunks(model, x, reset, size)
        torch.testing.assert_close(logits, full, rtol=1e-9, atol=1e-9)
        assert_states_close(state, full_state)


@pytest.mark.parametrize("name", CASES)
def test_reset_equals_fresh_state_for_reset_lanes_only(name):
    torch.manual_seed(1)
    model = build(name).double().eval()
    x = torch.randn(3, 10, F, dtype=torch.float64)
    at = 4
    reset = torch.zeros(3, 10, dtype=torch.bool)
    reset[1, at] = True
    with_reset, _ = model(x, model.initial_state(3, "cpu"), reset)
    without, _ = model(x, model.initial_state(3, "cpu"))
    fresh, _ = model(x[1:2, at:], model.initial_state(1, "cpu"))
    torch.testing.assert_close(with_reset[1:2, at:], fresh, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(with_reset[1, :at], without[1, :at], rtol=0, atol=0)
    torch.testing.assert_close(with_reset[[0, 2]], without[[0, 2]], rtol=0, atol=0)
    # and the state a reset lane carries on with is the fresh run's too
    _, state = model(x, model.initial_state(3, "cpu"), reset)
    _, fresh_state = model(x[1:2, at:], model.initial_state(1, "cpu"))
    assert_states_close(tuple(s[1:2] for s in flatten(state)), tuple(flatten(fresh_state)))


@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(2)
    model = build(name, input_size=F).train()
    x = torch.randn(4, 9, F)
    reset = torch.zeros(4, 9, dtype=torch.bool)
    reset[:2, 5] = True
    logits, _ = model(x, model.initial_state(4, "cpu"), reset)
    torch.nn.functional.cross_entropy(logits.reshape(-1, C), torch.randint(0, C, (36,))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: no gradient for {missing}"
    assert model.num_parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_aux_hidden(name):
    model = build(name, hidden_size=6).eval()
    state = model.initial_state(2, "cpu")
    aux: dict = {}
    logits, _ = model(torch.randn(2, 7, F), state, aux=aux)
    hidden = aux["hidden"]
    width = 2 * model.state_size if name == "ssm" else 6
    assert hidden.shape == (2, 7, width)
    assert logits.shape == (2, 7, C)
    assert torch.isfinite(hidden).all()


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize(
    ("key", "value"),
    [("hidden_size", 0), ("num_layers", -1), ("dropout", 1.5), ("hidden_size", 2.5)],
)
def test_bad_config_names_the_value(name, key, value):
    with pytest.raises(ConfigError, match=f"{key}.*{value}") as info:
        build(name, **{key: value})
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("ssm", {"r_min": 0.995}, "r_min.*0.995"),
        ("ssm", {"r_max": 1.0}, "r_max.*1.0"),
        ("ssm", {"state_size": 0}, "state_size.*0"),
        ("ssm", {"scan": "fft"}, "scan.*'fft'"),
        ("snn", {"surrogate_slope": 0}, "surrogate_slope.*0"),
        ("snn", {"adaptive": "yes"}, "adaptive.*'yes'"),
    ],
)
def test_bad_kind_specific_config(name, config, message):
    with pytest.raises(ConfigError, match=message):
        build(name, **config)


@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("steps", [1, 2, 7, 16, 33])
def test_parallel_scan_matches_the_loop(steps, reset):
    from nrstream_plugins.architectures._common import linear_scan

    torch.manual_seed(steps)
    a = torch.exp(torch.complex(-torch.rand(1, 1, 6, dtype=torch.float64), torch.randn(1, 1, 6, dtype=torch.float64)))
    if reset:
        a = a * (torch.rand(3, steps, 1) > 0.3)
    b = torch.randn(3, steps, 6, dtype=torch.complex128)
    h0 = torch.randn(3, 6, dtype=torch.complex128)
    expected = linear_scan(a, b, h0, "sequential")
    torch.testing.assert_close(linear_scan(a, b, h0, "parallel"), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["gru", "ssm"])
def test_bad_input_shape(name):
    model = build(name)
    with pytest.raises(ValueError, match=r"\[B, T, 5\]"):
        model(torch.randn(2, 3, F + 1), model.initial_state(2, "cpu"))
    with pytest.raises(ValueError, match="reset"):
        model(torch.randn(2, 3, F), model.initial_state(2, "cpu"), torch.zeros(2, 4, dtype=torch.bool))


def toy_accuracy(model, dataset, steps: int, lr: float) -> float:
    """Train segmented (reset at every sample start, no gaps), score at decision frames."""
    from nrstream.datasets import make_stream

    torch.manual_seed(0)
    stream = make_stream(dataset, "train", num_lanes=32, seed=0, gap_min=0, gap_max=0, device="cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = model.initial_state(32, "cpu")
    model.train()
    for _ in range(steps):
        chunk = stream.next_chunk(24)
        # truncated BPTT: carry the state, not its history
        logits, state = model(chunk.x, detach(state), chunk.start)
        keep = chunk.label >= 0
        loss = torch.nn.functional.cross_entropy(logits[keep], chunk.label[keep])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = make_stream(dataset, "test", num_lanes=64, seed=1, gap_min=0, gap_max=0, device="cpu")
    state, correct, total = model.initial_state(64, "cpu"), 0, 0
    with torch.no_grad():
        for _ in range(4):
            chunk = test.next_chunk(48)
            logits, state = model(chunk.x, state, chunk.start)
            decided = chunk.end
            correct += int((logits.argmax(-1)[decided] == chunk.label[decided]).sum())
            total += int(decided.sum())
    return correct / total


def detach(state):
    if isinstance(state, tuple):
        return tuple(detach(s) for s in state)
    return state.detach()


@pytest.mark.parametrize(
    ("name", "steps", "lr"),
    [("rnn", 60, 1e-2), ("gru", 60, 1e-2), ("lstm", 60, 1e-2), ("ssm", 60, 5e-3), ("snn", 60, 1e-2)],
)
def test_learns_toy_well_above_chance(name, steps, lr):
    from nrstream.datasets import load_dataset

    dataset = load_dataset("toy", seed=0)
    model = get_registry().create(
        "architecture",
        name,
        input_size=dataset.feature_size,
        num_classes=dataset.num_classes,
        hidden_size=32,
        num_layers=1,
    )
    accuracy = toy_accuracy(model, dataset, steps, lr)
    chance = 1 / dataset.num_classes
    assert accuracy > chance + 0.5 * (1 - chance), f"{name}: toy accuracy {accuracy:.2f}"
