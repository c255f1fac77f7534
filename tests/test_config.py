"""Config validation: one-line errors naming file, key path and the closest valid names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nrstream.errors import ConfigError
from nrstream.lab.config import (
    MAX_CONFIG_BYTES,
    MAX_YAML_NODES,
    AgentConfig,
    agent_key,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_config,
)

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
    assert message == "x.yaml: zzz: unknown key; valid keys: agents, run, data, train, evaluate, continual"


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


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.relative_to(ROOT / "configs").as_posix()
)
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


# ---------------------------------------------------------------- stream settings, run.*, bounds


def test_data_stream_is_the_one_stream_settings_object():
    from nrstream.stream.settings import StreamSettings

    config = parse_config({"agents": AGENT}, check_plugins=False)
    assert config.data.stream == StreamSettings()
    custom = parse_config({"agents": AGENT, "data": {"stream": {"gap_max": 40}}}, check_plugins=False)
    assert custom.data.stream == StreamSettings(gap_max=40)


def test_run_defaults_keep_one_seed_and_the_local_executor():
    run = parse_config({"agents": AGENT}, check_plugins=False).run
    assert (run.seed, run.seeds, run.executor, run.ray_address) == (0, [0], "local", None)
    assert (run.resources.num_cpus, run.resources.num_gpus) == (1.0, 0.0)


def test_seed_and_seeds_interact_as_documented():
    def run_of(section):
        return parse_config({"agents": AGENT, "run": section}, check_plugins=False).run

    assert (run_of({"seed": 7}).seed, run_of({"seed": 7}).seeds) == (7, [7])
    assert (run_of({"seeds": [3, 1, 2]}).seed, run_of({"seeds": [3, 1, 2]}).seeds) == (3, [3, 1, 2])
    assert run_of({"seed": 3, "seeds": [3, 4]}).seeds == [3, 4]
    assert error({"agents": AGENT, "run": {"seed": 1, "seeds": [0, 1]}}).startswith(
        "x.yaml: run.seed: 1 disagrees with run.seeds[0] (0); give run.seeds alone"
    )
    assert error({"agents": AGENT, "run": {"seeds": [0, 1, 0]}}) == "x.yaml: run.seeds[2]: seed 0 is listed twice"
    assert error({"agents": AGENT, "run": {"seeds": []}}) == "x.yaml: run.seeds: needs at least one seed"
    assert error({"agents": AGENT, "run": {"seeds": [-1]}}) == "x.yaml: run.seeds[0]: must be >= 0, got -1"


def test_seeds_do_not_change_the_checkpoint_key_of_seed_0():
    one = parse_config({"agents": AGENT}, check_plugins=False)
    three = parse_config({"agents": AGENT, "run": {"seeds": [0, 1, 2], "executor": "ray"}}, check_plugins=False)
    assert agent_key(three, three.agents[0]) == agent_key(one, one.agents[0])
    assert agent_key(three, three.agents[0], seed=1) != agent_key(one, one.agents[0])
    assert agent_key(three, three.agents[0], seed=1) == agent_key(one, one.agents[0], seed=1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"run": {"executor": "spark"}}, "x.yaml: run.executor: expected one of local, ray, got 'spark' (str)"),
        ({"run": {"resources": {"num_gpus": -1}}}, "x.yaml: run.resources.num_gpus: must be >= 0, got -1.0"),
        ({"run": {"resources": {"num_cpus": 0}}}, "x.yaml: run.resources.num_cpus: must be > 0, got 0.0"),
        ({"run": {"resources": {"gpus": 1}}}, "x.yaml: run.resources.gpus: unknown key; did you mean 'num_gpus'?"),
        (
            {"run": {"ray_address": "a b"}},
            "x.yaml: run.ray_address: expected 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got 'a b'",
        ),
        ({"train": {"lanes": 10**12}}, "x.yaml: train.lanes: must be <= 65536, got 1000000000000"),
        ({"train": {"weight_decay": float("nan")}}, "x.yaml: train.weight_decay: must be a finite number, got nan"),
        ({"train": {"lr": float("inf")}}, "x.yaml: train.lr: must be a finite number, got inf"),
        (
            {"train": {"steps": 2**63}},
            "x.yaml: train.steps: integer too large (at most 2**53 in magnitude), got 9223372036854775808",
        ),
        (
            {"data": {"stream": {"gap_max": 10**12}}},
            "x.yaml: data.stream.gap_max: must be <= 100000 frames, got 1000000000000",
        ),
        (
            {"data": {"stream": {"gap_max": 1e12}}},
            "x.yaml: data.stream.gap_max: expected an integer, got 1000000000000.0 (float)",
        ),
        (
            {"data": {"stream": {"noise_scale": float("nan")}}},
            "x.yaml: data.stream.noise_scale: must be a finite number, got nan",
        ),
        (
            {"data": {"options": {"jitter": float("nan")}}},
            "x.yaml: data.options.jitter: must be a finite number, got nan",
        ),
        ({"evaluate": {"lengths": [1, 10**6]}}, "x.yaml: evaluate.lengths[1]: must be <= 100000, got 1000000"),
        ({"run": {"name": "a/b"}}, None),
        ({"run": {"name": ".."}}, None),
        ({"run": {"name": "."}}, None),
        ({"run": {"name": ""}}, None),
        ({"run": {"name": "x\ny"}}, None),
    ],
)
def test_values_out_of_their_sane_range_are_one_line_errors(raw, message):
    got = error({"agents": AGENT, **raw})
    if message is None:
        assert got.startswith("x.yaml: run.name: must be a plain folder name")
    else:
        assert got == message


def test_error_messages_quote_at_most_80_characters_of_a_value():
    got = error({"agents": AGENT, "run": {"name": "n" * 50_000_000}})
    assert got.startswith("x.yaml: run.name: expected a string of at most 4096 characters") and "nnn... (str)" in got
    assert len(got) < 200
    got = error({"agents": AGENT, "run": {"name": "n" * 1000}})
    assert got.startswith("x.yaml: run.name: must be at most 100 characters") and got.endswith("...")
    got = error({"agents": AGENT, "train": {"epochs": ["x" * 1000] * 1000}})
    assert len(got) < 200 and got.startswith("x.yaml: train.epochs: expected an integer, got [")


# ---------------------------------------------------------------- plugin options at load


def test_parse_without_plugins_loads_no_plugin_and_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; from nrstream.lab.config import parse_config; "
        "parse_config({'agents': [{'arch': 'nonexistent', 'loss': 'x'}]}, check_plugins=False); "
        "print('torch' in sys.modules, 'nrstream_plugins' in sys.modules, 'nrstream.plugin.registry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"agents": {"archs": [{"name": "gru", "options": {"hidden_size": 10**6}}], "losses": ["ce"]}},
            "x.yaml: agents.archs[0].options: architecture 'gru' would have 3e+12 parameters",
        ),
        (
            {"agents": {"archs": [{"name": "gru", "options": {"hidden_size": "big"}}], "losses": ["ce"]}},
            "x.yaml: agents.archs[0].options.hidden_size: option of architecture 'gru': expected an integer, got 'big'",
        ),
        (
            {"agents": {"archs": [{"name": "gru", "options": {"hidden_size": -3}}], "losses": ["ce"]}},
            "x.yaml: agents.archs[0].options: architecture 'gru' rejects its options: hidden_size must be a positive",
        ),
        (
            {"agents": {"archs": [{"name": "gru", "options": {"input_size": 3}}], "losses": ["ce"]}},
            "x.yaml: agents.archs[0].options.input_size: unknown option of architecture 'gru'",
        ),
        (
            {"agents": {"archs": ["gru"], "losses": [{"name": "ce_kl", "options": {"kl_weight": -1}}]}},
            "x.yaml: agents.losses[0].options: loss 'ce_kl' rejects its options: kl_weight must be a number >= 0",
        ),
        (
            {"agents": AGENT, "evaluate": {"metrics": [{"name": "rolling_accuracy", "options": {"every": "ten"}}]}},
            "x.yaml: evaluate.metrics[0].options.every: option of metric 'rolling_accuracy': expected an integer",
        ),
        (
            {"agents": AGENT, "data": {"options": {"feature_size": "8"}}},
            "x.yaml: data.options.feature_size: option of data source 'toy': expected an integer, got '8' (str)",
        ),
    ],
)
def test_every_plugin_option_is_checked_at_load(raw, message):
    assert error(raw).startswith(message)


# ---------------------------------------------------------------- --set overrides


def test_overrides_set_nested_keys_lists_and_mappings():
    raw = {"agents": {"archs": ["gru"], "losses": ["ce"]}, "train": {"epochs": 3}}
    out = apply_overrides(
        raw,
        [
            "train.epochs=1",
            "agents.losses=[ce_kl, reset]",
            "data.options={num_classes: 3}",
            "data.stream.gap_max=9",
            "agents.archs[0]={name: gru, options: {hidden_size: 8}}",
            "run.checkpoint_dir=null",
        ],
    )
    assert raw == {"agents": {"archs": ["gru"], "losses": ["ce"]}, "train": {"epochs": 3}}  # not changed
    assert out["train"]["epochs"] == 1 and out["agents"]["losses"] == ["ce_kl", "reset"]
    assert out["data"] == {"options": {"num_classes": 3}, "stream": {"gap_max": 9}}
    assert out["agents"]["archs"][0] == {"name": "gru", "options": {"hidden_size": 8}}
    assert out["run"] == {"checkpoint_dir": None}
    config = parse_config(out, check_plugins=False)
    assert [a.label for a in config.agents] == ["gru/ce_kl", "gru/reset"]


def test_overrides_land_in_the_resolved_config(tmp_path):
    config = load_config(ROOT / "configs/toy.yaml", overrides=["train.epochs=1", "agents.losses=[ce_kl]"])
    resolved = config_to_dict(config)
    assert resolved["train"]["epochs"] == 1
    assert resolved["agents"] == [
        {"arch": "gru", "loss": "ce_kl", "arch_options": {"hidden_size": 32}, "loss_options": {}}
    ]
    assert config.overrides == ["train.epochs=1", "agents.losses=[ce_kl]"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(resolved))
    assert config_to_dict(load_config(tmp_path / "config.yaml")) == resolved


def test_the_last_seed_spelling_on_the_command_line_wins():
    config = load_config(ROOT / "configs/toy.yaml", overrides=["run.seeds=[4, 5]"], check_plugins=False)
    assert (config.run.seed, config.run.seeds) == (4, [4, 5])
    config = load_config(ROOT / "configs/toy.yaml", overrides=["run.seed=9"], check_plugins=False)
    assert (config.run.seed, config.run.seeds) == (9, [9])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epocs=1", "configs/toy.yaml: --set train.epocs: unknown key; did you mean 'epochs'?"),
        ("train.epochs=three", "configs/toy.yaml: --set train.epochs: expected an integer, got 'three' (str)"),
        ("train.epochs", "configs/toy.yaml: --set train.epochs: expected KEY=VALUE, e.g. --set train.epochs=1"),
        (
            "data.options.num_classes=[1, 2",
            "configs/toy.yaml: --set data.options.num_classes: line 1: invalid YAML: expected ',' or ']'",
        ),
        ("train..epochs=1", "configs/toy.yaml: --set train..epochs: 'train..epochs' is not a key path"),
        (
            "agents.archs[7].name=gru",
            "configs/toy.yaml: --set agents.archs[7].name: agents.archs[7] does not exist (1)",
        ),
        ("agents.losses=[ce, ce_kll]", "configs/toy.yaml: --set agents.losses[1]: unknown loss 'ce_kll'; did you mean"),
        ("train.epochs=!!python/object:os.system x", "configs/toy.yaml: --set train.epochs: line 1: invalid YAML"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "configs/toy.yaml", overrides=[override])
    got = str(info.value).replace(str(ROOT) + "/", "")
    assert "\n" not in got
    assert got.startswith(message), got


# ---------------------------------------------------------------- reading the file


def test_config_files_are_read_within_limits(tmp_path):
    def load_error(path) -> str:
        with pytest.raises(ConfigError) as info:
            load_config(path, check_plugins=False)
        assert "\n" not in str(info.value)
        return str(info.value)

    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("agents: [{arch: gru, loss: ce}]\nrun: {name: caf\xe9}\n".encode("latin-1"))
    assert load_error(latin) == f"{latin}: not UTF-8 text (byte 0xe9 at offset 47); save it as UTF-8"
    assert load_error(tmp_path) == f"{tmp_path}: is a folder, not a config file; pass a .yaml file"
    assert load_error("/dev/zero") == "/dev/zero: larger than 1024 KiB; a config is a short YAML file"
    big = tmp_path / "big.yaml"
    big.write_text("run: {name: " + "x" * (MAX_CONFIG_BYTES + 10) + "}\n")
    assert load_error(big).endswith("larger than 1024 KiB; a config is a short YAML file")
    twice = tmp_path / "twice.yaml"
    twice.write_text("agents: [{arch: gru, loss: ce}]\ntrain: {epochs: 1}\ntrain: {epochs: 2}\n")
    assert load_error(twice) == f"{twice}: line 3: key 'train' is given twice"


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    import time

    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nagents: *a9\n")
    began = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(bomb, check_plugins=False)
    assert time.perf_counter() - began < 2
    assert str(info.value) == (
        f"{bomb}: more than {MAX_YAML_NODES} values once YAML aliases are expanded (an alias bomb?); "
        "write the values out or use fewer aliases"
    )
    # a modest, legitimate use of aliases still works
    fine = tmp_path / "fine.yaml"
    fine.write_text(
        "agents:\n  archs: [{name: gru, options: &o {hidden_size: 8}}, {name: rnn, options: *o}]\n  losses: [ce]\n"
    )
    config = load_config(fine, check_plugins=False)
    assert [a.arch_options for a in config.agents] == [{"hidden_size": 8}, {"hidden_size": 8}]


def test_parse_then_resolve_is_the_same_as_one_call():
    from nrstream.lab.config import resolve_plugins

    raw = {"agents": [{"arch": "gur", "loss": "ce_kl"}]}
    config = parse_config(raw, "x.yaml", check_plugins=False)  # structure only: the typo is not seen yet
    with pytest.raises(ConfigError) as info:
        resolve_plugins(config)
    assert str(info.value) == error(raw)


def test_checkpoint_keys_of_existing_configs_do_not_change():
    """Keys computed by the config code before StreamSettings, run.seeds and the scene fields existed."""
    config = load_config(ROOT / "configs/toy.yaml", check_plugins=False)
    assert [agent_key(config, a) for a in config.agents] == ["afcba7973aa61b77", "c13f467a820b3fcb"]
    scene = load_config(ROOT / "configs/toy.yaml", overrides=["data.stream.background=silence"], check_plugins=False)
    assert agent_key(scene, scene.agents[0]) != "afcba7973aa61b77"
