"""The example third-party plugin installs with pip and registers ``example_mingru`` like a built-in
(its own name: the built-in ``mingru`` is taken)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nrstream.plugin.registry import get_registry, reload_plugins
from nrstream.testing import check_architecture

EXAMPLE = Path(__file__).resolve().parents[1] / "plugins" / "examples" / "mingru"


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed_mingru():
    """``pip install`` the example for real; uninstall it afterwards."""
    try:
        if pip("--version").returncode != 0:
            pytest.skip("pip is not available in this interpreter, cannot install the example plugin")
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"pip is not available: {exc}")
    # Reuse the local hatchling when there is one, so the install works offline.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    result = pip("install", "--no-deps", "--no-cache-dir", "--quiet", *isolation, str(EXAMPLE))
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    try:
        yield
    finally:
        pip("uninstall", "--yes", "--quiet", "nrstream-mingru")
        sys.modules.pop("nrstream_mingru", None)
        reload_plugins()


@pytest.fixture
def registry(installed_mingru, monkeypatch):
    # the example plus the built-ins it must coexist with; other plugins are not under test here
    monkeypatch.setenv("NRSTREAM_LOAD_PLUGINS", "example_mingru,recurrent,ssm,snn,minimal,toy")
    reload_plugins()
    yield get_registry()
    monkeypatch.delenv("NRSTREAM_LOAD_PLUGINS")
    reload_plugins()


def test_registered_by_its_distribution(registry):
    assert "example_mingru" in registry.names("architecture")
    assert registry.get("architecture", "example_mingru").plugin == "example_mingru"
    assert {"rnn", "gru", "lstm", "ssm", "snn", "mingru"} <= set(registry.names("architecture"))
    assert registry.get("architecture", "mingru").plugin == "minimal"  # the built-in, beside the example
    from nrstream.plugin.registry import describe_plugins

    entry = next(p for p in describe_plugins() if p["name"] == "example_mingru")
    assert entry["distribution"] == "nrstream-mingru"
    assert entry["registers"] == {"architecture": ["example_mingru"]}


def test_runs_and_learns_on_the_toy_stream(registry):
    from nrstream.data.datasets import load_dataset, make_stream

    torch.manual_seed(0)
    dataset = load_dataset("toy", seed=0)
    model = registry.create(
        "architecture",
        "example_mingru",
        input_size=dataset.feature_size,
        num_classes=dataset.num_classes,
        hidden_size=32,
    )
    stream = make_stream(dataset, "train", num_lanes=32, seed=0, device="cpu", gap_min=0, gap_max=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    state = model.initial_state(32, "cpu")
    for _ in range(80):
        chunk = stream.next_chunk(24)
        logits, state = model(chunk.x, state.detach(), chunk.start)
        keep = chunk.label >= 0
        loss = torch.nn.functional.cross_entropy(logits[keep], chunk.label[keep])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    test = make_stream(dataset, "test", num_lanes=64, seed=1, device="cpu", gap_min=0, gap_max=0)
    chunk = test.next_chunk(96)
    with torch.no_grad():
        aux: dict = {}
        logits, _ = model(chunk.x, model.initial_state(64, "cpu"), chunk.start, aux)
        assert aux["hidden"].shape == (64, 96, 32)
    accuracy = (logits.argmax(-1)[chunk.end] == chunk.label[chunk.end]).float().mean().item()
    assert accuracy > 0.6, f"mingru toy accuracy {accuracy:.2f}"


def test_passes_the_conformance_kit(registry):
    """What a plugin author runs: chunked == frame by frame, resets, gradients, shapes (float64, 1e-9)."""
    check_architecture(
        registry.get("architecture", "example_mingru").factory, options={"hidden_size": 8}, name="example_mingru"
    )
    check_architecture(registry.get("architecture", "example_mingru").factory, dtype=torch.float32)


def test_bad_config_value_is_quoted(registry):
    with pytest.raises(ValueError, match="hidden_size.*-3"):
        registry.create("architecture", "example_mingru", input_size=4, num_classes=2, hidden_size=-3)
