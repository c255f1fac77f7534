"""Fault injection: hostile or mistyped configs and ``--set`` overrides (issue 11).

Every case runs ``nrstream train`` (or ``evaluate``) on a bad config and asserts the
promise: exit code 2, exactly one ``nrstream: error:`` line on stderr naming the file or
key, no traceback, and nothing created or changed in the working folder. Most cases call
``nrstream.cli.main`` in this process (the same code path as the console script, ~1 s
faster each); the ones whose point is the process itself (bytes read from a device, a
plugin calling ``sys.exit``, an alias bomb, non-UTF-8 bytes) run the real console script
in a subprocess.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot, toy_config_dict


def _write(folder: Path, name: str, config: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _with(section: str, key: str, value, **more) -> dict:
    """The toy config with ``section.key = value`` (and ``more`` top-level sections replaced)."""
    config = toy_config_dict(**more)
    config.setdefault(section, {})[key] = value
    return config


def _raw_with(folder: Path, name: str, line: str) -> Path:
    """The toy config as YAML text with ``line`` appended to its ``train:`` section."""
    text = yaml.safe_dump(toy_config_dict(), sort_keys=False).replace("train:\n", f"train:\n  {line}\n", 1)
    path = folder / name
    path.write_text(text)
    return path


def check(result, home: Path, before, *names: str) -> str:
    line = assert_one_line_error(result, *names)
    assert_nothing_lost(before, home, allow_new=False)
    return line


# ---------------------------------------------------------------- values (in process)

VALUE_CASES = {
    "gap_max_float_1e12": (
        lambda: _with("data", "stream", {"gap_min": 2, "gap_max": 1.0e12}),
        "data.stream.gap_max: expected an integer, got 1000000000000.0 (float)",
    ),
    "gap_max_int_1e12": (
        lambda: _with("data", "stream", {"gap_min": 2, "gap_max": 10**12}),
        "data.stream.gap_max: must be <= 100000 frames",
    ),
    "gap_max_2_pow_63": (
        lambda: _with("data", "stream", {"gap_min": 2, "gap_max": 2**63}),
        "data.stream.gap_max: integer too large (at most 2**53 in magnitude)",
    ),
    "lanes_1e12": (lambda: _with("train", "lanes", 10**12), "train.lanes: must be <= 65536, got 1000000000000"),
    "hidden_size_1e6": (
        lambda: toy_config_dict(
            agents={"archs": [{"name": "gru", "options": {"hidden_size": 10**6}}], "losses": ["ce"]}
        ),
        "agents.archs[0].options: architecture 'gru' would have 3e+12 parameters",
    ),
    "hidden_size_negative": (
        lambda: toy_config_dict(agents={"archs": [{"name": "gru", "options": {"hidden_size": -4}}], "losses": ["ce"]}),
        "agents.archs[0].options: architecture 'gru' rejects its options",
    ),
    "metric_option_wrong_type": (
        lambda: _with("evaluate", "metrics", [{"name": "rolling_accuracy", "options": {"every": "ten"}}]),
        "evaluate.metrics[0].options.every: option of metric 'rolling_accuracy': expected an integer",
    ),
    "loss_option_rejected": (
        lambda: toy_config_dict(agents={"archs": ["gru"], "losses": [{"name": "ce_kl", "options": {"kl_weight": -1}}]}),
        "agents.losses[0].options: loss 'ce_kl' rejects its options",
    ),
    "run_name_slash": (lambda: _with("run", "name", "a/b"), "run.name: must be a plain folder name"),
    "run_name_dot": (lambda: _with("run", "name", "."), "run.name: must be a plain folder name"),
    "run_name_dotdot": (lambda: _with("run", "name", ".."), "run.name: must be a plain folder name"),
    "run_name_100k": (lambda: _with("run", "name", "n" * 100_000), "run.name: expected a string of at most 4096"),
    "seed_conflicts_with_seeds": (
        lambda: _with("run", "seeds", [1, 2]),
        "run.seed: 0 disagrees with run.seeds[0] (1)",
    ),
    "executor_unknown": (lambda: _with("run", "executor", "spark"), "run.executor: expected one of local, ray"),
    "config_is_a_list": (lambda: [toy_config_dict()], "a config must be a mapping of sections"),
    "patience_negative": (lambda: _with("train", "patience", -1), "train.patience: must be >= 0, got -1"),
    "validation_warmup_negative": (
        lambda: _with("train", "validation_warmup", -2), "train.validation_warmup: must be >= 0, got -2"
    ),
    "validation_warmup_huge": (
        lambda: _with("train", "validation_warmup", 10**6), "train.validation_warmup: must be <= 10000, got 1000000"
    ),
    "validation_warmup_text": (lambda: _with("train", "validation_warmup", "warm"), "train.validation_warmup"),
    "patience_without_validation": (
        lambda: _with("train", "patience", 3, train={**toy_config_dict()["train"], "validate": False}),
        "train.patience: early stopping watches the validation accuracy; set train.validate: true",
    ),
    "min_delta_above_one": (lambda: _with("train", "min_delta", 2), "train.min_delta: must be <= 1, got 2"),
    "min_epochs_without_patience": (
        lambda: _with("train", "min_epochs", 5),
        "train.min_epochs: only delays early stopping, which is off; set train.patience (> 0) or drop it",
    ),
    "evaluate_stream_unknown_key": (
        lambda: _with("evaluate", "stream", {"gap_mx": 3}),
        "evaluate.stream.gap_mx: unknown key; did you mean 'gap_max'?",
    ),
    "evaluate_stream_gap_below_data_gap_min": (
        lambda: _with("evaluate", "stream", {"gap_max": 1}),
        "evaluate.stream.gap_max: must be >= gap_min (2), got 1",
    ),
    "evaluate_stream_not_a_mapping": (
        lambda: _with("evaluate", "stream", [1, 2]),
        "evaluate.stream: expected a mapping of names to values",
    ),
}


@pytest.mark.parametrize("case", sorted(VALUE_CASES))
def test_bad_value(case, fault_home, main_in_process):
    make, expected = VALUE_CASES[case]
    path = _write(fault_home, "bad.yaml", make())
    before = snapshot(fault_home)
    line = check(main_in_process("train", path), fault_home, before, str(path), expected)
    assert len(line) < 300


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("weight_decay: .nan", "train.weight_decay: must be a finite number, got nan"),
        ("grad_clip: .inf", "train.grad_clip: must be a finite number, got inf"),
        ("weight_decay: -.inf", "train.weight_decay: must be a finite number, got -inf"),
        ("steps: " + "9" * 5000, "invalid value: an integer with more than 4300 digits"),
        ("epochs: 1\n  epochs: 2", "key 'epochs' is given twice"),
        ("steps: !!python/object/apply:os.system ['touch pwned']", "invalid YAML"),
    ],
    ids=["nan", "inf", "minus_inf", "5000_digits", "duplicate_key", "python_tag"],
)
def test_bad_yaml_value(line, expected, fault_home, main_in_process):
    path = _raw_with(fault_home, "bad.yaml", line)
    before = snapshot(fault_home)
    check(main_in_process("train", path), fault_home, before, str(path), expected)
    assert not (fault_home / "pwned").exists()


def test_evaluate_rejects_a_bad_config_before_doing_anything(fault_home, main_in_process):
    path = _raw_with(fault_home, "bad.yaml", "weight_decay: .nan")
    before = snapshot(fault_home)
    check(main_in_process("evaluate", path), fault_home, before, str(path), "train.weight_decay")


# ---------------------------------------------------------------- --set (in process)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.options.num_classes=[1, 2", "--set data.options.num_classes: line 1: invalid YAML"),
        ("train.epocs=1", "--set train.epocs: unknown key; did you mean 'epochs'?"),
        ("train.epochs", "--set train.epochs: expected KEY=VALUE"),
        ("train.lanes=1000000000000", "--set train.lanes: must be <= 65536"),
        ("agents.losses=[ce, ce_kll]", "--set agents.losses[1]: unknown loss 'ce_kll'; did you mean 'ce_kl'?"),
        ("evaluate.stream={noise: pink}", "evaluate.stream.noise: expected one of gaussian, silence, recorded"),
    ],
    ids=["unclosed_list", "unknown_key", "no_value", "too_many_lanes", "unknown_loss", "shift_noise_unknown"],
)
def test_bad_override(override, expected, fault_home, toy_config, main_in_process):
    before = snapshot(fault_home)
    check(main_in_process("train", toy_config, "--set", override), fault_home, before, str(toy_config), expected)


# ---------------------------------------------------------------- the file itself


def test_config_path_is_a_folder(fault_home, main_in_process):
    (fault_home / "folder.yaml").mkdir()
    before = snapshot(fault_home)
    check(main_in_process("train", "folder.yaml"), fault_home, before, "folder.yaml: is a folder")


def test_config_path_is_missing(fault_home, main_in_process):
    before = snapshot(fault_home)
    check(main_in_process("train", "absent.yaml"), fault_home, before, "absent.yaml: no such config file")


def test_config_path_is_unreadable(fault_home, main_in_process):
    if os.geteuid() == 0:
        pytest.skip("root reads any file: an unreadable config cannot be made here")
    path = _write(fault_home, "secret.yaml", toy_config_dict())
    path.chmod(0)
    before = snapshot_without(fault_home, path)
    try:
        result = main_in_process("train", path)
    finally:
        path.chmod(0o644)
    assert_one_line_error(result, str(path), "cannot read config: Permission denied")
    assert before == snapshot_without(fault_home, path)


def snapshot_without(home: Path, skip: Path):
    return {k: v for k, v in snapshot(home).items() if k != skip.name} if os.access(skip, os.R_OK) else {}


def test_config_path_under_a_file(fault_home, toy_config, main_in_process):
    before = snapshot(fault_home)
    check(main_in_process("train", f"{toy_config}/x.yaml"), fault_home, before, "cannot read config")


def test_fifty_megabyte_run_name(fault_home, main_in_process):
    path = fault_home / "huge.yaml"
    path.write_text(
        yaml.safe_dump(toy_config_dict(), sort_keys=False).replace("name: toy", "name: " + "n" * 50_000_000)
    )
    before = snapshot(fault_home)
    check(main_in_process("train", path), fault_home, before, str(path), "larger than 1024 KiB")


# ---------------------------------------------------------------- subprocesses: the process is the point


def test_dev_zero_is_not_read_to_the_end(cli, fault_home):
    before = snapshot(fault_home)
    check(cli("train", "/dev/zero"), fault_home, before, "/dev/zero: larger than 1024 KiB")


def test_non_utf8_bytes(cli, fault_home):
    path = fault_home / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(_with("run", "name", "caf\xe9"), allow_unicode=True).encode("latin-1"))
    before = snapshot(fault_home)
    check(cli("train", path), fault_home, before, str(path), "not UTF-8 text (byte 0xe9")


def test_yaml_alias_bomb(cli, fault_home):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = fault_home / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nrun: {name: *a9}\n")
    before = snapshot(fault_home)
    line = check(cli("train", path, timeout=60), fault_home, before, str(path), "alias bomb")
    assert len(line) < 300


def _installed_plugin(root: Path, name: str, source: str) -> Path:
    """A really installed distribution (``*.dist-info`` with an ``nrstream`` entry point) under ``root``."""
    site = root / "site"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"nrstream_fault_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: nrstream-fault-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[nrstream]\n{name} = {name}\n")
    return site


def test_a_plugin_calling_sys_exit_on_import_does_not_end_the_cli_silently(cli, fault_home, toy_config):
    site = _installed_plugin(fault_home.parent / "plugin", "exits", "import sys\nsys.exit(0)\n")
    env = {"PYTHONPATH": str(site), "NRSTREAM_LOAD_PLUGINS": "toy,recurrent,losses,metrics,exits"}
    before = snapshot(fault_home)
    result = cli("--strict", "train", toy_config, env_extra=env)
    check(result, fault_home, before, "'exits'", "failed to import: SystemExit: 0")


def test_toy_feature_size_negative_is_one_line_naming_the_source(fault_home, main_in_process):
    """A data-source option only the source can judge: refused when the data loads, before any file is written."""
    config = toy_config_dict()
    config["data"]["options"]["feature_size"] = -3
    path = _write(fault_home, "bad.yaml", config)
    before = snapshot(fault_home)
    check(main_in_process("train", path), fault_home, before, "'toy'", "negative dimension -3")


def test_config_that_fails_while_being_read(fault_home, main_in_process):
    """A file that opens but cannot be read (``/proc/self/mem`` at offset 0: EIO), readable even as root."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc here")
    before = snapshot(fault_home)
    check(main_in_process("train", "/proc/self/mem"), fault_home, before, "/proc/self/mem: cannot read config")
