"""Fault cases for the options of ``mingru``, ``minlstm`` and ``mamba`` (issue 28).

Each case: ``nrstream train`` on the toy config with one bad architecture option exits 2 with
exactly one ``nrstream: error:`` line naming the architecture, the option and its value, no
traceback, and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot, toy_config_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = [
    ("mamba", "d_state", 0, "d_state must be a positive integer, got 0"),
    ("mamba", "d_state", 2.5, "d_state"),  # the registry's type check or ours: either names it
    ("mamba", "d_conv", 1, "d_conv must be an integer >= 2, got 1"),
    ("mamba", "expand", 0, "expand must be a positive integer, got 0"),
    ("mamba", "num_layers", -2, "num_layers must be a positive integer, got -2"),
    ("mamba", "dt_rank", "wide", "dt_rank must be a positive integer, got 'wide'"),
    ("mamba", "dt_min", 0, "dt_min must be a positive number, got 0"),
    ("mamba", "norm", "batch", "norm must be one of rms, layer, got 'batch'"),
    ("mamba", "scan", "fft", "scan must be one of auto, log, parallel, sequential, got 'fft'"),
    ("mingru", "chunk_size", 0, "chunk_size must be a positive integer, got 0"),
    ("mingru", "num_layers", 0, "num_layers must be a positive integer, got 0"),
    ("minlstm", "scan", "cuda", "scan must be one of auto, log, parallel, sequential, got 'cuda'"),
    ("minlstm", "hidden_size", -1, "hidden_size must be a positive integer, got -1"),
]


@pytest.mark.parametrize(("arch", "option", "value", "expected"), CASES, ids=[f"{a}-{o}-{v}" for a, o, v, _ in CASES])
def test_bad_option_is_one_line_naming_it(arch, option, value, expected, fault_home: Path, main_in_process):
    config = toy_config_dict(agents={"archs": [{"name": arch, "options": {option: value}}], "losses": ["ce"]})
    path = fault_home / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    before = snapshot(fault_home)
    line = assert_one_line_error(main_in_process("train", path), arch, option)
    assert expected in line, line
    assert_nothing_lost(before, fault_home, allow_new=False)
