"""One rule for every output flag (issue 29): nrstream replaces only what it wrote.

What nrstream wrote is recorded in a manifest (``.nrstream-outputs.json``: a run folder's lists
its files; any other folder's lists the single files written there with their size and time),
never guessed from a name or an extension. Anything else in the way is refused with one line
(``--force`` included) and left byte for byte; two flags (or an input and an output) naming one
path are refused; the folders are checked before any work.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot, toy_config_dict, write_toy_config
from faults.test_export import toy_run  # noqa: F401  (the module-scoped toy run, reused)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- the library rule


def _write(path, text: str) -> None:
    from nrstream.artifacts.run_folder import output_file

    with output_file(path) as tmp:
        tmp.write_text(text)


def test_a_file_nrstream_wrote_may_be_replaced(tmp_path):
    from nrstream.artifacts.run_folder import check_output_files, written_by_nrstream

    _write(tmp_path / "a.csv", "one\n")
    assert written_by_nrstream(tmp_path / "a.csv")
    check_output_files({"--out": tmp_path / "a.csv"})
    _write(tmp_path / "a.csv", "two\n")
    assert (tmp_path / "a.csv").read_text() == "two\n" and written_by_nrstream(tmp_path / "a.csv")
    manifest = json.loads((tmp_path / ".nrstream-outputs.json").read_text())
    assert set(manifest["files"]) == {"a.csv"}


def test_a_file_changed_since_nrstream_wrote_it_is_the_users(tmp_path):
    from nrstream.artifacts.run_folder import OutputError, check_output_files, written_by_nrstream

    _write(tmp_path / "truth.csv", "start_s,end_s,word\n")
    time.sleep(0.01)
    (tmp_path / "truth.csv").write_text("start_s,end_s,word\n1,2,yes\n")  # corrected by hand
    assert not written_by_nrstream(tmp_path / "truth.csv")
    with pytest.raises(OutputError, match="exists and nrstream did not write it"):
        check_output_files({"--truth": tmp_path / "truth.csv"})


@pytest.mark.parametrize("name", ["holiday.png", "notes.txt", "results.csv", "det.png", "model.onnx"])
def test_a_users_file_is_refused_whatever_its_name(tmp_path, name):
    from nrstream.artifacts.run_folder import OutputError, check_output_files

    (tmp_path / name).write_text("mine")
    with pytest.raises(OutputError, match=f"--out {tmp_path / name} exists and nrstream did not write it"):
        check_output_files({"--out": tmp_path / name})
    assert (tmp_path / name).read_text() == "mine"


def test_a_manifest_entry_for_a_file_the_user_replaced_is_not_trusted(tmp_path):
    from nrstream.artifacts.run_folder import written_by_nrstream

    _write(tmp_path / "r.wav", "x" * 10)
    (tmp_path / "r.wav").unlink()
    (tmp_path / "r.wav").write_text("mine, other size")
    assert not written_by_nrstream(tmp_path / "r.wav")


def test_the_manifest_forgets_files_that_are_gone(tmp_path):
    _write(tmp_path / "a.csv", "a")
    _write(tmp_path / "b.csv", "b")
    (tmp_path / "a.csv").unlink()
    _write(tmp_path / "c.csv", "c")
    assert set(json.loads((tmp_path / ".nrstream-outputs.json").read_text())["files"]) == {"b.csv", "c.csv"}


@pytest.mark.parametrize(
    ("outputs", "inputs", "words"),
    [
        ({"--out": "r.wav", "--truth": "r.wav"}, {}, "--out and --truth name the same file"),
        ({"--out": "r.wav", "--truth": "./r.wav"}, {}, "--out and --truth name the same file"),
        ({"--det": "rec.wav"}, {"AUDIO": "rec.wav"}, "AUDIO and --det name the same file"),
        ({"--det": "t.csv"}, {"AUDIO": "rec.wav", "--truth": "t.csv"}, "--truth and --det name the same file"),
    ],
    ids=["out_is_truth", "out_is_truth_spelled_otherwise", "det_is_audio", "det_is_truth"],
)
def test_two_flags_on_one_path_are_refused(fault_home, outputs, inputs, words):
    from nrstream.artifacts.run_folder import OutputError, check_output_files

    (fault_home / "rec.wav").write_bytes(b"RIFF")
    with pytest.raises(OutputError, match=words):
        check_output_files(outputs, inputs)


def test_two_flags_through_a_link_are_refused(fault_home):
    from nrstream.artifacts.run_folder import OutputError, check_output_files

    (fault_home / "sub").mkdir()
    os.symlink(fault_home / "sub", fault_home / "alias")
    _write(fault_home / "sub" / "r.wav", "x")
    with pytest.raises(OutputError, match="name the same file"):
        check_output_files({"--out": fault_home / "sub" / "r.wav", "--truth": fault_home / "alias" / "r.wav"})


def test_a_link_at_an_output_path_is_refused(tmp_path):
    from nrstream.artifacts.run_folder import OutputError, check_output_files

    (tmp_path / "real.txt").write_text("mine")
    os.symlink(tmp_path / "real.txt", tmp_path / "link.wav")
    with pytest.raises(OutputError, match="symbolic link"):
        check_output_files({"--out": tmp_path / "link.wav"})


# ---------------------------------------------------------------- make-recording --out / --truth


def _make(main_in_process, root, out, truth, *extra):
    args = ["data", "make-recording", "speech_commands", "-o", f"root={root}", "--minutes", "0.1"]
    return main_in_process(*args, "--out", out, "--truth", truth, *extra)


@pytest.mark.parametrize(("flag", "name"), [("--out", "notes.txt"), ("--truth", "results_by_hand.csv")])
def test_make_recording_never_replaces_a_users_file(main_in_process, speech_root, fault_home, flag, name):
    (fault_home / name).write_text("written by hand\n")
    before = snapshot(fault_home)
    out = fault_home / (name if flag == "--out" else "rec.wav")
    truth = fault_home / (name if flag == "--truth" else "rec.csv")
    line = assert_one_line_error(_make(main_in_process, speech_root, out, truth), flag, name)
    assert "nrstream did not write it" in line
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_make_recording_truth_equal_to_out_is_refused(main_in_process, speech_root, fault_home):
    before = snapshot(fault_home)
    result = _make(main_in_process, speech_root, fault_home / "rec.wav", fault_home / "rec.wav")
    assert_one_line_error(result, "--out and --truth name the same file", "rec.wav")
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_make_recording_replaces_its_own_files_and_not_edited_ones(main_in_process, speech_root, fault_home):
    out, truth = fault_home / "rec.wav", fault_home / "rec.csv"
    assert _make(main_in_process, speech_root, out, truth).returncode == 0
    assert _make(main_in_process, speech_root, out, truth, "--seed", "3").returncode == 0  # its own: replaced
    time.sleep(0.01)
    truth.write_text(truth.read_text() + "99,100,yes\n")  # the user corrects the truth by hand
    before = snapshot(fault_home)
    result = _make(main_in_process, speech_root, out, truth)
    assert_one_line_error(result, "--truth", "rec.csv", "changed since")
    assert_nothing_lost(before, fault_home, allow_new=False)


# ---------------------------------------------------------------- export --out and its sidecar


@pytest.mark.parametrize("which", ["model", "sidecar"])
def test_export_never_replaces_a_users_file(main_in_process, fault_home, toy_run, which):  # noqa: F811
    path = fault_home / ("m.onnx" if which == "model" else "m.onnx.json")
    path.write_text("my own notes\n")
    before = snapshot(fault_home)
    result = main_in_process("export", toy_run[1], "--format", "onnx", "--out", fault_home / "m.onnx")
    line = assert_one_line_error(result, str(path), "nrstream did not write it")
    assert ("sidecar" in line) == (which == "sidecar")
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_export_onto_its_own_checkpoint_is_refused(main_in_process, fault_home, toy_run):  # noqa: F811
    last = toy_run[1] / "last.pt"
    before = snapshot(toy_run[1])
    result = main_in_process("export", last, "--format", "torchscript", "--out", last)
    assert_one_line_error(result, "RUN and --out name the same file")
    assert_nothing_lost(before, toy_run[1], allow_new=False)


# ---------------------------------------------------------------- run folders: the manifest, --force


def _evaluate(main_in_process, config, *extra):
    return main_in_process("evaluate", config, "--no-progress", *extra)


def test_a_run_folder_records_what_nrstream_wrote(main_in_process, fault_home, toy_config):
    assert _evaluate(main_in_process, toy_config).returncode == 0
    run = fault_home / "runs" / "toy"
    manifest = json.loads((run / ".nrstream-outputs.json").read_text())
    assert manifest["run_folder"] is True
    assert set(manifest["files"]) == {p.name for p in run.iterdir()} - {".nrstream-outputs.json"}
    assert _evaluate(main_in_process, toy_config).returncode == 0  # its own folder: replaced
    assert not [p for p in fault_home.joinpath("runs").iterdir() if p.name.endswith((".tmp", ".lock"))]


@pytest.mark.parametrize("force", [False, True])
def test_a_users_png_in_a_run_folder_is_never_replaced(main_in_process, fault_home, toy_config, force):
    """The issue's case: --force deleted a user's holiday.png because any *.png counted as a figure."""
    assert _evaluate(main_in_process, toy_config).returncode == 0
    run = fault_home / "runs" / "toy"
    (run / "holiday.png").write_bytes(b"\x89PNG my holiday")
    before = snapshot(fault_home)
    result = _evaluate(main_in_process, toy_config, *(["--force"] if force else []))
    assert_one_line_error(result, "runs/toy", "holiday.png", "never replaced")
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_force_never_deletes_a_png_in_a_folder_without_results(main_in_process, fault_home, toy_config):
    run = fault_home / "runs" / "toy"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("arch\n")
    (run / "holiday.png").write_bytes(b"\x89PNG my holiday")
    before = snapshot(fault_home)
    assert_one_line_error(_evaluate(main_in_process, toy_config, "--force"), "holiday.png")
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_a_file_the_user_put_where_a_listed_one_was_is_refused(main_in_process, fault_home, toy_config):
    assert _evaluate(main_in_process, toy_config).returncode == 0
    run = fault_home / "runs" / "toy"
    (run / "results.csv").unlink()
    (run / "results.csv").mkdir()  # a folder where nrstream's file was
    (run / "results.csv" / "mine.txt").write_text("x")
    before = snapshot(fault_home)
    assert_one_line_error(_evaluate(main_in_process, toy_config, "--force"), "results.csv")
    assert_nothing_lost(before, fault_home, allow_new=False)


# ---------------------------------------------------------------- TensorBoard folders, up front


def _tb_config(home, **run):
    return write_toy_config(home / "tb.yaml", run={**toy_config_dict()["run"], "tensorboard": True, **run})


def test_a_tensorboard_folder_that_is_a_file_is_refused_up_front(main_in_process, fault_home):
    config = _tb_config(fault_home)
    (fault_home / "runs").mkdir()
    (fault_home / "runs" / "tensorboard").write_text("not a folder")
    before = snapshot(fault_home)
    line = assert_one_line_error(_evaluate(main_in_process, config), "tensorboard folder", "runs/tensorboard")
    assert "run.out_dir" in line
    assert_nothing_lost(before, fault_home, allow_new=False)  # nothing trained, no checkpoint


def test_an_unwritable_tensorboard_folder_is_refused_up_front(main_in_process, fault_home, read_only):
    pytest.importorskip("tensorboard")
    config = _tb_config(fault_home)
    read_only(fault_home / "runs" / "tensorboard")
    result = _evaluate(main_in_process, config)
    assert_one_line_error(result, "tensorboard folder", "cannot write")
    assert not (fault_home / "checkpoints").exists() or not any((fault_home / "checkpoints").iterdir())


def test_a_tensorboard_folder_under_a_file_is_refused_up_front(main_in_process, fault_home):
    raw = toy_config_dict()
    (fault_home / "blocker").write_text("a file")
    raw["run"] = {**raw["run"], "tensorboard": True, "out_dir": str(fault_home / "blocker" / "runs"),
                  "checkpoint_dir": str(fault_home / "ck")}  # fmt: skip
    config = fault_home / "tb2.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = main_in_process("evaluate", config, "--no-progress", "--out", fault_home / "elsewhere")
    assert_one_line_error(result, "tensorboard folder", "is a file")
