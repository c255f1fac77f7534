"""The compiled CPU kernel of the selective scan (``_selective_scan.cpp``), built on first use.

:func:`kernel` compiles the C++ source with :func:`torch.utils.cpp_extension.load_inline` the first
time a CPU scan runs in a process (a C++ compiler, ninja and the Python headers are needed; under a
minute once, then the
build is reused from torch's extension folder, ``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``,
keyed by the source, so an edit rebuilds). Several processes that start at once (pytest-xdist workers,
parallel jobs) wait on torch's lock file in that folder and load the one build.

When the build fails (no compiler, no ninja, any error) or ``NRSTREAM_NO_CPP=1`` is set, the scan
runs its pure-PyTorch loop instead: the same numbers, slower to train. That choice is logged once per
process, on ``nrstream.plugins.selective_scan``.

The kernel's loops are compiled three times (AVX-512, AVX2 + FMA, baseline x86-64) and the best one
the CPU has is picked when it loads; ``NRSTREAM_SCAN_ISA=0`` or ``3`` caps that choice (tests, timing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sysconfig
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["kernel", "disabled", "python_headers", "SOURCE"]

SOURCE = Path(__file__).with_name("_selective_scan.cpp")
_log = logging.getLogger("nrstream.plugins.selective_scan")
_lock = threading.Lock()
_state: dict[str, ModuleType | None] = {}
#: -O3 without -march (the build is cached and may be loaded on another machine; the kernel picks its
#: instruction set at run time); -fno-trapping-math lets the compiler vectorise the clamps in exp;
#: -fopenmp runs at::parallel_for on torch's OpenMP threads (torch.get_num_threads())
CFLAGS = ["-O3", "-fno-trapping-math", "-fopenmp"]


def disabled() -> bool:
    """True when ``NRSTREAM_NO_CPP`` asks for the pure-PyTorch scan (any value but empty or ``0``)."""
    return os.environ.get("NRSTREAM_NO_CPP", "") not in ("", "0")


def kernel() -> ModuleType | None:
    """The compiled module (``forward``, ``backward``), or None where the Python loop must run.

    Checked on every call for ``NRSTREAM_NO_CPP`` (so a test or a user can switch it in a running
    process); the build is attempted at most once per process.
    """
    if disabled():
        if "disabled" not in _state:
            _state["disabled"] = None
            _log.info("NRSTREAM_NO_CPP is set: the selective scan runs its PyTorch loop (training is slower)")
        return None
    if "module" not in _state:
        with _lock:
            if "module" not in _state:
                _state["module"] = _build()
    return _state["module"]


def python_headers() -> bool:
    """True when this Python's C headers, which every extension build includes, are installed."""
    return (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


def _build() -> ModuleType | None:
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return _fall_back(f"no C++ compiler: {compiler!r} is not on PATH")
    if shutil.which("ninja") is None:  # torch's builder runs it from PATH
        return _fall_back("ninja is not on PATH (Debian: ninja-build; or pip install ninja)")
    if not python_headers():
        return _fall_back("no Python.h for this Python (Debian: python3-dev)")
    try:
        import torch

        quiet = logging.getLogger("torch.utils.cpp_extension")
        level, quiet.level = quiet.level, logging.ERROR  # its import warns about CUDA, which this build never uses
        try:
            from torch.utils import cpp_extension
        finally:
            quiet.setLevel(level)

        source = SOURCE.read_text(encoding="utf-8")
        # the name carries the hash of the source and flags: a changed kernel never loads another's build
        key = hashlib.sha256((source + " ".join(CFLAGS) + torch.__version__).encode()).hexdigest()[:12]
        name = f"nrstream_selective_scan_{key}"
        folder = Path(cpp_extension._get_build_directory(name, verbose=False))
        if not (folder / f"{name}.so").exists():
            _log.info("compiling the selective scan's C++ kernel once (cached in %s)", folder)
        return cpp_extension.load_inline(
            name=name,
            cpp_sources=[source],
            functions=["forward", "backward"],
            extra_cflags=CFLAGS,
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as error:  # noqa: BLE001 - any failure means: run the Python loop
        return _fall_back(" ".join(str(error).split())[:300] or type(error).__name__)


def _fall_back(reason: str) -> None:
    _log.warning(
        "the selective scan's C++ kernel did not build (%s): mamba runs its PyTorch loop on the CPU, "
        "with the same numbers but slower training (set NRSTREAM_NO_CPP=1 to skip the build)",
        reason,
    )
