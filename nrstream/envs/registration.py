"""Gymnasium ids for nrstream. Data only: importing this module imports no torch."""

from __future__ import annotations

import gymnasium

#: id -> default kwargs (the data source and its options)
ENVS: dict[str, dict] = {
    "nrstream/Toy-v0": {"source": "toy"},
    "nrstream/FashionMNIST-v0": {"source": "fashion_mnist"},
    # speech gaps are cut from the data set's own background-noise recordings
    "nrstream/SpeechCommands-v0": {"source": "speech_commands", "noise": "recorded"},
    "nrstream/SynthSpeech-v0": {"source": "synth_speech", "noise": "recorded"},
}


def register_envs() -> None:
    """Register every id once; safe to call again."""
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
