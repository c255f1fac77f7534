"""The command line: version, help, one-line errors, --debug."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nrstream
import nrstream.commands.plugins as plugins_command
from nrstream import cli
from nrstream.plugin.registry import get_registry


def test_version():
    result = subprocess.run([sys.executable, "-m", "nrstream.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"nrstream {nrstream.__version__}"


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: nrstream" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["evaluat"])
    assert raised.value.code == 2 and "invalid choice: 'evaluat'" in capsys.readouterr().err


@pytest.fixture
def failing_plugins_command(monkeypatch):
    """`nrstream plugins` made to look up a misspelt architecture."""
    monkeypatch.setattr(plugins_command, "run", lambda args: get_registry().get("architecture", "grux"))


def test_user_error_is_one_line_with_exit_code_2(failing_plugins_command, capsys):
    assert cli.main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nrstream: error: unknown architecture 'grux'; did you mean 'gru'?")
    assert err.count("\n") == 1


def test_debug_shows_the_traceback(failing_plugins_command):
    with pytest.raises(nrstream.PluginError, match="unknown architecture 'grux'"):
        cli.main(["--debug", "plugins"])
