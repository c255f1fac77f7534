"""Logging: library modules log through ``nrstream.*`` loggers; the CLI shows them on stderr; ``-v``/``-q``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nrstream.cli import main
from nrstream.log import CliFormatter, StderrHandler, configure, configure_worker, line_logger

ROOT = Path(__file__).resolve().parent.parent
TOY = str(ROOT / "configs" / "toy.yaml")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "restore_logging")


def _train(tmp_path: Path, *flags: str) -> int:
    return main([*flags, "train", TOY, "--no-progress", "--set", f"run.out_dir={tmp_path}",
                 "--set", "agents.losses=[ce_kl]", "--set", "train.epochs=1"])  # fmt: skip


def test_default_shows_progress_lines_quiet_hides_them(tmp_path, capsys):
    assert _train(tmp_path) == 0
    err = capsys.readouterr().err
    assert "nrstream: gru/ce_kl epoch 1: loss " in err and "nrstream: gru/ce_kl seed 0: trained in " in err
    assert _train(tmp_path, "-q") == 0  # the second run reuses the checkpoint
    assert capsys.readouterr().err == ""
    assert _train(tmp_path) == 0
    assert "nrstream: gru/ce_kl seed 0: reused" in capsys.readouterr().err


def test_verbose_and_quiet_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["-v", "-q", "plugins"])
    assert raised.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_levels_and_the_one_line_style(capsys):
    logger = configure(0)
    try:
        child = logging.getLogger("nrstream.test_logging")
        child.debug("hidden")
        child.info("progress")
        line_logger(child)("nrstream: notice: data source 'x' found no data")
        assert capsys.readouterr().err == "nrstream: progress\nnrstream: notice: data source 'x' found no data\n"
        configure(1)
        child.debug("detail")
        configure(-1)
        child.info("hidden too")
        child.warning("still shown")
        assert capsys.readouterr().err == "nrstream: debug: detail\nnrstream: notice: still shown\n"
        ours = [h for h in logger.handlers if isinstance(h, StderrHandler)]
        assert len(ours) == 1  # configure() replaces its handler, never stacks them
    finally:
        configure(0)


def test_formatter_levels():
    record = logging.LogRecord("nrstream.x", logging.ERROR, __file__, 1, "bad %s", ("input",), None)
    assert CliFormatter().format(record) == "nrstream: error: bad input"


def test_a_worker_follows_the_cli_verbosity(monkeypatch, capsys):
    logger = logging.getLogger("nrstream")
    for handler in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
        logger.removeHandler(handler)
    monkeypatch.setenv("NRSTREAM_VERBOSITY", "-1")  # what `nrstream -q` leaves for Ray workers it starts
    configure_worker()
    logging.getLogger("nrstream.lab.experiment").info("hidden")
    logging.getLogger("nrstream.lab.experiment").warning("shown")
    assert capsys.readouterr().err == "nrstream: notice: shown\n"
    configure(0)
    configure_worker()  # already configured: left alone
    assert logger.level == logging.INFO


def test_a_synthesis_logged_to_a_file_writes_no_progress_bar_frames(tmp_path):
    # issue 26 (5): `nrstream ... > log 2>&1` gets lines, not tqdm's \r frames (bars on a terminal only)
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    env = {
        **os.environ,
        "NRSTREAM_CACHE": str(tmp_path / "cache"),
        "NRSTREAM_DATA": str(tmp_path),
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "log"
    with log.open("w") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "nrstream.cli", "data", "info", "synth_speech", "-o", "words=[up, down, left]",
             "-o", "renderings_per_word=3", "-o", "variation=none"],
            stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, timeout=600,
        )  # fmt: skip
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "classes:" in text and any((tmp_path / "cache" / "synth_speech").iterdir())  # it did synthesise
    assert "\r" not in text and "espeak-ng:" not in text
