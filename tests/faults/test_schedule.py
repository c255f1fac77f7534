"""Fault injection: a bad ``data.stream.schedule`` is one line naming ``data.stream.schedule[i].KEY``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot, toy_config_dict


def _schedule(*phases: dict) -> dict:
    config = toy_config_dict()
    config["data"]["stream"]["schedule"] = list(phases)
    return config


CASES = {
    "empty_class_set": (
        _schedule({"frames": 100, "classes": [0]}, {"frames": 100, "classes": []}),
        "data.stream.schedule[1].classes: is empty",
    ),
    "overlapping_class_sets": (
        _schedule({"frames": 100, "classes": [0, 1]}, {"frames": 100, "classes": [1, 2]}),
        "data.stream.schedule[1].classes: shares 1 with schedule[0], another task",
    ),
    "unknown_class_name": (
        _schedule({"frames": 100, "classes": ["class_0"]}, {"frames": 100, "classes": ["class_7"]}),
        "data.stream.schedule[1].classes: unknown class 'class_7'",
    ),
    "unknown_class_index": (
        _schedule({"frames": 100, "classes": [3]}),  # the fault toy has 3 classes: 0..2
        "data.stream.schedule[0].classes: unknown class 3",
    ),
    "negative_length": (_schedule({"frames": -100}), "data.stream.schedule[0].frames: must be >= 1 frame, got -100"),
    "blend_longer_than_phase": (
        _schedule({"frames": 100}, {"frames": 50, "blend": 80}),
        "data.stream.schedule[1].blend: 80 frames is longer than the phase itself (50 frames)",
    ),
    "unknown_phase_key": (
        _schedule({"frames": 100, "clases": [0]}),
        "data.stream.schedule[0].clases: unknown key; did you mean 'classes'?",
    ),
    "phase_setting_it_cannot_change": (
        _schedule({"frames": 100, "stream": {"noise": "silence"}}),
        "data.stream.schedule[0].stream.noise: a phase cannot change this setting",
    ),
    "not_a_list": (_schedule(), "data.stream.schedule: needs at least one phase"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_schedule(case, fault_home: Path, main_in_process):
    config, expected = CASES[case]
    path = fault_home / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    before = snapshot(fault_home)
    result = main_in_process("train", path)
    line = assert_one_line_error(result, str(path), expected)
    assert_nothing_lost(before, fault_home, allow_new=False)
    assert len(line) < 300
