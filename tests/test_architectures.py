"""The built-in architectures honour the contract of ``nrstream_register_architectures``."""

from __future__ import annotations

import math

import pytest
import torch

from nrstream.errors import ConfigError
from nrstream.plugin.registry import get_registry, reload_plugins
from nrstream.testing import check_architecture

ARCHITECTURES = ["rnn", "gru", "lstm", "ssm", "snn"]
# Contract tests run each SSM scan method, since "auto" picks only one of them on the CPU.
CASES = {
    "rnn": {},
    "gru": {},
    "lstm": {},
    "ssm": {"scan": "parallel"},
    "ssm-sequential": {"scan": "sequential"},
    "snn": {},
    "lstm-noforget": {"forget_gate": False},
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


def test_all_registered_by_their_plugins():
    registry = get_registry()
    assert set(ARCHITECTURES) <= set(registry.names("architecture"))
    assert {registry.get("architecture", n).plugin for n in ("rnn", "gru", "lstm")} == {"recurrent"}
    assert registry.get("architecture", "ssm").plugin == "ssm"
    assert registry.get("architecture", "snn").plugin == "snn"


def check(case: str, **kwargs) -> None:
    """``nrstream.testing.check_architecture`` on a small model of a test case."""
    factory = get_registry().get("architecture", case.split("-")[0]).factory
    options = {"hidden_size": 8, "num_layers": 2, **CASES[case]}
    check_architecture(factory, input_size=F, num_classes=C, options=options, name=case, **kwargs)


@pytest.mark.parametrize("name", CASES)
def test_conformance(name):
    """The conformance kit, float64 to 1e-9: shapes and dtypes; chunked (frame by frame and in
    chunks of 5) == one chunk of 12 frames, without and with resets, logits and state; a reset
    lane == a fresh start while the other lanes stay bit-identical; gradients reach every
    parameter; ``num_parameters`` counts them."""
    check(name)


@pytest.mark.parametrize("name", ["gru", "lstm-noforget", "ssm", "snn"])
def test_conformance_in_float32(name):
    """The models train in float32: the same contract holds there, to 1e-5."""
    check(name, dtype=torch.float32)


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
    from nrstream.data.datasets import make_stream

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
    [
        ("rnn", 60, 1e-2),
        ("gru", 60, 1e-2),
        ("lstm", 60, 1e-2),
        ("ssm", 60, 5e-3),
        ("snn", 60, 1e-2),
    ],
)
def test_learns_toy_well_above_chance(name, steps, lr):
    from nrstream.data.datasets import load_dataset

    dataset = load_dataset("toy", seed=0)
    options = {key: value for key, value in CASES[name].items() if key != "scan"}
    model = get_registry().create(
        "architecture",
        name.split("-")[0],
        input_size=dataset.feature_size,
        num_classes=dataset.num_classes,
        hidden_size=32,
        num_layers=1,
        **options,
    )
    accuracy = toy_accuracy(model, dataset, steps, lr)
    chance = 1 / dataset.num_classes
    assert accuracy > chance + 0.5 * (1 - chance), f"{name}: toy accuracy {accuracy:.2f}"


# --- lstm with forget_gate: false (Hochreiter & Schmidhuber 1997; Gers et al. 2000 added the gate) ---


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_lstm_without_forget_gate_is_the_textbook_cell():
    """One unit, one feature, weights set by hand; the expected values come from the textbook
    equations written out below with Python floats: c_t = c_{t-1} + i_t g_t, h_t = o_t tanh(c_t)."""
    model = build("lstm-noforget", input_size=1, hidden_size=1, num_layers=1).double()
    rnn = model.rnn
    w_ih, w_hh = (0.5, 1.0, -0.25), (0.1, -0.2, 0.3)  # gates i, g, o
    b_ih, b_hh = (0.0, 0.1, 0.2), (0.05, 0.0, -0.1)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(w_ih, dtype=torch.float64).reshape(3, 1))
        rnn.weight_hh_l0.copy_(torch.tensor(w_hh, dtype=torch.float64).reshape(3, 1))
        rnn.bias_ih_l0.copy_(torch.tensor(b_ih, dtype=torch.float64))
        rnn.bias_hh_l0.copy_(torch.tensor(b_hh, dtype=torch.float64))
    xs = [1.0, 0.5, 0.25, 2.0]
    h, c, expected_h, expected_c = 0.3, -0.2, [], []  # a non-zero starting state
    for x in xs:
        pre = [w_ih[k] * x + w_hh[k] * h + b_ih[k] + b_hh[k] for k in range(3)]
        i, g, o = sigmoid(pre[0]), math.tanh(pre[1]), sigmoid(pre[2])
        c = c + i * g
        h = o * math.tanh(c)
        expected_h.append(h)
        expected_c.append(c)
    state = (torch.tensor([[[0.3]]], dtype=torch.float64), torch.tensor([[[-0.2]]], dtype=torch.float64))
    aux: dict = {}
    _, (h_final, c_final) = model(torch.tensor(xs, dtype=torch.float64).reshape(1, 4, 1), state, aux=aux)
    torch.testing.assert_close(
        aux["hidden"].flatten(), torch.tensor(expected_h, dtype=torch.float64), rtol=1e-14, atol=0
    )
    torch.testing.assert_close(
        c_final.flatten(), torch.tensor(expected_c[-1:], dtype=torch.float64), rtol=1e-14, atol=0
    )
    torch.testing.assert_close(
        h_final.flatten(), torch.tensor(expected_h[-1:], dtype=torch.float64), rtol=1e-14, atol=0
    )
    # with these weights and inputs g > 0 on every frame: the cell only grows
    assert expected_c == sorted(expected_c)


def test_lstm_without_forget_gate_is_torch_lstm_with_the_forget_gate_held_open():
    """Two layers, random weights: torch's fused LSTM whose forget gate is pinned at exactly 1
    (zero weights, bias 1000: sigmoid(1000) == 1.0 in float64) computes the same thing."""
    torch.manual_seed(3)
    model = build("lstm-noforget", hidden_size=4, num_layers=2).double().eval()
    fused = torch.nn.LSTM(F, 4, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for name, param in fused.named_parameters():
            ours = getattr(model.rnn, name)  # same names; gates i, g, o vs torch's i, f, g, o
            i, g, o = ours.chunk(3)
            forget = torch.full_like(i, 1000.0 if name.startswith("bias_ih") else 0.0)
            param.copy_(torch.cat([i, forget, g, o]))
    x = torch.randn(3, 9, F, dtype=torch.float64)
    state = model.initial_state(3, "cpu")
    aux: dict = {}
    _, (h, c) = model(x, state, aux=aux)
    out, (h_fused, c_fused) = fused(x)
    torch.testing.assert_close(aux["hidden"], out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, h_fused.transpose(0, 1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c, c_fused.transpose(0, 1), rtol=1e-12, atol=1e-12)


def test_lstm_forget_gate_option():
    assert isinstance(build("lstm").rnn, torch.nn.LSTM)
    assert not isinstance(build("lstm-noforget").rnn, torch.nn.LSTM)
    # three gates instead of four: a quarter fewer recurrent parameters
    assert (
        build("lstm-noforget").num_parameters - build("lstm").num_parameters == -(4 * 8 * (F + 8 + 2) + 4 * 8 * 18) // 4
    )
    with pytest.raises(ConfigError, match="forget_gate.*'no'"):
        build("lstm", forget_gate="no")
