"""nrstream: continual (reset-free) inference in recurrent networks.

The public names are imported lazily so that ``import nrstream`` (done by every Python
process that imports gymnasium, to register the envs) stays cheap and torch-free.
``import nrstream`` registers the Gymnasium ids (``nrstream/Toy-v1``, ...): at once if
gymnasium is imported, else the moment it is (:mod:`nrstream.envs.registration`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the lazy names, typed for type checkers (PEP 561: py.typed), exported by __all__
    from nrstream.agent import Agent
    from nrstream.artifacts.results import Results
    from nrstream.artifacts.trained_agent import TrainedAgent
    from nrstream.data.datasets import load_dataset, make_stream
    from nrstream.lab.config import load_config
    from nrstream.lab.experiment import run_experiment
    from nrstream.plugin.registry import get_registry
    from nrstream.stream.bank import Dataset, SampleBank
    from nrstream.stream.noise import (
        GaussianNoise,
        NoiseSource,
        RecordedNoise,
        SilenceNoise,
        make_noise,
    )
    from nrstream.stream.settings import StreamSettings
    from nrstream.stream.stream import Chunk, GapLengths, Stream

__all__ = [
    "__version__",
    "hookimpl",
    "NrstreamError",
    "PluginError",
    "ConfigError",
    "DataNotFoundError",
    "register_envs",
    "create",
    # the lazy names (a literal list: type checkers do not read *_LAZY)
    "SampleBank",
    "Dataset",
    "Chunk",
    "Stream",
    "GapLengths",
    "NoiseSource",
    "GaussianNoise",
    "SilenceNoise",
    "RecordedNoise",
    "make_noise",
    "Agent",
    "get_registry",
    "load_dataset",
    "make_stream",
    "load_config",
    "StreamSettings",
    "run_experiment",
    "Results",
    "TrainedAgent",
]


def create(kind: str, name: str, /, **options: Any) -> Any:
    """Build a registered component by kind and name, e.g. ``nrstream.create("loss", "ce_kl")``.

    ``kind`` is ``architecture``, ``loss``, ``metric`` or ``data_source``; ``options`` go to the
    plugin's factory. The same as ``nrstream.get_registry().create(kind, name, **options)``.
    """
    from nrstream.plugin.registry import get_registry

    return get_registry().create(kind, name, **options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nrstream' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


register_on_gymnasium_import()
