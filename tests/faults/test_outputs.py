"""Fault cases for output folders and checkpoints (issue 11): nothing the user had is ever replaced or lost.

Each case: exit code 2, exactly one stderr line naming the file, no traceback, and every file
that was there still there byte for byte. The path checks run before any training, so the
refused cases take about a second each; one toy training run is shared by the checkpoint cases.
"""

from __future__ import annotations

import pickle
import shutil

import pytest

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _refused(main_in_process, fault_home, argv, *names):
    before = snapshot(fault_home)
    result = main_in_process(*argv)
    line = assert_one_line_error(result, *names)
    assert_nothing_lost(before, fault_home)
    assert not (fault_home / "runs" / "checkpoints").exists()  # refused before any training
    return line


def test_out_naming_a_file_is_refused(main_in_process, fault_home, toy_config):
    (fault_home / "notes.txt").write_text("my notes\n")
    line = _refused(main_in_process, fault_home, ["evaluate", toy_config, "--out", "notes.txt"], "notes.txt")
    assert "is a file" in line and (fault_home / "notes.txt").read_text() == "my notes\n"


def test_out_at_the_runs_folder_is_refused_even_with_force(main_in_process, fault_home, toy_config):
    runs = fault_home / "runs"
    (runs / "checkpoints" / "gru-reset-0123").mkdir(parents=True)
    (runs / "checkpoints" / "gru-reset-0123" / "last.pt").write_bytes(b"weights")
    (runs / "other").mkdir()
    (runs / "other" / "results.json").write_text('{"format": 2, "runs": []}')
    before = snapshot(fault_home)
    for extra in ([], ["--force"]):
        result = main_in_process("evaluate", toy_config, "--out", runs, "--checkpoints", fault_home / "ck", *extra)
        line = assert_one_line_error(result, str(runs))
        assert "checkpoints" in line and "never replaced" in line
    assert_nothing_lost(before, fault_home)
    assert not (fault_home / "ck").exists()


def test_out_at_the_current_folder_is_refused(main_in_process, fault_home, toy_config):
    line = _refused(main_in_process, fault_home, ["evaluate", toy_config, "--out", "."], "run folder .")
    assert "toy.yaml" in line


def test_a_folder_of_the_users_files_is_refused(main_in_process, fault_home, toy_config):
    mine = fault_home / "mine"
    mine.mkdir()
    (mine / "draft.md").write_text("# draft\n")
    _refused(main_in_process, fault_home, ["evaluate", toy_config, "--out", mine], str(mine), "draft.md")


def test_a_run_folder_with_a_file_added_by_the_user_is_refused(main_in_process, fault_home, toy_config):
    run = fault_home / "runs" / "toy"
    run.mkdir(parents=True)
    (run / "results.json").write_text('{"format": 2, "runs": []}')
    (run / "analysis.ipynb").write_text("{}")
    _refused(main_in_process, fault_home, ["evaluate", toy_config], "runs/toy", "analysis.ipynb")


def test_output_files_without_results_json_need_force(main_in_process, fault_home, toy_config):
    run = fault_home / "runs" / "toy"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("arch\n")
    line = _refused(main_in_process, fault_home, ["evaluate", toy_config], "runs/toy")
    assert "--force" in line
    result = main_in_process("evaluate", toy_config, "--force", "--no-progress")
    assert result.returncode == 0, str(result)
    assert (run / "results.json").is_file() and (run / "results.csv").read_text() != "arch\n"


def test_unwritable_run_folder_parent_fails_before_training(main_in_process, fault_home, toy_config, read_only):
    locked = read_only(fault_home / "locked")
    line = _refused(main_in_process, fault_home, ["evaluate", toy_config, "--out", locked / "run"], str(locked))
    assert "cannot write" in line


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_checkpoint_folder_that_is_a_file_is_refused(main_in_process, fault_home, toy_config, command):
    (fault_home / "ck").write_text("not a folder")
    line = _refused(main_in_process, fault_home, [command, toy_config, "--checkpoints", "ck"], "ck")
    assert "checkpoint folder" in line and (fault_home / "ck").read_text() == "not a folder"


def test_unwritable_checkpoint_folder_fails_before_training(main_in_process, fault_home, toy_config, read_only):
    locked = read_only(fault_home / "locked")
    _refused(main_in_process, fault_home, ["train", toy_config, "--checkpoints", locked], str(locked))


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle asked to run code",))


CORRUPTIONS = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "zero-byte": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(b"\x00\x01not a checkpoint at all" * 10),
    "malicious pickle": lambda path: path.write_bytes(pickle.dumps({"model": _RunsCode()})),
    "a folder": lambda path: (path.unlink(), path.mkdir()),
}


def test_corrupt_checkpoints_are_one_line_errors_saying_what_to_delete(main_in_process, fault_home, toy_config):
    assert main_in_process("train", toy_config, "--no-progress").returncode == 0
    (folder,) = (fault_home / "runs" / "checkpoints").iterdir()
    good = {name: (folder / name).read_bytes() for name in ("last.pt", "best.pt")}
    for name in ("last.pt", "best.pt"):
        for kind, corrupt in CORRUPTIONS.items():
            path = folder / name
            corrupt(path)
            before = snapshot(fault_home)
            result = main_in_process("train", toy_config, "--no-progress")
            line = assert_one_line_error(result, str(path.relative_to(fault_home)))
            assert "not a valid nrstream checkpoint" in line, (kind, line)
            assert f"delete {folder.relative_to(fault_home)} " in line, (kind, line)
            assert "weights_only" not in result.stderr and "asked to run code" not in result.stdout + result.stderr
            assert_nothing_lost(before, fault_home, allow_new=False)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            path.write_bytes(good[name])
    assert main_in_process("train", toy_config, "--no-progress").returncode == 0  # restored: reused as before
