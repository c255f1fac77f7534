"""nrstream's Gymnasium ids. Data only: importing this module imports neither torch nor gymnasium.

The ids are registered

- when ``gymnasium`` is first imported, by the ``nrstream-gymnasium.pth`` import hook the
  package installs (see ``_nrstream_gymnasium.py``): ``gymnasium.make("nrstream/Toy-v1")``
  works without ``import nrstream``;
- on ``import nrstream`` (at once if gymnasium is already imported, else when it is), which
  also covers Gymnasium's own ``gymnasium.make("nrstream:nrstream/Toy-v1")`` form and
  interpreters started without ``site`` (``python -S``);
- by calling :func:`register_envs` yourself (safe to repeat).

Versions (Gymnasium style: the version changes when behaviour does):

- ``-v0``: observation ``Box((frames_per_step, F))``, action
  ``MultiDiscrete([C] * frames_per_step)``, even for one frame per step.
- ``-v1``: the same for ``frames_per_step > 1``; for ``frames_per_step=1`` (the default)
  the conventional single-frame spaces ``Box((F,))`` and ``Discrete(C)``, and ``info``
  values of shape ``()``: what TorchRL's ``GymEnv`` and Stable-Baselines3 expect.
"""

from __future__ import annotations

import sys

__all__ = ["ENVS", "SOURCES", "VERSIONS", "register_envs", "register_on_gymnasium_import"]

#: environment name -> default kwargs (the data source and its options)
SOURCES: dict[str, dict] = {
    "Toy": {"source": "toy"},
    "FashionMNIST": {"source": "fashion_mnist"},
    # speech gaps are cut from the data set's own background-noise recordings
    "SpeechCommands": {"source": "speech_commands", "noise": "recorded"},
    "SynthSpeech": {"source": "synth_speech", "noise": "recorded"},
    # real spoken digits; gaps cut from its background recordings (synthetic by default, or data.options.noise_dir)
    "FSDD": {"source": "fsdd", "noise": "recorded"},
}

#: version -> the kwargs that version adds (see the module docstring)
VERSIONS: dict[int, dict] = {0: {}, 1: {"squeeze": True}}

#: id -> default kwargs
ENVS: dict[str, dict] = {
    f"nrstream/{name}-v{version}": {**kwargs, **extra}
    for name, kwargs in SOURCES.items()
    for version, extra in VERSIONS.items()
}


def register_envs() -> None:
    """Register every id in :data:`ENVS` with Gymnasium (imports gymnasium); safe to call again.

    Entry points are strings: Gymnasium imports the env classes (and torch) only on ``make``.
    """
    import gymnasium

    for env_id, kwargs in ENVS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="nrstream.envs.single:StreamEnv",
            vector_entry_point="nrstream.envs.vector:StreamVectorEnv",
            kwargs=dict(kwargs),
            disable_env_checker=False,
        )


def register_on_gymnasium_import() -> None:
    """Register now if gymnasium is imported, else as soon as it is (what ``import nrstream`` does).

    Does not import gymnasium itself, so ``import nrstream`` stays cheap.
    """
    gymnasium = sys.modules.get("gymnasium")
    if gymnasium is not None and hasattr(gymnasium, "register"):
        register_envs()
        return
    try:
        import _nrstream_gymnasium
    except ImportError:  # the hook module is not beside the package (an unusual install)
        register_envs()
        return
    _nrstream_gymnasium.install()
