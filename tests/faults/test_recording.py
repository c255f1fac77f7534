"""Fault cases of ``nrstream data make-recording``: one line, exit 2, nothing half-written, nothing lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot


def _make(main_in_process, root: Path, out: Path, *extra: str, minutes: str = "0.2"):
    args = ["data", "make-recording", "speech_commands", "-o", f"root={root}", "--minutes", minutes]
    return main_in_process(*args, "--out", out, "--truth", out.with_suffix(".csv"), *extra)


def test_onto_a_full_disk_leaves_what_was_there(main_in_process, speech_root, full_disk):
    disk = full_disk()  # 64 KiB; 12 s of 32-bit float audio is 768 kB
    (disk / "rec.wav").write_bytes(b"an older recording")
    before = snapshot(disk)
    result = _make(main_in_process, speech_root, disk / "rec.wav")
    assert_one_line_error(result, "rec")
    assert_nothing_lost(before, disk, allow_new=False)


def test_out_in_a_read_only_folder(main_in_process, speech_root, fault_home, read_only):
    folder = read_only(fault_home / "ro")
    result = _make(main_in_process, speech_root, folder / "rec.wav")
    assert_one_line_error(result, "rec")
    assert not list(folder.iterdir())


def test_out_is_a_folder(main_in_process, speech_root, fault_home):
    (fault_home / "rec.wav").mkdir()
    (fault_home / "rec.wav" / "keep.txt").write_text("mine")
    before = snapshot(fault_home / "rec.wav")
    result = _make(main_in_process, speech_root, fault_home / "rec.wav")
    assert_one_line_error(result, "rec.wav")
    assert_nothing_lost(before, fault_home / "rec.wav", allow_new=False)
    assert not (fault_home / "rec.csv").exists()


def test_split_without_background_recordings(main_in_process, speech_root, fault_home):
    shutil.rmtree(speech_root / "_background_noise_")
    result = _make(main_in_process, speech_root, fault_home / "rec.wav")
    assert_one_line_error(result, str(speech_root), "_background_noise_")
    assert not (fault_home / "rec.wav").exists() and not (fault_home / "rec.csv").exists()


def test_config_with_a_bad_stream_setting_names_file_and_key(main_in_process, speech_root, fault_home):
    config = fault_home / "scene.yaml"
    stream = {"gap_min": 50, "gap_max": 10, "noise": "recorded", "background": "recorded"}
    data = {"source": "speech_commands", "options": {"root": str(speech_root)}, "stream": stream}
    config.write_text(yaml.safe_dump({"data": data, "agents": [{"arch": "gru", "loss": "ce"}]}))
    args = ["data", "make-recording", "--config", config, "--minutes", "0.1"]
    result = main_in_process(*args, "--out", fault_home / "rec.wav", "--truth", fault_home / "rec.csv")
    assert_one_line_error(result, "scene.yaml", "gap_max")
    assert not (fault_home / "rec.wav").exists()


def test_flag_that_breaks_a_config_setting(main_in_process, speech_root, fault_home):
    """The config says gap_max 40; --gap-min 60 overrides only one side: the pair is checked together."""
    config = fault_home / "scene.yaml"
    stream = {"gap_min": 20, "gap_max": 40, "noise": "recorded", "background": "recorded"}
    data = {"source": "speech_commands", "options": {"root": str(speech_root)}, "stream": stream}
    config.write_text(yaml.safe_dump({"data": data, "agents": [{"arch": "gru", "loss": "ce"}]}))
    args = ["data", "make-recording", "--config", config, "--minutes", "0.1", "--gap-min", "60"]
    result = main_in_process(*args, "--out", fault_home / "rec.wav", "--truth", fault_home / "rec.csv")
    assert_one_line_error(result, "--gap-max", "gap_min (60)")
    assert not (fault_home / "rec.wav").exists()


def test_set_with_an_unknown_stream_setting(main_in_process, speech_root, fault_home):
    result = _make(main_in_process, speech_root, fault_home / "rec.wav", "--set", "snr=[0, 10]")
    assert_one_line_error(result, "make-recording --set snr", "did you mean 'snr_db'")
    assert not (fault_home / "rec.wav").exists()


def test_set_with_a_value_that_is_not_yaml(main_in_process, speech_root, fault_home):
    result = _make(main_in_process, speech_root, fault_home / "rec.wav", "--set", "snr_db=[0, 10")
    assert_one_line_error(result, "make-recording --set snr_db", "not YAML")


def test_set_with_an_out_of_range_setting(main_in_process, speech_root, fault_home):
    result = _make(main_in_process, speech_root, fault_home / "rec.wav", "--set", "snr_db=[10, 0]")
    assert_one_line_error(result, "make-recording --set snr_db", "low <= high")


def test_like_agent_with_a_folder_that_holds_no_agent(main_in_process, fault_home):
    (fault_home / "empty").mkdir()
    args = ["data", "make-recording", "--like-agent", fault_home / "empty", "--minutes", "0.1"]
    result = main_in_process(*args, "--out", fault_home / "rec.wav", "--truth", fault_home / "rec.csv")
    assert_one_line_error(result, str(fault_home / "empty"), "is neither a run folder")
    assert not (fault_home / "rec.wav").exists() and not (fault_home / "rec.csv").exists()


def test_like_agent_and_config_together(main_in_process, fault_home):
    args = ["data", "make-recording", "--like-agent", fault_home, "--config", "toy", "--minutes", "0.1"]
    result = main_in_process(*args, "--out", fault_home / "rec.wav", "--truth", fault_home / "rec.csv")
    assert_one_line_error(result, "give --config or --like-agent, not both")
    assert not (fault_home / "rec.wav").exists()
