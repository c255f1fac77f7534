"""Fault injection, file side (issue 11): downloads, the feature cache, atomic writes, full disks, signals.

Every case checks that nothing the user had is lost (a snapshot of the folder, byte for
byte, before and after), that failures are one line (exit 2, or 130 for an interrupt)
naming the path, and that no half-written file is left. Full disks are real (a 64 KiB
tmpfs) and read-only folders are real read-only bind mounts; both need root and skip
elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from nrstream_plugins.data import fashion_mnist as fm
from nrstream_plugins.data import speech_commands as sc

from faults.conftest import assert_no_traceback, assert_nothing_lost, assert_one_line_error, snapshot
from nrstream.atomic import TEMP_PATTERN, WriteError, atomic_file, atomic_folder
from nrstream.data import cache
from nrstream.data.datafiles import DOWNLOAD_MARKER
from nrstream.data.datasets import clear_dataset_cache


@pytest.fixture(autouse=True)
def _fresh_datasets():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def _user_folder(folder: Path) -> Path:
    """A folder of the user's own things, as ``--dest`` might name by mistake."""
    (folder / "thesis").mkdir(parents=True)
    (folder / "thesis" / "chapter1.tex").write_text("\\chapter{Never reset}\n")
    (folder / "notes.txt").write_bytes(b"do not delete\n")
    (folder / "link-to-notes").symlink_to("notes.txt")
    return folder


# ------------------------------------------------------------------ downloads


@pytest.fixture
def speech_archive(speech_root, fault_home, monkeypatch) -> Path:
    """The small Speech Commands copy as a local tarball served by ``file://`` as version 0.02."""
    archive = fault_home / "mirror" / "speech_commands_v0.02.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(speech_root.rglob("*")):
            tar.add(path, arcname="./" + path.relative_to(speech_root).as_posix(), recursive=False)
    checksum = "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(sc.URLS, "0.02", (archive.as_uri(), checksum))
    return archive


def _download_speech(main_in_process, dest: Path):
    return main_in_process("data", "download", "speech_commands", "--dest", dest)


def test_download_dest_keeps_everything_else(main_in_process, speech_archive, fault_home):
    dest = _user_folder(fault_home / "mine")
    before = snapshot(dest)
    result = _download_speech(main_in_process, dest)
    assert result.returncode == 0, str(result)
    assert_nothing_lost(before, dest)
    folder = dest / "speech_commands_v0.02"
    assert str(folder) in result.stdout and (folder / "validation_list.txt").is_file()
    assert (folder / DOWNLOAD_MARKER).is_file() and not (dest / "speech_commands_v0.02.tar.gz").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["link-to-notes", "notes.txt", "speech_commands_v0.02", "thesis"]
    data = sc.load_speech_commands(root=str(folder))
    assert data.sizes() == {"train": 4, "validation": 4, "test": 4}


def test_download_twice_keeps_what_the_user_added(main_in_process, speech_archive, fault_home):
    dest = fault_home / "mine"
    assert _download_speech(main_in_process, dest).returncode == 0
    (dest / "speech_commands_v0.02" / "my_list.txt").write_text("mine\n")
    before = snapshot(dest)
    result = _download_speech(main_in_process, dest)
    assert result.returncode == 0, str(result)
    assert_nothing_lost(before, dest, allow_new=False)


def test_download_refuses_a_folder_it_did_not_write(main_in_process, speech_archive, fault_home):
    dest = fault_home / "mine"
    own = dest / "speech_commands_v0.02"
    _user_folder(own)
    before = snapshot(dest)
    line = assert_one_line_error(_download_speech(main_in_process, dest), str(own))
    assert "not written by" in line
    assert_nothing_lost(before, dest, allow_new=False)


def test_download_refuses_a_foreign_file_under_the_archive_name(main_in_process, speech_archive, fault_home):
    dest = _user_folder(fault_home / "mine")
    (dest / "speech_commands_v0.02.tar.gz").write_bytes(b"my own tarball, another version")
    before = snapshot(dest)
    assert_one_line_error(_download_speech(main_in_process, dest), str(dest / "speech_commands_v0.02.tar.gz"))
    assert_nothing_lost(before, dest, allow_new=False)


def test_download_keeps_an_archive_the_user_already_had(main_in_process, speech_archive, fault_home):
    dest = fault_home / "mine"
    dest.mkdir()
    (dest / speech_archive.name).write_bytes(speech_archive.read_bytes())
    before = snapshot(dest)
    assert _download_speech(main_in_process, dest).returncode == 0
    assert_nothing_lost(before, dest)  # the archive was the user's: not deleted after extraction


def test_download_dest_is_a_file(main_in_process, speech_archive, fault_home):
    dest = fault_home / "notes.txt"
    dest.write_text("mine\n")
    line = assert_one_line_error(_download_speech(main_in_process, dest), str(dest))
    assert "is a file" in line and dest.read_text() == "mine\n"


def test_download_corrupt_archive_with_matching_checksum(main_in_process, fault_home, monkeypatch):
    archive = fault_home / "mirror" / "speech_commands_v0.02.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    monkeypatch.setitem(
        sc.URLS, "0.02", (archive.as_uri(), "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest())
    )
    dest = _user_folder(fault_home / "mine")
    before = snapshot(dest)
    line = assert_one_line_error(_download_speech(main_in_process, dest), "speech_commands_v0.02.tar.gz")
    assert "cannot extract" in line
    assert_nothing_lost(before, dest, allow_new=False)


def test_download_hostile_archive_member(main_in_process, fault_home, monkeypatch):
    archive = fault_home / "mirror" / "speech_commands_v0.02.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    monkeypatch.setitem(
        sc.URLS, "0.02", (archive.as_uri(), "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest())
    )
    dest = _user_folder(fault_home / "mine")
    before = snapshot(fault_home)
    line = assert_one_line_error(_download_speech(main_in_process, dest), "../../escaped.txt")
    assert "unsafe" in line
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_download_checksum_mismatch_keeps_nothing(main_in_process, speech_archive, fault_home, monkeypatch):
    monkeypatch.setitem(sc.URLS, "0.02", (speech_archive.as_uri(), "sha256:" + "0" * 64))
    dest = _user_folder(fault_home / "mine")
    before = snapshot(dest)
    line = assert_one_line_error(_download_speech(main_in_process, dest), speech_archive.as_uri())
    assert "checksum mismatch" in line
    assert_nothing_lost(before, dest, allow_new=False)


@pytest.fixture
def fmnist_mirror(fault_home, monkeypatch) -> Path:
    """Four 100 KiB files served by ``file://`` under the official names, with their checksums."""
    mirror = fault_home / "fm-mirror"
    mirror.mkdir()
    sums = {}
    for i, name in enumerate(fm.CHECKSUMS):
        blob = np.random.default_rng(i).bytes(100 * 1024)
        (mirror / name).write_bytes(blob)
        sums[name] = "md5:" + hashlib.md5(blob).hexdigest()
    monkeypatch.setattr(fm, "CHECKSUMS", sums)
    monkeypatch.setattr(fm, "BASE_URL", mirror.as_uri() + "/")
    return mirror


def test_fashion_download_dest_keeps_everything_else(main_in_process, fmnist_mirror, fault_home):
    dest = _user_folder(fault_home / "mine")
    before = snapshot(dest)
    result = main_in_process("data", "download", "fashion_mnist", "--dest", dest)
    assert result.returncode == 0, str(result)
    assert_nothing_lost(before, dest)
    assert sorted(p.name for p in (dest / "fashion-mnist").iterdir()) == sorted(fm.CHECKSUMS)


def test_fashion_download_refuses_to_overwrite_a_different_file(main_in_process, fmnist_mirror, fault_home):
    dest = fault_home / "mine"
    (dest / "fashion-mnist").mkdir(parents=True)
    mine = dest / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    mine.write_bytes(b"my own relabelled test set")
    before = snapshot(dest)
    line = assert_one_line_error(main_in_process("data", "download", "fashion_mnist", "--dest", dest), str(mine))
    assert "left untouched" in line and mine.read_bytes() == b"my own relabelled test set"
    assert_nothing_lost(before, dest)


def test_download_onto_a_full_disk(main_in_process, fmnist_mirror, full_disk):
    dest = full_disk()  # 64 KiB; each file is 100 KiB
    line = assert_one_line_error(main_in_process("data", "download", "fashion_mnist", "--dest", dest), "space")
    assert "t10k-images-idx3-ubyte.gz" in line or "train-images-idx3-ubyte.gz" in line
    assert list((dest / "fashion-mnist").iterdir()) == []  # nothing half-written


# ------------------------------------------------------------------ feature cache


def _entry(fault_home: Path) -> Path:
    (entry,) = (fault_home / "cache" / "speech_commands").glob("*.pt")
    return entry


def _warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("nrstream: warning:")]


def _info(main_in_process, root: Path):
    result = main_in_process("data", "info", "speech_commands", "-o", f"root={root}")
    assert_no_traceback(result)
    assert result.returncode == 0 and "train:" in result.stdout, str(result)
    assert [line for line in result.stderr.splitlines() if not line.startswith("nrstream: warning:")] == []
    return result


@pytest.fixture
def cached_speech(main_in_process, speech_root, fault_home) -> Path:
    """``speech_root`` loaded once, so its feature-cache entry exists; returns the entry."""
    first = _info(main_in_process, speech_root)
    assert "cache:    built" in first.stdout
    clear_dataset_cache()
    return _entry(fault_home)


def test_cache_entry_with_payload_missing(main_in_process, speech_root, cached_speech):
    blob = torch.load(cached_speech, weights_only=True)
    del blob["payload"]["features"]
    torch.save(blob, cached_speech)
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert "is not a valid cache entry" in warning and str(cached_speech) in warning
    assert "cache:    built" in result.stdout


def test_cache_entry_garbage_gets_no_torch_advice(main_in_process, speech_root, cached_speech):
    cached_speech.write_bytes(b"garbage" * 100)
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert "is not a valid cache entry" in warning and "weights_only" not in result.stderr


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_cache_entry_is_refused_not_run(main_in_process, speech_root, cached_speech, fault_home):
    marker = fault_home / "PWNED"
    blob = torch.load(cached_speech, weights_only=True)
    blob["payload"]["features"] = _Evil(marker)
    with open(cached_speech, "wb") as f:
        torch.save(blob, f, pickle_module=pickle)
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert "is not a valid cache entry" in warning
    assert "weights_only=False" not in result.stderr and "will likely succeed" not in result.stderr
    assert not marker.exists()


def test_truncated_cache_entry(main_in_process, speech_root, cached_speech):
    cached_speech.write_bytes(cached_speech.read_bytes()[:1000])
    (warning,) = _warnings(_info(main_in_process, speech_root))
    assert "is not a valid cache entry" in warning


def test_cache_entry_that_is_a_folder(main_in_process, speech_root, cached_speech):
    cached_speech.unlink()
    cached_speech.mkdir()
    (cached_speech / "mine.txt").write_text("keep")
    before = snapshot(cached_speech)
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert str(cached_speech) in warning and "without the feature cache" in warning
    assert_nothing_lost(before, cached_speech, allow_new=False)


def test_cache_path_that_is_a_file(main_in_process, speech_root, fault_home, monkeypatch):
    blocker = fault_home / "cache-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("NRSTREAM_CACHE", str(blocker))
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert str(blocker) in warning and "without the feature cache" in warning
    assert blocker.read_text() == "not a folder\n"


def test_read_only_cache_runs_uncached_with_a_notice(main_in_process, speech_root, fault_home, read_only):
    read_only(fault_home / "cache")
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert "read-only" in warning and "without the feature cache" in warning


def test_read_only_cache_with_a_corrupt_entry(main_in_process, speech_root, cached_speech, fault_home, read_only):
    cached_speech.write_bytes(b"garbage")
    read_only(fault_home / "cache")
    before = snapshot(fault_home / "cache")
    result = _info(main_in_process, speech_root)
    assert any("is not a valid cache entry" in w for w in _warnings(result))
    assert any("without the feature cache" in w for w in _warnings(result))
    assert_nothing_lost(before, fault_home / "cache", allow_new=False)


def test_cache_on_a_full_disk_runs_uncached(main_in_process, speech_root, monkeypatch, full_disk):
    full = full_disk()  # the entry (12 clips x 101 x 40 floats) needs ~200 KiB
    monkeypatch.setenv("NRSTREAM_CACHE", str(full))
    result = _info(main_in_process, speech_root)
    (warning,) = _warnings(result)
    assert "no space left" in warning and "without the feature cache" in warning
    assert not list(full.rglob("*.pt")) and not list(full.rglob(TEMP_PATTERN))


def test_cache_helper_survives_a_check_that_raises(fault_home):
    cache.save("t", "k", {"x": 1})
    with pytest.warns(cache.CacheWarning, match="not a valid cache entry"):
        assert cache.load("t", "k", check=lambda p: p["missing"]) is None


# ------------------------------------------------------------------ atomic writes


def test_planted_link_at_the_old_predictable_temp_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in (f".last.pt.{os.getpid()}.tmp", ".last.pt.tmp", f".last.pt.{os.getpid()}.old", ".last.pt"):
        (folder / name).symlink_to(victim)
    with atomic_file(folder / "last.pt") as tmp:
        assert not tmp.is_symlink() and tmp.stat().st_size == 0
        torch.save({"w": torch.zeros(3)}, tmp)
    assert victim.read_text() == "precious"
    assert torch.load(folder / "last.pt", weights_only=True)["w"].shape == (3,)


def test_link_at_the_destination_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.json").symlink_to(victim)
    with atomic_file(tmp_path / "out.json") as tmp:
        tmp.write_text("{}")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.json").is_symlink() and (tmp_path / "out.json").read_text() == "{}"


def test_temp_names_are_exclusive_and_unpredictable(tmp_path):
    names = []
    for _ in range(3):
        with atomic_file(tmp_path / "x.bin") as tmp:
            names.append(tmp.name)
            assert tmp.exists()  # created (O_EXCL) before the caller writes
            tmp.write_bytes(b"1")
    assert len(set(names)) == 3
    assert all(n.startswith(".x.bin.") and n.endswith(".tmp") and n != f".x.bin.{os.getpid()}.tmp" for n in names)
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_killed_writer_leaves_only_what_the_sweep_pattern_matches(tmp_path):
    code = (
        "import os, signal, sys\n"
        "from nrstream.atomic import atomic_file\n"
        "with atomic_file(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "last.pt")], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and [p.name for p in tmp_path.glob(TEMP_PATTERN)] == leftovers


def test_atomic_file_onto_a_folder(tmp_path):
    (tmp_path / "last.pt").mkdir()
    (tmp_path / "last.pt" / "keep").write_text("x")
    before = snapshot(tmp_path)
    with pytest.raises(WriteError, match="last.pt: it is a folder"), atomic_file(tmp_path / "last.pt") as tmp:
        tmp.write_text("never")
    assert_nothing_lost(before, tmp_path, allow_new=False)


def test_atomic_folder_onto_a_file(tmp_path):
    (tmp_path / "run").write_text("my notes")
    before = snapshot(tmp_path)
    with pytest.raises(WriteError, match="a file is in the way"), atomic_folder(tmp_path / "run") as tmp:
        (tmp / "results.json").write_text("{}")
    assert_nothing_lost(before, tmp_path, allow_new=False)


def test_torch_save_onto_a_full_disk(full_disk):
    folder = full_disk()
    (folder / "last.pt").write_bytes(b"previous checkpoint")
    before = snapshot(folder)
    with pytest.raises(WriteError) as raised, atomic_file(folder / "last.pt") as tmp:
        torch.save({"w": torch.zeros(100_000)}, tmp)  # torch says "unexpected pos", not ENOSPC
    message = str(raised.value)
    assert "no space left" in message and str(folder / "last.pt") in message and "\n" not in message
    assert raised.value.errno == errno.ENOSPC
    assert_nothing_lost(before, folder, allow_new=False)


def test_folder_onto_a_full_disk_keeps_the_old_one(full_disk):
    folder = full_disk()
    (folder / "run").mkdir()
    (folder / "run" / "results.json").write_text('{"old": true}')
    before = snapshot(folder)
    with pytest.raises(WriteError, match="no space left"), atomic_folder(folder / "run") as tmp:
        (tmp / "big.bin").write_bytes(b"0" * 200_000)
    assert_nothing_lost(before, folder, allow_new=False)


def test_write_into_a_read_only_folder(tmp_path, read_only):
    folder = read_only(tmp_path / "ro")
    with pytest.raises(WriteError, match="read-only|permission denied"), atomic_file(folder / "x.json") as tmp:
        tmp.write_text("{}")


# ------------------------------------------------------------------ signals


_INTERRUPT_DURING_IMPORT = """
import os, signal, sys

TARGET = sys.argv.pop(1)


class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == TARGET:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered while this import runs
        return None


signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
sys.meta_path.insert(0, Interrupt())
from nrstream.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("module", ["nrstream.lab.config", "torch"])
def test_ctrl_c_during_start_up_imports(cli, module):
    """SIGINT while the parser's (``nrstream.lab.config``) or the command's (``torch``) imports run."""
    result = cli(module, "data", "info", "toy", prefix=[sys.executable, "-c", _INTERRUPT_DURING_IMPORT])
    assert_one_line_error(result, code=130, prefix="nrstream: interrupted")
