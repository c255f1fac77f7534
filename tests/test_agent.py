"""The agent: state carried across chunks, oracle resets equal fresh starts, no labels seen."""

from __future__ import annotations

import pytest
import torch

from nrstream.agent import Agent, detach_state, map_state
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.plugin.registry import get_registry


@pytest.fixture(scope="module")
def setup():
    data = load_dataset("toy", seed=1)
    torch.manual_seed(0)
    model = (
        get_registry()
        .create("architecture", "gru", input_size=data.feature_size, num_classes=data.num_classes, hidden_size=16)
        .double()
    )
    return data, model


def test_chunked_agent_equals_one_long_call(setup):
    data, model = setup
    chunk = make_stream(data, "test", num_lanes=3, seed=2, gap_min=1, gap_max=4).next_chunk(120)
    x = chunk.x.double()
    whole = Agent(model)(x)
    agent = Agent(model)
    parts = torch.cat([agent(x[:, i : i + 25]) for i in range(0, 120, 25)], 1)
    assert torch.allclose(parts, whole, atol=1e-12)


def test_oracle_agent_sees_each_sample_from_a_fresh_state(setup):
    data, model = setup
    bank = data.splits["test"]
    chunk = make_stream(data, "test", num_lanes=2, seed=3, gap_min=2, gap_max=6).next_chunk(150)
    logits = Agent(model, reset_policy="oracle")(chunk.x.double(), chunk.start)
    for lane in range(2):
        for start in chunk.start[lane].nonzero().flatten().tolist():
            sid = int(chunk.sample_id[lane, start])
            length = int(bank.lengths[sid])
            if start + length > 150:
                continue
            alone, _ = model(bank.features[sid : sid + 1, :length].double(), model.initial_state(1, "cpu"))
            assert torch.allclose(logits[lane, start : start + length], alone[0], atol=1e-10)


def test_never_policy_ignores_starts(setup):
    data, model = setup
    chunk = make_stream(data, "test", num_lanes=2, seed=3, gap_min=2, gap_max=6).next_chunk(60)
    never = Agent(model, reset_policy="never")
    assert torch.equal(never(chunk.x.double(), chunk.start), Agent(model)(chunk.x.double()))
    oracle = Agent(model, reset_policy="oracle")(chunk.x.double(), chunk.start)
    assert not torch.allclose(oracle, Agent(model)(chunk.x.double()))


def test_detach_keeps_values_and_cuts_the_graph(setup):
    data, model = setup
    agent = Agent(model)
    agent(torch.randn(2, 5, data.feature_size, dtype=torch.float64))
    before = agent.state
    assert before.requires_grad
    agent.detach()
    assert torch.equal(agent.state, before) and not agent.state.requires_grad
    nested = (torch.ones(2, requires_grad=True) * 2, (torch.zeros(1, requires_grad=True) + 1,))
    assert not any(t.requires_grad for t in (detach_state(nested)[0], detach_state(nested)[1][0]))
    with pytest.raises(TypeError, match="tensor or a tuple of tensors, got dict"):
        map_state(torch.Tensor.detach, {"h": torch.ones(1)})


def test_agent_rejects_unknown_policy(setup):
    with pytest.raises(ValueError, match="reset_policy must be one of .* got 'sometimes'"):
        Agent(setup[1], reset_policy="sometimes")
