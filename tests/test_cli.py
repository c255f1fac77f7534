"""The command line: version, help, one-line errors, --debug."""

from __future__ import annotations

import argparse
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


# --- issue 26 -------------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_global_flags_work_after_the_sub_command_and_v_adds_debug_lines(capsys):
    assert cli.main(["data", "info", "toy", "--json"]) == 0
    assert "debug:" not in capsys.readouterr().err
    assert cli.main(["data", "info", "toy", "--json", "-v"]) == 0
    err = capsys.readouterr().err
    assert "nrstream: debug: nrstream " in err and "command line: ['data', 'info', 'toy', '--json', '-v']" in err
    assert "nrstream: debug: data source toy {}" in err
    assert cli.main(["-v", "plugins"]) == 0 and "nrstream: debug: " in capsys.readouterr().err
    assert cli.main(["plugins", "-q"]) == 0 and capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as raised:
        cli.main(["-v", "plugins", "-q"])
    assert raised.value.code == 2 and "-q/--quiet: not allowed with argument -v/--verbose" in capsys.readouterr().err


def test_debug_after_the_sub_command_shows_the_traceback(failing_plugins_command):
    with pytest.raises(nrstream.PluginError, match="unknown architecture 'grux'"):
        cli.main(["plugins", "--debug"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--out", "."], "run folder . holds the checkpoint folder runs/checkpoints"),
        (["--out", "runs"], "run folder runs holds the checkpoint folder runs/checkpoints"),
        (["--out", "res", "--checkpoints", "res/ckpt"], "run folder res holds the checkpoint folder res/ckpt"),
        (["--out", "res", "--checkpoints", "res"], "run folder res is the checkpoint folder res"),
    ],
)
def test_out_holding_the_checkpoint_folder_is_refused_before_any_training(
    flags, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # empty: only the checkpoints training would write could be refused later
    assert cli.main(["evaluate", "toy", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nrstream: error: {message}; the run folder is replaced as a whole") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_data_info_takes_set_and_o_as_its_alias(capsys):
    assert cli.main(["data", "info", "toy", "--set", "num_classes=3"]) == 0
    with_set = capsys.readouterr().out
    assert "classes:  3 (class_0, class_1, class_2)" in with_set
    assert cli.main(["data", "info", "toy", "-o", "num_classes=3"]) == 0
    assert capsys.readouterr().out == with_set
    assert cli.main(["data", "info", "toy", "--set", "data.options.num_classes=3"]) == 0
    assert capsys.readouterr().out == with_set
    assert cli.main(["data", "info", "toy", "--set", "data.stream.gap_max=3"]) == 2
    assert capsys.readouterr().err == (
        "nrstream: error: data info --set data.stream.gap_max: takes data.options.KEY or a bare KEY (a source option)\n"
    )
    assert cli.main(["data", "info", "toy", "-o", "num_classes"]) == 2
    assert "expected KEY=VALUE, got 'num_classes'" in capsys.readouterr().err


def test_make_recording_sets_split_into_source_options_and_stream_settings():
    from nrstream.commands.overrides import data_sets

    pairs = ["tail=5", "data.stream.snr_db=[0, 10]", "data.options.words=[up, down]"]
    assert data_sets(pairs, "make-recording", "stream", ("options", "stream")) == {
        "options": {"words": ["up", "down"]},
        "stream": {"tail": 5, "snr_db": [0, 10]},
    }
    args = cli.build_parser().parse_args(
        ["data", "make-recording", "synth_speech", "--minutes", "1", "--out", "a.wav", "--truth", "a.csv",
         "-o", "renderings_per_word=3", "--set", "tail=2"]
    )  # fmt: skip
    assert args.sets == ["data.options.renderings_per_word=3", "tail=2"]


def test_config_summaries_are_whole_sentences(capsys):
    assert cli.main(["configs"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["quickstart"] == (
        "Quick start: real Fashion-MNIST read row by row (28 frames of 28 pixels), a GRU, and the three main losses."
    )
    assert lines["saturation"] == "Where does plain `ce` (no reset, no KL term) saturate?"
    assert all(summary.rstrip().endswith((".", "?", "!")) for summary in lines.values()), lines


@pytest.mark.parametrize("command", [["listen"], ["data", "make-recording"]])
def test_help_shows_every_default(command):
    parser = cli.build_parser()
    for name in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in (action.help or "") % {"default": action.default}, action.option_strings
