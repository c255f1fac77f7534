"""Fault cases for ``nrstream export`` (issue 13): bad formats, agents, paths; one line, nothing half-written.

Each case: exit code 2, exactly one stderr line naming what is wrong, no traceback, and
nothing added or changed under the working folder or the run (no model, no sidecar, no
hidden ``.*.tmp``). The format and ``--out`` are checked before the agent is loaded; one
toy training run (seconds) is shared by the cases that need a real run or checkpoint folder.
"""

from __future__ import annotations

import shutil

import pytest

from faults.conftest import assert_nothing_lost, assert_one_line_error, run_main, snapshot, write_toy_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A real toy run of gru/reset and gru/ce: ``(run folder, gru/reset's checkpoint folder)``.

    The toy source has no audio front end: an export of it is refused after the checks above.
    """
    root = tmp_path_factory.mktemp("export_faults")
    run = {"name": "toy", "seed": 0, "device": "cpu", "out_dir": str(root / "runs"), "checkpoint_dir": str(root / "ck")}
    agents = {"archs": [{"name": "gru", "options": {"hidden_size": 8}}], "losses": ["reset", "ce"]}
    config = write_toy_config(root / "toy.yaml", run=run, agents=agents)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NRSTREAM_CACHE", str(root / "cache"))
        mp.setenv("NRSTREAM_DATA", str(root / "data"))
        result = run_main("evaluate", config, "--no-progress")
    assert result.returncode == 0, str(result)
    (checkpoint,) = (root / "ck").glob("gru-reset-*")
    assert (checkpoint / "agent.json").is_file() and (checkpoint / "last.pt").is_file()
    return root / "runs" / "toy", checkpoint


def _refused(call, fault_home, toy_run, argv, *names) -> str:
    """``nrstream export *argv`` fails with one line naming ``names``; nothing added or changed anywhere."""
    before, run_before = snapshot(fault_home), snapshot(toy_run[0].parent.parent)
    line = assert_one_line_error(call("export", *argv), *names)
    assert_nothing_lost(before, fault_home, allow_new=False)
    assert_nothing_lost(run_before, toy_run[0].parent.parent, allow_new=False)
    return line


def test_unknown_format(main_in_process, fault_home, toy_run):
    run, _ = toy_run
    line = _refused(main_in_process, fault_home, toy_run, [run, "--format", "tflite", "--out", "m.tflite"], "tflite")
    assert line.endswith("unknown export format 'tflite'; choose one of onnx, torchscript")


def test_agent_not_in_the_run(main_in_process, fault_home, toy_run):
    run, checkpoint = toy_run
    argv = [run, "--agent", "lstm/ce", "--format", "onnx", "--out", "m.onnx"]
    line = _refused(main_in_process, fault_home, toy_run, argv, "lstm/ce", str(run))
    assert line.endswith("it has gru/ce, gru/reset")
    line = _refused(main_in_process, fault_home, toy_run, [run, "--format", "onnx", "--out", "m.onnx"], str(run))
    assert line.endswith("holds several agents (gru/ce, gru/reset); choose one with --agent ARCH/LOSS")
    argv = [checkpoint, "--agent", "lstm/ce", "--format", "onnx", "--out", "m.onnx"]  # a checkpoint holds one agent
    assert _refused(main_in_process, fault_home, toy_run, argv, str(checkpoint)).endswith("it has gru/reset")


def test_out_under_a_regular_file(main_in_process, fault_home, toy_run):
    (fault_home / "notes.txt").write_text("my notes\n")
    argv = [toy_run[0], "--format", "onnx", "--out", "notes.txt/x.onnx"]
    line = _refused(main_in_process, fault_home, toy_run, argv, "notes.txt/x.onnx")
    assert line.endswith("notes.txt is a file, not a folder")


def test_out_in_a_folder_that_does_not_exist(main_in_process, fault_home, toy_run):
    argv = [toy_run[0], "--format", "torchscript", "--out", "no/such/folder/x.pt"]
    line = _refused(main_in_process, fault_home, toy_run, argv, "no/such/folder/x.pt")
    assert line.endswith("the folder no/such/folder does not exist; create it first")


def test_out_in_a_read_only_folder(main_in_process, fault_home, toy_run, read_only):
    read_only(fault_home / "ro")
    line = _refused(main_in_process, fault_home, toy_run, [toy_run[0], "--format", "onnx", "--out", "ro/x.onnx"], "ro")
    assert "cannot write ro/x.onnx" in line


def test_out_that_is_a_folder(main_in_process, fault_home, toy_run):
    (fault_home / "models").mkdir()
    (fault_home / "models" / "keep.txt").write_text("mine\n")
    argv = [toy_run[0], "--format", "onnx", "--out", "models"]
    assert _refused(main_in_process, fault_home, toy_run, argv, "models").endswith(
        "it is a folder; give --out a file name"
    )
    (fault_home / "m.onnx.json").mkdir()  # the sidecar's name taken by a folder
    argv = [toy_run[0], "--format", "onnx", "--out", "m.onnx"]
    _refused(main_in_process, fault_home, toy_run, argv, "m.onnx.json")


def test_run_that_is_neither_a_run_nor_a_checkpoint(main_in_process, fault_home, toy_run):
    (fault_home / "mine").mkdir()
    (fault_home / "mine" / "draft.md").write_text("# draft\n")
    line = _refused(main_in_process, fault_home, toy_run, ["mine", "--format", "onnx", "--out", "m.onnx"], "mine")
    assert "is neither a run folder (no results.json) nor a checkpoint folder (no best.pt or last.pt)" in line
    line = _refused(main_in_process, fault_home, toy_run, ["gone", "--format", "onnx", "--out", "m.onnx"], "gone")
    assert "gone does not exist" in line


def test_checkpoint_without_agent_json_says_to_pass_the_run(cli, fault_home, toy_run):
    """Through the real console script: a checkpoint folder trained before agent.json existed."""
    old = fault_home / "gru-reset-old"
    old.mkdir()
    shutil.copy(toy_run[1] / "last.pt", old / "last.pt")
    argv = [old, "--format", "onnx", "--out", "m.onnx"]
    line = _refused(cli, fault_home, toy_run, argv, str(old), "agent.json")
    assert line.endswith("pass the run folder that used it instead (runs/NAME, with results.json)")


def test_training_again_adds_agent_json_to_an_old_checkpoint(main_in_process, fault_home, tmp_path_factory):
    """What the error above offers works: `nrstream train` with the same config reuses the folder and adds it."""
    root = tmp_path_factory.mktemp("old_checkpoint")
    run = {"name": "toy", "seed": 0, "device": "cpu", "out_dir": str(root / "runs"), "checkpoint_dir": str(root / "ck")}
    config = write_toy_config(root / "toy.yaml", run=run)
    assert main_in_process("train", config, "--no-progress").returncode == 0
    (checkpoint,) = (root / "ck").iterdir()
    record = (checkpoint / "agent.json").read_text()
    (checkpoint / "agent.json").unlink()  # as trained before agent.json existed
    weights = snapshot(checkpoint)
    assert main_in_process("train", config, "--no-progress").returncode == 0
    assert (checkpoint / "agent.json").read_text() == record
    assert_nothing_lost(weights, checkpoint)  # reused: last.pt and best.pt byte for byte


def test_a_run_without_an_audio_front_end_writes_nothing(main_in_process, fault_home, toy_run):
    """The toy source has no front end: refused, and nothing is written at --out.

    (A file already at --out that nrstream did not write is refused before that: tests/faults/test_ownership.py.)
    """
    line = _refused(main_in_process, fault_home, toy_run, [toy_run[1], "--format", "onnx", "--out", "m.onnx"], "toy")
    assert "has no audio front end" in line and not (fault_home / "m.onnx").exists()
