"""The wheel as a pip user gets it: built from a clean checkout, installed into a fresh venv.

The venv reuses the test venv's installed packages through a plain path ``.pth`` (so
nothing is downloaded and none of the test venv's own ``.pth`` hooks, such as the editable
nrstream, run) and gets the built wheel with ``pip install --no-deps``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A venv holding the wheel; returns its python, bin folder, a clean env and a work folder."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = ROOT
    if (ROOT / ".git").exists() and shutil.which("git"):
        source = tmp / "checkout"  # only committed files: nobody's work in progress in the wheel
        _run(["git", "clone", "--quiet", "--no-hardlinks", ROOT, source], cwd=tmp)
    dist = tmp / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, source],
        cwd=tmp,
    )
    (wheel,) = dist.glob("nrstream-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip()
    )
    (purelib / "_test_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel], cwd=tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(NRSTREAM_CACHE=str(tmp / "cache"), NRSTREAM_DATA=str(tmp / "data"), OMP_NUM_THREADS="1")
    work = tmp / "work"
    work.mkdir()
    return {"python": python, "bin": venv / "bin", "env": env, "work": work, "wheel": wheel, "purelib": purelib}


def test_the_wheel_is_what_runs_and_carries_its_metadata(installed):
    code = (
        "import json, importlib.metadata as md, nrstream, _nrstream_gymnasium\n"
        "meta = md.metadata('nrstream')\n"
        "print(json.dumps({'file': nrstream.__file__, 'hook': _nrstream_gymnasium.__file__,\n"
        "    'version': md.version('nrstream'), 'module_version': nrstream.__version__,\n"
        "    'license': meta['License-Expression'], 'requires_python': meta['Requires-Python'],\n"
        "    'classifiers': meta.get_all('Classifier'), 'license_files': meta.get_all('License-File'),\n"
        "    'extras': meta.get_all('Provides-Extra')}))\n"
    )
    info = json.loads(_run([installed["python"], "-c", code], installed["work"], installed["env"]).stdout)
    assert Path(info["file"]).is_relative_to(installed["purelib"])  # the wheel, not the checkout
    assert Path(info["hook"]).is_relative_to(installed["purelib"])
    assert info["version"] == info["module_version"]
    assert info["license"] == "MIT" and info["license_files"] == ["LICENSE"]
    assert info["requires_python"] == ">=3.11.4"
    assert "Intended Audience :: Science/Research" in info["classifiers"]
    assert {"dev", "compat"} <= set(info["extras"])


def test_the_wheel_carries_py_typed_for_both_packages(installed):
    # issue 26 (4): PEP 561, so a type checker reads nrstream's and nrstream_plugins' annotations
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert {"nrstream/py.typed", "nrstream_plugins/py.typed"} <= names


def test_the_wheel_carries_the_selective_scan_kernel_source(installed):
    # issue 28: mamba compiles its CPU scan from this file on first use; without it a pip install falls back
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert "nrstream_plugins/architectures/_selective_scan.cpp" in names


def test_ids_register_from_the_wheels_pth_without_import_nrstream(installed):
    code = (
        "import sys, gymnasium\n"
        "assert 'nrstream' not in sys.modules or sys.modules['nrstream'].__file__\n"
        "env = gymnasium.make('nrstream/Toy-v1')\n"
        "print(env.observation_space.shape, env.action_space)\n"
    )
    out = _run([installed["python"], "-c", code], installed["work"], installed["env"]).stdout
    assert out.strip() == "(8,) Discrete(4)"


def test_bundled_configs_are_listed_shown_and_run_by_name(installed):
    nrstream = installed["bin"] / "nrstream"
    work, env = installed["work"], installed["env"]
    listed = json.loads(_run([nrstream, "configs", "--json"], work, env).stdout)
    names = [row["name"] for row in listed]
    assert names == _bundled_names()
    assert all(Path(row["path"]).is_relative_to(installed["purelib"] / "nrstream" / "configs") for row in listed)
    shown = _run([nrstream, "configs", "show", "speech"], work, env).stdout
    assert shown == (ROOT / "configs" / "speech.yaml").read_text()
    _run([nrstream, "evaluate", "toy", "--out", work / "run"], work, env, timeout=600)
    results = json.loads((work / "run" / "results.json").read_text())
    assert results["config"]["run"]["name"] == "toy" and results["runs"]


# --- the same lookups in this (source or editable) install, without building anything ------


def _bundled_names() -> list[str]:
    """``configs/**/*.yaml`` by name: the path below configs/ without the suffix (``paper/fmnist``)."""
    folder = ROOT / "configs"
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def test_find_config_a_local_file_wins_then_bundled_names(tmp_path, monkeypatch):
    from nrstream.errors import ConfigError
    from nrstream.lab.bundled_configs import find_config, list_configs

    monkeypatch.chdir(tmp_path)
    bundled = list_configs()
    assert list(bundled) == _bundled_names() and "paper/fmnist" in bundled
    assert find_config("toy") == find_config("toy.yaml") == bundled["toy"]
    assert find_config("paper/fmnist") == find_config("paper/fmnist.yaml") == bundled["paper/fmnist"]
    assert bundled["toy"].read_text() == (ROOT / "configs" / "toy.yaml").read_text()
    Path("toy.yaml").write_text("run: {name: mine}\n")
    assert find_config("toy.yaml") == Path("toy.yaml")  # the local file
    assert find_config("toy") == bundled["toy"]  # a bare name without the file: bundled
    assert find_config("sub/missing.yaml") == Path("sub/missing.yaml")  # a path: reading it will say so
    with pytest.raises(
        ConfigError, match=r"^quikstart: no such config file.*\(did you mean 'quickstart'\?\); bundled: "
    ):
        find_config("quikstart")


def test_load_config_and_the_cli_take_bundled_names(tmp_path, monkeypatch, capsys):
    from nrstream.cli import main
    from nrstream.lab.config import load_config

    monkeypatch.chdir(tmp_path)
    assert load_config("toy").run.name == "toy"
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == _bundled_names()
    assert any(line.startswith("toy ") and "Tiny, seconds on a CPU" in line for line in lines)
    assert main(["configs", "show", "speech"]) == 0
    assert capsys.readouterr().out == (ROOT / "configs" / "speech.yaml").read_text()
    assert main(["configs", "show", "paper/speech"]) == 0
    assert capsys.readouterr().out == (ROOT / "configs" / "paper" / "speech.yaml").read_text()
    assert main(["configs", "show", "speach"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'speech'?" in err[0]
    assert main(["configs", "show", "no/such.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "nrstream: error: no/such.yaml: no such config file (nrstream configs lists the bundled ones)"
    )
