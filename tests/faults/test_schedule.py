"""Fault injection: a bad ``data.stream.schedule`` is one line naming ``data.stream.schedule[i].KEY``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot, toy_config_dict


def _schedule(*phases: dict, **stream) -> dict:
    config = toy_config_dict()
    config["data"]["stream"].update(stream, schedule=list(phases))
    return config


def _scene(*phases: dict) -> dict:
    """A toy scene stream (a Gaussian background) with ``phases``."""
    return _schedule(*phases, background="gaussian")


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
    # a phase's scene (issue 27, item 1: the domain)
    "snr_range_low_above_high": (
        _scene({"frames": 100}, {"frames": 100, "stream": {"snr_db": [20, 5]}}),
        "data.stream.schedule[1].stream.snr_db: needs -120 <= low <= high <= 120, got [20, 5]",
    ),
    "level_range_not_a_pair": (
        _scene({"frames": 100, "stream": {"level_db": [6]}}),
        "data.stream.schedule[0].stream.level_db: expected [low, high] in dB, got [6]",
    ),
    "unknown_background_kind": (
        _scene({"frames": 100}, {"frames": 100, "stream": {"background": "recordedd"}}),
        "data.stream.schedule[1].stream.background: unknown background 'recordedd'; did you mean 'recorded'?",
    ),
    "background_none_in_a_scene": (
        _scene({"frames": 100, "stream": {"background": "none"}}),
        "data.stream.schedule[0].stream.background: a phase cannot turn the scene off",
    ),
    "scene_field_on_a_paper_style_stream": (
        _schedule({"frames": 100}, {"frames": 100, "stream": {"snr_db": [0, 5]}}),
        "data.stream.schedule[1].stream.snr_db: a phase of a paper-style stream (background: none) has no scene",
    ),
    "recorded_background_without_recordings": (
        _scene({"frames": 100}, {"frames": 100, "stream": {"background": "recorded"}}),
        "data.stream.schedule[1].stream.background: 'recorded' needs noise recordings, and data source 'toy'",
    ),
    "recorded_stream_background_without_recordings": (  # its stationary twin, checked by the same loop
        _schedule({"frames": 100}, background="recorded"),
        "data.stream.background: 'recorded' needs noise recordings, and data source 'toy' provides none; "
        "use 'gaussian' or 'none'",
    ),
    "speakers_on_a_source_without_speakers": (
        _schedule({"frames": 100, "speakers": ["george"]}),
        "data.stream.schedule[0].speakers: data source 'toy' records no speaker per sample",
    ),
    "empty_speaker_list": (
        _schedule({"frames": 100, "speakers": []}),
        "data.stream.schedule[0].speakers: is empty",
    ),
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
