"""Fault-injection harness shared by every ``tests/faults/test_*.py`` (issue 11).

Each fault case breaks one thing a hostile or unlucky user could break (a file, a folder,
a value, a signal) and asserts the promise of the README "Errors" section:

- the CLI exits with code 2 (or the documented code, 130 for an interrupt);
- stderr is EXACTLY one line, ``nrstream: error: ...``, naming the file/key/plugin;
- no ``Traceback`` anywhere;
- nothing the user had is lost: every file that was there is still there, byte for byte,
  and no half-written output (hidden ``.*.tmp`` leftovers) is left behind.

Helpers: plain functions, imported by the case files as
``from faults.conftest import assert_one_line_error, snapshot, ...`` (``tests/faults`` is a
package, so ``faults/test_config.py`` and ``test_config.py`` do not collide), and fixtures:

- :func:`run_cli` (fixture ``cli``): the real ``nrstream`` console script in a subprocess,
  with a timeout, a fresh ``$NRSTREAM_CACHE``/``$NRSTREAM_DATA`` and one torch thread.
  Use it where the promise is about the CLI (exit code, stderr, signals).
- :func:`run_main` (fixture ``main_in_process``): ``nrstream.cli.main(argv)`` in this process,
  stdout/stderr captured; the same behaviour for ordinary errors and ~1 s faster per call.
- :func:`assert_one_line_error`: the exit-code / one-line / names / no-traceback check.
- :func:`snapshot` and :func:`assert_nothing_lost`: a folder tree (paths + bytes + link
  targets) before, compared after.
- :func:`write_toy_config` (fixture ``toy_config``): a tiny, valid toy config (seconds).
- fixture ``speech_root``: a 12-clip copy of the real Speech Commands sample (skips without it).
- fixtures ``full_disk`` (a real 64 KiB tmpfs) and ``read_only`` (a read-only bind mount).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

#: how long one CLI subprocess may take before the case fails (a hang is a failure too)
CLI_TIMEOUT_S = 120


@dataclass
class CliResult:
    """What one ``nrstream`` call did: exit code and the two streams as text."""

    returncode: int
    stdout: str
    stderr: str
    argv: list[str]

    def __str__(self) -> str:  # shown by pytest when an assertion on the result fails
        head = f"$ nrstream {' '.join(self.argv)}\n[exit {self.returncode}]"
        return f"{head}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def _console_script() -> list[str]:
    """The installed ``nrstream`` entry point beside this interpreter, else ``python -m nrstream.cli``."""
    script = Path(sys.executable).parent / "nrstream"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nrstream.cli"]


def cli_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: a private cache and data folder under ``home``, one thread."""
    env = dict(os.environ)
    env.update(
        {
            "NRSTREAM_CACHE": str(home / "cache"),
            "NRSTREAM_DATA": str(home / "data"),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("NRSTREAM_STRICT_PLUGINS", None)
    env.update(extra or {})
    return env


def run_cli(
    *argv: str | os.PathLike,
    cwd: str | os.PathLike,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
    prefix: list[str] | None = None,
) -> CliResult:
    """Run ``nrstream *argv`` in a subprocess (``prefix`` replaces the command, e.g. ``python -c ...``)."""
    args = [os.fspath(a) for a in argv]
    command = (prefix if prefix is not None else _console_script()) + args
    env = env if env is not None else cli_env(Path(cwd))
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"nrstream {' '.join(args)} did not finish within {timeout} s (a hang); stderr: {exc.stderr!r}")
    return CliResult(done.returncode, done.stdout, done.stderr, args)


def run_main(*argv: str | os.PathLike) -> CliResult:
    """``nrstream.cli.main(argv)`` in this process; stdout/stderr captured, warning display restored.

    ``main`` routes warnings to one ``nrstream: warning:`` line each, as the console script
    does; ``warnings.simplefilter("always")`` makes a repeated warning show every time.
    """
    from nrstream.cli import main

    args = [os.fspath(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    shown = warnings.showwarning
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            warnings.simplefilter("always")
            try:
                code = main(args)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        warnings.showwarning = shown
    return CliResult(int(code), out.getvalue(), err.getvalue(), args)


def assert_one_line_error(
    result: CliResult, *names: str | os.PathLike, code: int = 2, prefix: str = "nrstream: error:"
) -> str:
    """Exit ``code``; stderr is exactly one line starting with ``prefix`` and naming every ``names``.

    Returns the line, for further checks.
    """
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, str(result)
    assert result.returncode == code, str(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}\n{result}"
    line = lines[0]
    assert line.startswith(prefix), str(result)
    for name in names:
        assert os.fspath(name) in line, f"the error does not name {os.fspath(name)!r}\n{result}"
    return line


def assert_no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, str(result)


Snapshot = dict[str, tuple[str, bytes | str | None]]


def snapshot(root: str | os.PathLike) -> Snapshot:
    """Every entry under ``root`` (relative path -> kind and content): files' bytes, links' targets.

    Links are recorded, never followed; ``root`` itself may be a file.
    """
    root = Path(root)
    if root.is_symlink():
        return {".": ("link", os.readlink(root))}
    if root.is_file():
        return {".": ("file", root.read_bytes())}
    entries: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = ("dir", None)
            else:
                entries[rel] = ("file", path.read_bytes())
    return entries


def assert_nothing_lost(before: Snapshot, root: str | os.PathLike, *, allow_new: bool = True) -> None:
    """Every entry of ``before`` is still under ``root``, unchanged; no ``.*.tmp`` leftovers.

    With ``allow_new=False`` nothing may have been added either.
    """
    after = snapshot(root)
    lost = sorted(set(before) - set(after))
    assert not lost, f"lost under {root}: {lost}"
    changed = sorted(p for p in before if before[p] != after[p])
    assert not changed, f"changed under {root}: {changed}"
    leftovers = sorted(p for p in set(after) - set(before) if Path(p).name.startswith(".") and ".tmp" in Path(p).name)
    assert not leftovers, f"half-written temporary files left under {root}: {leftovers}"
    if not allow_new:
        assert set(after) == set(before), f"new under {root}: {sorted(set(after) - set(before))}"


def toy_config_dict(**sections) -> dict:
    """The smallest useful toy config: 1 epoch, 1 GRU with the reset loss, seconds on a CPU.

    Keyword arguments replace (whole) top-level sections, e.g. ``run={"name": "x"}``.
    """
    config = {
        "run": {"name": "toy", "seed": 0, "device": "cpu"},
        "data": {
            "source": "toy",
            "options": {"num_classes": 3, "feature_size": 4, "train_size": 48, "validation_size": 16, "test_size": 32},
            "stream": {"gap_min": 2, "gap_max": 4, "noise": "gaussian", "noise_scale": 1.0},
        },
        "agents": {"archs": [{"name": "gru", "options": {"hidden_size": 8}}], "losses": ["reset"]},
        "train": {
            "epochs": 1,
            "lanes": 4,
            "chunk_length": 16,
            "samples_per_lane": 4,
            "lr": 0.01,
            "validation_lanes": 4,
        },
        "evaluate": {
            "lengths": [1, 2],
            "min_decisions": 16,
            "chunk_length": 32,
            "endless_lanes": 2,
            "endless_samples": 8,
            "rolling_window": 8,
            "metrics": ["accuracy"],
        },
    }
    config.update(sections)
    return config


def write_toy_config(path: str | os.PathLike, **sections) -> Path:
    """Write :func:`toy_config_dict` (``sections`` replace top-level sections) as YAML to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(toy_config_dict(**sections), sort_keys=False))
    return path


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def fault_home(tmp_path, monkeypatch) -> Path:
    """A working folder with private ``cache/`` and ``data/`` (also set for in-process calls)."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("NRSTREAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NRSTREAM_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(fault_home):
    """``cli(*argv, **kw)``: :func:`run_cli` in ``fault_home`` with its private cache and data."""

    def call(*argv, env_extra: dict[str, str] | None = None, **kwargs) -> CliResult:
        kwargs.setdefault("cwd", fault_home)
        kwargs.setdefault("env", cli_env(fault_home, env_extra))
        return run_cli(*argv, **kwargs)

    return call


@pytest.fixture
def main_in_process(fault_home):
    """``main_in_process(*argv)``: :func:`run_main` in ``fault_home`` with its private cache and data."""
    return run_main


#: the words of the small Speech Commands copy (``speech_root``)
SPEECH_WORDS = ["bed", "no", "yes", "cat"]


@pytest.fixture
def speech_root(speech_sample, fault_home) -> Path:
    """Four words x 3 real clips (first in validation, second in testing) and a 20 s noise recording."""
    dest = fault_home / "sc"
    dest.mkdir()
    val, test = [], []
    for word in SPEECH_WORDS:
        (dest / word).mkdir()
        for i, clip in enumerate(sorted((speech_sample / word).glob("*.wav"))[:3]):
            shutil.copy(clip, dest / word / clip.name)
            (val if i == 0 else test if i == 1 else []).append(f"{word}/{clip.name}")
    (dest / "validation_list.txt").write_text("\n".join(val) + "\n")
    (dest / "testing_list.txt").write_text("\n".join(test) + "\n")
    import soundfile

    (dest / "_background_noise_").mkdir()
    noise, rate = soundfile.read(speech_sample / "_background_noise_" / "white_noise.wav", frames=16000 * 20)
    soundfile.write(dest / "_background_noise_" / "white_noise.wav", noise, rate)
    return dest


@pytest.fixture
def toy_config(fault_home) -> Path:
    """``fault_home/toy.yaml``: the shared tiny toy config."""
    return write_toy_config(fault_home / "toy.yaml")


def _mount(*args: str) -> bool:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path):
    """``make(name="full", size="64k") -> Path``: a real, tiny tmpfs (needs root to mount; skips otherwise).

    Writing more than ``size`` there fails with ENOSPC, as on a full disk. Unmounted at teardown.
    """
    mounted: list[Path] = []

    def make(name: str = "full", size: str = "64k") -> Path:
        path = tmp_path / name
        path.mkdir(parents=True, exist_ok=True)
        if not _mount("-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)):
            pytest.skip("cannot mount a tmpfs here (needs root): the full-disk case runs only where it can")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        _umount(path)


@pytest.fixture
def read_only(tmp_path):
    """``make(folder) -> folder``: ``folder`` bind-mounted read-only over itself (root ignores chmod).

    Skips where bind mounts are not allowed; unmounted at teardown. Without root,
    ``chmod 0o555`` gives the same effect and is used instead.
    """
    mounted: list[Path] = []
    chmodded: list[Path] = []

    def make(folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            chmodded.append(folder)
            return folder
        if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,ro,bind", str(folder))):
            _umount(folder)
            pytest.skip("cannot bind-mount a folder read-only here")
        mounted.append(folder)
        return folder

    yield make
    for path in reversed(mounted):
        _umount(path)
    for path in chmodded:
        path.chmod(0o755)
