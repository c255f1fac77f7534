"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _test_data_dir() -> Path:
    """``$NRSTREAM_TEST_DATA``, else ``shared/data`` beside the repository (as CI checks it out)."""
    env = os.environ.get("NRSTREAM_TEST_DATA", "").strip()
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def speech_sample() -> Path:
    """The 300-clip Speech Commands v0.01 sample; skips the test where it is absent."""
    path = _test_data_dir() / "speech_commands_v0.01_sample"
    if not (path / "validation_list.txt").is_file():
        pytest.skip(f"Speech Commands sample not found at {path} (set NRSTREAM_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def fsdd_sample() -> Path:
    """The shared FSDD v1.0.10 subset (2,000 recordings of four speakers); skips the test where it is absent."""
    path = _test_data_dir() / "fsdd_v1.0.10_sample"
    if not (path / "recordings").is_dir():
        pytest.skip(f"FSDD sample not found at {path} (set NRSTREAM_TEST_DATA)")
    return path


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ``$NRSTREAM_CACHE`` (and an empty ``$NRSTREAM_DATA``) for one test."""
    cache = tmp_path / "cache"
    data = tmp_path / "data"
    cache.mkdir()
    data.mkdir()
    monkeypatch.setenv("NRSTREAM_CACHE", str(cache))
    monkeypatch.setenv("NRSTREAM_DATA", str(data))
    return cache


@pytest.fixture(scope="module")
def one_torch_thread():
    """Toy models are tiny: one intra-op thread is as fast, and does not spin on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def restore_logging(monkeypatch):
    """``main()`` configures the nrstream logger and NRSTREAM_VERBOSITY; leave both as the next test expects."""
    from nrstream.log import configure

    monkeypatch.setenv("NRSTREAM_VERBOSITY", "0")
    yield
    configure(0)


def write_plugin_distribution(root: Path, module: str, source: str, *, dist: str | None = None) -> Path:
    """A one-module plugin distribution in ``root/module``: ``module/__init__.py`` and a pyproject.toml
    naming it in the ``nrstream`` entry-point group, as a third party would publish it."""
    import textwrap

    folder = root / module
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(textwrap.dedent(source))
    dist = dist or f"nrstream-test-{module.replace('_', '-')}"
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "{dist}"
        version = "1.2.3"
        [project.entry-points.nrstream]
        {module} = "{module}"
        [tool.hatch.build.targets.wheel]
        packages = ["{module}"]
        """)
    )
    return folder


def pip_install_into(target: Path, *folders: Path) -> Path:
    """``pip install --target`` the distributions (no dependencies, no build isolation: offline); returns ``target``."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    result = subprocess.run([*command, "--target", str(target), *map(str, folders)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return target
