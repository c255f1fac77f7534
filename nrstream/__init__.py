"""nrstream: continual (reset-free) inference in recurrent networks.

The public names are imported lazily so that ``import nrstream`` (done by every Python
process that imports gymnasium, to register the envs) stays cheap and torch-free.
"""

from __future__ import annotations

import importlib

from nrstream.errors import ConfigError, DataNotFoundError, NrstreamError, PluginError
from nrstream.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "SampleBank": "nrstream.bank",
    "Dataset": "nrstream.bank",
    "Chunk": "nrstream.stream",
    "Stream": "nrstream.stream",
    "GapLengths": "nrstream.stream",
    "NoiseSource": "nrstream.noise",
    "GaussianNoise": "nrstream.noise",
    "SilenceNoise": "nrstream.noise",
    "RecordedNoise": "nrstream.noise",
    "make_noise": "nrstream.noise",
    "Agent": "nrstream.agent",
    "get_registry": "nrstream.plugins",
    "load_dataset": "nrstream.datasets",
    "make_stream": "nrstream.datasets",
}

__all__ = [
    "__version__",
    "hookimpl",
    "NrstreamError",
    "PluginError",
    "ConfigError",
    "DataNotFoundError",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nrstream' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
