"""Crash-safe run folders and folder locks (issue 29), with real processes killed with SIGKILL.

The run-folder write (:func:`nrstream.atomic.atomic_folder`) is interrupted at every point of its
life by a child process that kills itself there: while building, just before the swap, just after
it, while removing the old folder, and, for the two-rename fallback (file systems without
``renameat2``), between the two renames and after both. Each time the real name holds the old or
the new folder, whole (or, only in the fallback's middle window, nothing until the next run puts
the old one back), and the next run leaves no ``.*.tmp`` behind.

Locks: a run folder (and a checkpoint folder) is locked with ``fcntl.flock``; a second run exits
with one line naming the holder's pid (a checkpoint folder: waits for it); ``kill -9`` of the
holder releases the lock at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from faults.conftest import REPO, assert_one_line_error, cli_env, snapshot

CHILD = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path

    import nrstream.atomic as atomic

    path, point = Path(sys.argv[1]), sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point.startswith("fallback"):
        atomic._exchange = lambda a, b: False
    real_exchange, real_replace, real_rmtree = atomic._exchange, os.replace, shutil.rmtree
    calls = {"replace": 0}

    def exchange(a, b):
        if point == "before_swap":
            die()
        done = real_exchange(a, b)
        if point == "after_swap":
            die()
        return done

    def replace(a, b):
        calls["replace"] += 1
        real_replace(a, b)
        if point == "fallback_between_renames" and calls["replace"] == 1:
            die()
        if point == "fallback_after_both" and calls["replace"] == 2:
            die()

    def rmtree(p, *args, **kwargs):
        if point == "during_cleanup":  # one file of the old folder removed, then killed
            first = sorted(Path(p).iterdir())[0]
            first.unlink()
            die()
        return real_rmtree(p, *args, **kwargs)

    atomic._exchange = exchange
    atomic.os.replace = replace
    atomic.shutil.rmtree = rmtree
    with atomic.atomic_folder(path) as tmp:
        for i in range(3):
            (tmp / f"new{i}.txt").write_text(f"new {i}")
            if point == "building" and i == 1:
                die()
    """
)

POINTS = {  # where the child dies -> what the real name may hold right after
    "building": {"old"},
    "before_swap": {"old"},
    "after_swap": {"new"},
    "during_cleanup": {"new"},
    "fallback_between_renames": {"missing"},
    "fallback_after_both": {"new"},
}


def _folder(path: Path, prefix: str) -> None:
    path.mkdir()
    for i in range(3):
        (path / f"{prefix}{i}.txt").write_text(f"{prefix} {i}")


def _state(path: Path, old: dict, new: dict) -> str:
    if not path.exists():
        return "missing"
    now = snapshot(path)
    return "old" if now == old else "new" if now == new else f"mixed: {sorted(now)}"


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_kill_at_any_point_of_the_folder_write_leaves_old_or_new(tmp_path, point):
    from nrstream.atomic import clean_leftovers

    run = tmp_path / "run"
    _folder(run, "old")
    old = snapshot(run)
    new_dir = tmp_path / "expected"
    _folder(new_dir, "new")
    new = snapshot(new_dir)
    child = subprocess.run([sys.executable, "-c", CHILD, str(run), point], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _state(run, old, new) in POINTS[point]
    restored = clean_leftovers(run)  # what the next run does first, under the folder's lock
    assert _state(run, old, new) in {"old", "new"} - ({"old"} if POINTS[point] == {"new"} else set())
    if point == "fallback_between_renames":
        assert _state(run, old, new) == "old" and any("->" in r for r in restored)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected", "run"]  # no .run.*.tmp left


def test_a_completed_write_swaps_in_one_step(tmp_path):
    from nrstream.atomic import atomic_folder

    run = tmp_path / "run"
    _folder(run, "old")
    with atomic_folder(run) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in run.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_clean_leftovers_touches_only_the_folders_own_temporaries(tmp_path):
    from nrstream.atomic import clean_leftovers

    (tmp_path / "run").mkdir()
    mine = [".run.tmp", ".run.notes.tmp", ".runs.abcdefgh.tmp", ".run.abcdefgh.txt", "run.abcdefgh.tmp"]
    for name in mine:
        (tmp_path / name).write_text("keep")
    (tmp_path / ".run.abcd1234.tmp").mkdir()
    (tmp_path / ".run.zz_9yy88.old.tmp").write_text("leftover")
    assert sorted(clean_leftovers(tmp_path / "run")) == [".run.abcd1234.tmp", ".run.zz_9yy88.old.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*mine, "run"])


# ---------------------------------------------------------------- the whole evaluate, killed in its write


def _cli(args, home, **kw):
    env = cli_env(home)
    return subprocess.run(
        [sys.executable, "-m", "nrstream.cli", *map(str, args)], cwd=home, env=env, capture_output=True, text=True, **kw
    )


KILLED_EVALUATE = textwrap.dedent(
    """
    import os, signal, sys
    import nrstream.atomic as atomic
    from nrstream.cli import main

    point = sys.argv[1]
    if point == "fallback_between_renames":
        atomic._exchange = lambda a, b: False
        real = os.replace
        def replace(a, b):
            real(a, b)
            if str(b).endswith(".old.tmp"):
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.os.replace = replace
    else:
        real = atomic._exchange
        def exchange(a, b):
            done = real(a, b)
            os.kill(os.getpid(), signal.SIGKILL)
        atomic._exchange = exchange
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("point", ["after_swap", "fallback_between_renames"])
def test_evaluate_killed_in_its_run_folder_write_recovers_on_the_next_run(fault_home, toy_config, point):
    run = fault_home / "runs" / "toy"
    first = _cli(["evaluate", toy_config, "--no-progress"], fault_home, timeout=300)
    assert first.returncode == 0, first.stderr
    env = cli_env(fault_home)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_EVALUATE, point, "evaluate", str(toy_config), "--no-progress", "--seeds", "2"],
        cwd=fault_home, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [p.name for p in run.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers  # the kill left temporaries (and, in the fallback, no runs/toy)
    assert run.is_dir() == (point == "after_swap")
    again = _cli(["evaluate", toy_config, "--no-progress"], fault_home, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not [p.name for p in run.parent.iterdir() if p.name.endswith((".tmp", ".lock"))]
    assert {r["seed"] for r in json.loads((run / "results.json").read_text())["runs"]} == {0}  # this run's


# ---------------------------------------------------------------- locks, and kill -9 of the holder


HOLDER = textwrap.dedent(
    """
    import sys, time
    from nrstream.artifacts.run_folder import run_folder_lock

    with run_folder_lock(sys.argv[1], sys.argv[2]):
        print("locked", flush=True)
        time.sleep(600)
    """
)


def _holder(folder: Path, what: str = "run folder") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), what], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_on_a_locked_run_folder_exits_naming_the_pid(fault_home, toy_config, main_in_process):
    run = fault_home / "runs" / "toy"
    holder = _holder(run)
    try:
        before = snapshot(fault_home)
        result = main_in_process("evaluate", toy_config, "--no-progress")
        line = assert_one_line_error(result, "runs/toy", f"pid {holder.pid}", "in use by another nrstream process")
        assert "wait for it" in line
        assert not (fault_home / "checkpoints").exists() or snapshot(fault_home / "checkpoints") == {}
        assert set(snapshot(fault_home)) == set(before)
    finally:
        holder.kill()
        holder.wait()


def test_kill_9_of_the_holder_releases_the_lock(fault_home, toy_config, main_in_process):
    run = fault_home / "runs" / "toy"
    holder = _holder(run)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = run.parent / ".toy.lock"
    assert lock.read_text().strip() == str(holder.pid)  # the stale file stays; the lock itself is gone
    result = main_in_process("evaluate", toy_config, "--no-progress")
    assert result.returncode == 0, str(result)
    assert not lock.exists()  # removed on the clean release


def test_a_waiting_process_gets_the_lock_when_the_holder_is_killed(tmp_path):
    folder = tmp_path / "ck" / "gru-reset-0123"
    holder = _holder(folder, "checkpoint folder")
    waiter = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from nrstream.artifacts.run_folder import run_folder_lock
            began = time.monotonic()
            with run_folder_lock(sys.argv[1], "checkpoint folder", wait=True, notify=print):
                print(f"got it after {time.monotonic() - began:.1f} s", flush=True)
            """), str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    waiting = waiter.stdout.readline().strip()
    assert waiting == f"nrstream: waiting for pid {holder.pid}, which is writing checkpoint folder {folder}"
    time.sleep(0.5)
    assert waiter.poll() is None  # still waiting
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and out.startswith("got it after")


def test_train_waits_for_the_process_training_the_same_agent(fault_home, toy_config):
    """Two runs on one checkpoint folder: the second waits, then reuses what the first trained."""
    first = _cli(["train", toy_config, "--no-progress"], fault_home, timeout=300)
    assert first.returncode == 0, first.stderr
    (folder,) = (fault_home / "runs" / "checkpoints").glob("gru-reset-*")
    holder = _holder(folder, "checkpoint folder")
    second = subprocess.Popen(
        [sys.executable, "-m", "nrstream.cli", "train", str(toy_config), "--no-progress"],
        cwd=fault_home, env=cli_env(fault_home), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = second.stderr.readline()
    while line and "waiting" not in line:
        line = second.stderr.readline()
    assert f"waiting for pid {holder.pid}" in line and folder.name in line
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    _, rest = second.communicate(timeout=300)
    assert second.returncode == 0, rest
    assert "Traceback" not in rest


def test_a_lock_is_reentrant_in_one_process(tmp_path):
    from nrstream.artifacts.run_folder import run_folder_lock

    with run_folder_lock(tmp_path / "run"), run_folder_lock(tmp_path / "run"):
        assert (tmp_path / ".run.lock").read_text().strip() == str(os.getpid())
    assert not (tmp_path / ".run.lock").exists()


def test_the_lock_file_is_never_followed_as_a_link(tmp_path):
    from nrstream.atomic import exclusive_lock

    (tmp_path / "precious.txt").write_text("keep")
    os.symlink(tmp_path / "precious.txt", tmp_path / ".run.lock")
    with pytest.raises(OSError):
        with exclusive_lock(tmp_path / ".run.lock", "run folder"):
            pass
    assert (tmp_path / "precious.txt").read_text() == "keep"


assert REPO.is_dir()
