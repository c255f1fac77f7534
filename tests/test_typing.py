"""Types reach users (issue 26, item 4): ``mypy --strict`` on a user's script sees nrstream's
annotations (PEP 561 ``py.typed``; the lazy names of ``nrstream/__init__.py`` typed through its
``TYPE_CHECKING`` imports), so a planted type error is reported, not hidden behind ``Any``.

mypy comes with the ``dev`` extra; without it the test skips and says so.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_FILE = """\
import torch

import nrstream
from nrstream import Agent, Chunk, Dataset, StreamSettings, load_dataset, make_stream

dataset: Dataset = load_dataset("toy")
settings = StreamSettings(gap_min=2, gap_max=4)
chunk: Chunk = make_stream(dataset, "train", settings, num_lanes=2, seed=0).next_chunk(10)
model = nrstream.create("architecture", "gru", input_size=dataset.feature_size, num_classes=dataset.num_classes)
agent = Agent(model)
logits: torch.Tensor = agent.observe(chunk)
classes: int = dataset.num_classes
planted: str = chunk.label  # the error a user must be told about
"""


def test_the_lazy_names_are_all_typed():
    tree = ast.parse((ROOT / "nrstream" / "__init__.py").read_text())
    lazy = next(node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "_LAZY")
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    typed = {alias.name for node in block.body for alias in node.names}
    exported = next(
        node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"
    )
    assert typed == {key.value for key in lazy.keys} <= {name.value for name in exported.elts}


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed (pip install '.[dev]')")
def test_mypy_strict_on_a_user_file_reports_the_planted_error(tmp_path, request):
    (tmp_path / "user.py").write_text(USER_FILE)
    # torch's stubs take a while the first time: keep mypy's cache in pytest's (absent under -p no:cacheprovider)
    store = getattr(request.config, "cache", None)
    cache = store.mkdir("mypy-user-file") if store is not None else tmp_path / ".mypy_cache"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-color-output", "--cache-dir", str(cache), "user.py"],
        cwd=tmp_path,  # outside the checkout: nrstream is found as installed, as a user has it
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert lines == [
        'user.py:13: error: Incompatible types in assignment (expression has type "Tensor", variable has type '
        '"str")  [assignment]'
    ], proc.stdout + proc.stderr
    assert (ROOT / "nrstream" / "py.typed").is_file() and (ROOT / "plugins" / "nrstream_plugins" / "py.typed").is_file()
