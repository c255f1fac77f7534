"""nrstream: continual (reset-free) inference in recurrent networks.

The public names are imported lazily so that ``import nrstream`` (done by every Python
process that imports gymnasium, to register the envs) stays cheap and torch-free.
``import nrstream`` registers the Gymnasium ids (``nrstream/Toy-v1``, ...): at once if
gymnasium is imported, else the moment it is (:mod:`nrstream.envs.registration`).
"""

from __future__ import annotations

import importlib

from nrstream.envs.registration import register_envs, register_on_gymnasium_import
from nrstream.errors import ConfigError, DataNotFoundError, NrstreamError, PluginError
from nrstream.plugin.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "SampleBank": "nrstream.stream.bank",
    "Dataset": "nrstream.stream.bank",
    "Chunk": "nrstream.stream.stream",
    "Stream": "nrstream.stream.stream",
    "GapLengths": "nrstream.stream.stream",
    "NoiseSource": "nrstream.stream.noise",
    "GaussianNoise": "nrstream.stream.noise",
    "SilenceNoise": "nrstream.stream.noise",
    "RecordedNoise": "nrstream.stream.noise",
    "make_noise": "nrstream.stream.noise",
    "Agent": "nrstream.agent",
    "get_registry": "nrstream.plugin.registry",
    "load_dataset": "nrstream.data.datasets",
    "make_stream": "nrstream.data.datasets",
    "load_config": "nrstream.lab.config",
    "StreamSettings": "nrstream.stream.settings",
    "run_experiment": "nrstream.lab.experiment",
    "Results": "nrstream.artifacts.results",
    "TrainedAgent": "nrstream.artifacts.trained_agent",
}

__all__ = [
    "__version__",
    "hookimpl",
    "NrstreamError",
    "PluginError",
    "ConfigError",
    "DataNotFoundError",
    "register_envs",
    "create",
    *_LAZY,
]


def create(kind: str, name: str, /, **options):
    """Build a registered component by kind and name, e.g. ``nrstream.create("loss", "ce_kl")``.

    ``kind`` is ``architecture``, ``loss``, ``metric`` or ``data_source``; ``options`` go to the
    plugin's factory. The same as ``nrstream.get_registry().create(kind, name, **options)``.
    """
    from nrstream.plugin.registry import get_registry

    return get_registry().create(kind, name, **options)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nrstream' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


register_on_gymnasium_import()
