"""Logging: library modules log to ``logging.getLogger("nrstream.<module>")``; the CLI configures it.

Progress lines are ``INFO``, notices (a fallback was used, audio was resampled) ``WARNING``,
details ``DEBUG``. :func:`configure` (called by ``nrstream`` with ``-v``/``-q``) puts one
handler on the ``nrstream`` logger that writes the CLI's one-line style to the *current*
``sys.stderr``: ``nrstream: <message>``, ``nrstream: notice: <message>``. Used as a library,
nrstream adds no handler: configure ``logging`` as you like (without any configuration,
Python shows notices and hides progress lines).

Progress bars (:func:`progress_bar`) are drawn on a terminal only: redirected to a log file or a
pipe, stderr gets no ``\\r`` frames.

Some functions take a ``notify``/``log`` callable of whole lines (``"nrstream: ..."``, used
by tests and embedding code); :func:`line_logger` turns a logger into such a callable.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["configure", "configure_worker", "line_logger", "progress_bar", "CliFormatter", "StderrHandler"]

_PREFIX = "nrstream: "
_NOTICE = "nrstream: notice: "


class StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at the time of the record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - follows sys.stderr (pytest's capsys, redirect_stderr)
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


class CliFormatter(logging.Formatter):
    """``nrstream: msg`` (INFO), ``nrstream: notice: msg`` (WARNING), ``nrstream: error: msg``, ``... debug: msg``."""

    _LEVELS = {
        logging.DEBUG: "debug: ",
        logging.WARNING: "notice: ",
        logging.ERROR: "error: ",
        logging.CRITICAL: "error: ",
    }

    def format(self, record: logging.LogRecord) -> str:
        return _PREFIX + self._LEVELS.get(record.levelno, "") + record.getMessage()


def configure(verbosity: int = 0) -> logging.Logger:
    """Log ``nrstream.*`` to stderr: ``verbosity`` -1 notices only (``-q``), 0 progress, 1 debug (``-v``).

    Idempotent: a second call (``main()`` run twice in one process) replaces the handler.
    Sets ``NRSTREAM_VERBOSITY`` so that worker processes started afterwards (Ray) can follow it.
    """
    os.environ["NRSTREAM_VERBOSITY"] = str(verbosity)
    logger = logging.getLogger("nrstream")
    for handler in list(logger.handlers):
        if isinstance(handler, StderrHandler):
            logger.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(CliFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    logger.propagate = False  # one line per record, even when the root logger has handlers too
    return logger


def configure_worker() -> None:
    """In a worker process (a Ray task): the CLI's logging, at ``NRSTREAM_VERBOSITY``, unless already set up."""
    logger = logging.getLogger("nrstream")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        try:
            verbosity = int(os.environ.get("NRSTREAM_VERBOSITY", "0"))
        except ValueError:
            verbosity = 0
        configure(verbosity)


def line_logger(logger: logging.Logger) -> Callable[[str], None]:
    """A ``notify(line)`` callable: ``"nrstream: notice: x"`` -> ``logger.warning("x")``, ``"nrstream: x"`` -> info."""

    def emit(line: str) -> None:
        if line.startswith(_NOTICE):
            logger.warning(line[len(_NOTICE) :])
        else:
            logger.info(line.removeprefix(_PREFIX))

    return emit


def progress_bar(iterable: Any = None, *, enabled: bool = True, **options: Any) -> Any:
    """A ``tqdm`` progress bar on stderr when it is a terminal, else a silent one (the one rule for bars).

    ``disable=None`` is tqdm's own terminal check: in a log file (``> log 2>&1``), a pipe, CI or
    a test, no ``\\r`` frames are written. ``enabled=False`` turns the bar off everywhere.
    ``iterable`` and ``options`` (``total``, ``desc``, ``unit``, ...) go to ``tqdm``.
    """
    from tqdm.auto import tqdm

    options.setdefault("file", sys.stderr)
    options.setdefault("leave", False)
    return tqdm(iterable, disable=None if enabled else True, **options)
