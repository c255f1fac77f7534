"""Config validation: one-line errors naming file, key path and the closest valid names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nrstream.config import (
    AgentConfig,
    agent_key,
    config_to_dict,
    load_config,
    parse_config,
)
from nrstream.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
AGENT = [{"arch": "gru", "loss": "ce_kl"}]


def error(raw, path="x.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_suggests_the_closest():
    assert error({"agents": AGENT, "train": {"epocs": 2}}) == "x.yaml: train.epocs: unknown key; did you mean 'epochs'?"


def test_unknown_section_lists_valid_sections_when_nothing_is_close():
    message = error({"agents": AGENT, "zzz": {}})
    assert message == "x.yaml: zzz: unknown key; valid keys: agents, run, data, train, evaluate"


def test_nested_unknown_key():
    message = error({"agents": AGENT, "data": {"stream": {"gap_mx": 3}}})
    assert message == "x.yaml: data.stream.gap_mx: unknown key; did you mean 'gap_max'?"


def test_wrong_type():
    assert error({"agents": AGENT, "train": {"epochs": "three"}}) == (
        "x.yaml: train.epochs: expected an integer, got 'three' (str)"
    )
    assert (
        error({"agents": AGENT, "train": {"amp": "yes"}})
        == "x.yaml: train.amp: expected true or false, got 'yes' (str)"
    )
    assert error({"agents": AGENT, "evaluate": {"lengths": [1, "x"]}}) == (
        "x.yaml: evaluate.lengths[1]: expected an integer, got 'x' (str)"
    )
    assert error({"agents": AGENT, "data": {"stream": {"noise": "pink"}}}) == (
        "x.yaml: data.stream.noise: expected one of gaussian, silence, recorded, got 'pink' (str)"
    )


def test_out_of_range_values():
    assert error({"agents": AGENT, "train": {"lr": 0}}) == "x.yaml: train.lr: must be > 0, got 0.0"
    assert error({"agents": AGENT, "data": {"stream": {"gap_min": 9, "gap_max": 3}}}) == (
        "x.yaml: data.stream.gap_max: must be >= gap_min (9), got 3"
    )


def test_unknown_plugin_names_suggest_registered_ones():
    message = error({"agents": [{"arch": "gur", "loss": "ce_kl"}]})
    assert message.startswith("x.yaml: agents[0].arch: unknown architecture 'gur'; did you mean 'gru'? (registered: ")
    assert error({"agents": {"archs": ["gru"], "losses": ["ce", "ce_kll"]}}).startswith(
        "x.yaml: agents.losses[1]: unknown loss 'ce_kll'; did you mean 'ce_kl'? (registered: "
    )
    assert error({"agents": AGENT, "data": {"source": "fashion_mnst"}}).startswith(
        "x.yaml: data.source: unknown data source 'fashion_mnst'; did you mean 'fashion_mnist'?"
    )
    assert error({"agents": AGENT, "evaluate": {"metrics": ["noise_entrop"]}}).startswith(
        "x.yaml: evaluate.metrics[0].name: unknown metric 'noise_entrop'; did you mean 'noise_entropy'?"
    )


def test_unknown_plugin_option_suggests_the_closest():
    raw = {"agents": {"archs": [{"name": "gru", "options": {"hiden_size": 8}}], "losses": ["ce"]}}
    assert error(raw) == (
        "x.yaml: agents.archs[0].options.hiden_size: unknown option of architecture 'gru'; did you mean 'hidden_size'?"
    )


def test_product_form_expands_archs_times_losses():
    config = parse_config(
        {"agents": {"archs": ["gru", {"name": "rnn", "options": {"hidden_size": 8}}], "losses": ["reset", "ce_kl"]}}
    )
    assert [a.label for a in config.agents] == ["gru/reset", "gru/ce_kl", "rnn/reset", "rnn/ce_kl"]
    assert config.agents[2].arch_options == {"hidden_size": 8}


def test_missing_agents_and_bad_yaml(tmp_path):
    assert error({"train": {}}) == "x.yaml: agents: missing required key"
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid_and_round_trip(path, tmp_path):
    config = load_config(path)
    resolved = tmp_path / "config.yaml"
    resolved.write_text(yaml.safe_dump(config_to_dict(config)))
    again = load_config(resolved)
    assert config_to_dict(again) == config_to_dict(config)


def test_agent_key_ignores_what_does_not_change_weights():
    base = parse_config({"agents": AGENT})
    key = agent_key(base, base.agents[0])
    other = parse_config({"agents": AGENT, "run": {"name": "x", "out_dir": "y"}, "train": {"progress": False}})
    assert agent_key(other, other.agents[0]) == key
    assert agent_key(parse_config({"agents": AGENT, "evaluate": {"lengths": [3]}}), base.agents[0]) == key
    changed = parse_config({"agents": AGENT, "train": {"lr": 0.1}})
    assert agent_key(changed, changed.agents[0]) != key
    assert agent_key(base, AgentConfig("gru", "ce")) != key
