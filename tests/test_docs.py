"""Documentation stays true: every hook is documented, every command is listed."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nrstream import cli, hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("nrstream_")]


def test_there_are_four_hooks():
    assert sorted(HOOKS) == sorted(
        [
            "nrstream_register_architectures",
            "nrstream_register_losses",
            "nrstream_register_metrics",
            "nrstream_register_data_sources",
        ]
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_and_is_in_contributing(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    assert hook in (ROOT / "CONTRIBUTING.md").read_text(), f"{hook} is not in CONTRIBUTING.md"


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_is_documented_in_readme(command):
    assert f"nrstream {command}" in (ROOT / "README.md").read_text(), f"`nrstream {command}` is not in README.md"
