"""``StreamEnv``: one lane of an nrstream stream as a plain ``gymnasium.Env``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from nrstream.data.datasets import load_dataset, make_stream
from nrstream.envs.checks import check_actions, check_split
from nrstream.envs.reader import ReadAhead
from nrstream.stream.bank import Dataset
from nrstream.stream.settings import SettingError, StreamSettings
from nrstream.stream.stream import Chunk

__all__ = ["StreamEnv", "chunk_info", "lane_spaces", "check_render_mode", "RenderModeError"]


def env_settings(stream: StreamSettings | Mapping[str, Any] | None, **flat: Any) -> StreamSettings:
    """The env's stream settings: a :class:`StreamSettings` whole; else the flat keywords that were
    given (the id's defaults among them), with a mapping's fields on top."""
    if isinstance(stream, StreamSettings):
        return stream
    base = StreamSettings.coerce({k: v for k, v in flat.items() if v is not None})
    if stream is None:
        return base
    if not isinstance(stream, Mapping):
        raise SettingError("stream", f"expected StreamSettings or a mapping of its fields, got {type(stream).__name__}")
    return StreamSettings.coerce(base, **stream)


class RenderModeError(TypeError, ValueError):
    """A ``render_mode`` the envs do not have (they have none).

    A ``TypeError`` as for an env whose constructor takes no ``render_mode``: that is the
    handshake Stable-Baselines3's ``make_vec_env`` uses (it asks for ``rgb_array`` and, on a
    ``TypeError``, makes the env without it). Also a ``ValueError`` (what it was before).
    """


def check_render_mode(render_mode: str | None) -> None:
    """The envs draw nothing: ``render_mode=None`` is accepted, anything else is a clear error."""
    if render_mode is not None:
        raise RenderModeError(
            f"nrstream envs do not render (metadata render_modes is []), got render_mode={render_mode!r}: "
            "leave render_mode out; plot the observations or info['label'] yourself"
        )


def lane_spaces(
    source: str, source_options: dict[str, Any] | None, frames_per_step: int, squeeze: bool = False
) -> tuple[Dataset, spaces.Box, spaces.MultiDiscrete | spaces.Discrete]:
    """The data set and one lane's observation and action spaces (shared by both envs).

    ``Box((frames_per_step, F))`` and ``MultiDiscrete([C] * frames_per_step)``; with
    ``squeeze`` and one frame per step, ``Box((F,))`` and ``Discrete(C)``.
    """
    if frames_per_step < 1:
        raise ValueError(f"frames_per_step must be >= 1, got {frames_per_step!r}")
    dataset = load_dataset(source, **(source_options or {}))
    features, classes = dataset.feature_size, dataset.num_classes
    if squeeze and frames_per_step == 1:
        return dataset, spaces.Box(-np.inf, np.inf, (features,), np.float32), spaces.Discrete(classes)
    observation = spaces.Box(-np.inf, np.inf, (frames_per_step, features), np.float32)
    action = spaces.MultiDiscrete(np.full(frames_per_step, classes, dtype=np.int64))
    return dataset, observation, action


def chunk_info(chunk: Chunk, phase: bool = False) -> dict[str, torch.Tensor]:
    """What ``info`` carries about the frames of an observation (``phase``: also the schedule phase)."""
    info = {
        "label": chunk.label,
        "mask": chunk.mask,
        "start": chunk.start,
        "end": chunk.end,
        "sample_index": chunk.sample_index,
    }
    if phase:
        info["phase"] = chunk.phase
    return info


class StreamEnv(gym.Env):
    """An endless stream of labelled samples separated by noise, to classify frame by frame.

    ## Description
    Samples of a data source (spoken keywords, Fashion-MNIST rows, ...) follow each other
    without end, each preceded by a noise gap of random length. The agent predicts a class
    for every frame; only the prediction at a sample's last frame (its *decision frame*)
    is scored. Nothing tells the agent where a sample starts: a recurrent agent must
    forget stale information by itself ("Never Reset Again").

    ## Observation Space
    ``Box(-inf, inf, (frames_per_step, F), float32)``: the next ``frames_per_step``
    feature frames (``F`` set by the data source: 28 pixel values for Fashion-MNIST rows,
    40 log-mel bands for speech, ...). With ``squeeze=True`` (the ``-v1`` ids) and one
    frame per step: ``Box(-inf, inf, (F,), float32)``, the next frame.

    ## Action Space
    ``MultiDiscrete([C] * frames_per_step)``: the predicted class for each frame of the
    previous observation (``C`` classes of the data source). With ``squeeze=True`` and one
    frame per step: ``Discrete(C)``.

    ## Rewards
    ``1`` for each correct prediction at a decision frame of the previous observation,
    ``0`` otherwise (noise frames and non-final sample frames never score).

    ## Starting State
    ``reset(seed=...)`` starts a new stream: a pure function of the seed.

    ## Episode End
    Never terminates. Truncation only under a step limit the user asks for
    (``gymnasium.make(..., max_episode_steps=N)``).

    ## Info
    For the frames of the returned observation, numpy arrays of shape
    ``(frames_per_step,)`` (shape ``()`` when the spaces are squeezed, so that Gymnasium's
    ``SyncVectorEnv``/``AsyncVectorEnv`` stack them into ``bool``/``int64`` arrays): ``label``
    (class, ``-1`` on noise), ``mask`` (sample frame), ``start`` (first frame of a
    sample), ``end`` (decision frame), ``sample_index`` (samples started so far).
    ``label`` is for scoring and analysis: an honest agent does not read it. With
    ``info_phase=True`` also ``phase``: the phase of a non-stationary stream's schedule
    (``stream={"schedule": [...]}``, :mod:`nrstream.stream.schedule`); left out by default, so
    that a continual learner is task-free.
    :meth:`nrstream.stream.stream.Chunk.from_info` turns observation and info back into a chunk.

    ## Arguments
    ``source`` (data-source plugin name), ``source_options`` (its config), ``split``
    (``train``/``validation``/``test``), ``stream`` (the stream's layout: a
    :class:`~nrstream.stream.settings.StreamSettings`, taken whole, or a mapping of some of its
    fields, e.g. ``stream={"background": "recorded"}`` for an acoustic scene, applied on top of
    the flat keywords and the id's defaults), the flat keywords ``gap_min``/``gap_max`` (noise
    frames between samples), ``noise`` (``gaussian``/``silence``/``recorded``) and
    ``noise_scale`` (kept from v0: the same as those fields of ``stream``; unset ones keep
    StreamSettings' defaults), ``frames_per_step``, ``squeeze`` (drop the frame axis when
    ``frames_per_step`` is 1), ``info_phase`` (put the schedule phase in ``info``),
    ``render_mode`` (only ``None``: nothing is drawn; any other
    value raises :class:`RenderModeError`, a ``TypeError``, as an env without the argument
    would: Stable-Baselines3's ``make_vec_env`` then makes the env without it). Invalid
    settings raise ``ValueError`` at ``make`` time, naming the setting.

    ## Version History
    * v1: with ``frames_per_step=1`` (the default) the conventional single-frame spaces
      ``Box((F,))`` and ``Discrete(C)`` and scalar ``info`` values (``squeeze=True``), as
      TorchRL and Stable-Baselines3 expect; unchanged for more frames per step.
    * v0: initial version: ``Box((frames_per_step, F))`` and
      ``MultiDiscrete([C] * frames_per_step)`` for every ``frames_per_step``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        source: str = "toy",
        source_options: dict[str, Any] | None = None,
        split: str = "train",
        gap_min: int | None = None,
        gap_max: int | None = None,
        noise: str | None = None,
        noise_scale: float | None = None,
        stream: StreamSettings | Mapping[str, Any] | None = None,
        frames_per_step: int = 1,
        squeeze: bool = False,
        render_mode: str | None = None,
        info_phase: bool = False,
    ) -> None:
        check_render_mode(render_mode)
        self.info_phase = bool(info_phase)
        self.render_mode = render_mode
        self.dataset, self.observation_space, self.action_space = lane_spaces(
            source, source_options, frames_per_step, squeeze
        )
        self.split = check_split(self.dataset, split)
        self.settings = env_settings(stream, gap_min=gap_min, gap_max=gap_max, noise=noise, noise_scale=noise_scale)
        self.frames_per_step = frames_per_step
        self.squeezed = isinstance(self.action_space, spaces.Discrete)
        self._reader: ReadAhead | None = None
        self._chunk: Chunk | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        stream_seed = int(self.np_random.integers(2**31))
        stream = make_stream(self.dataset, self.split, self.settings, num_lanes=1, seed=stream_seed)
        self._reader = ReadAhead(stream)
        self._chunk = self._reader.take(self.frames_per_step)
        return self._observation()

    def step(self, action):
        if self._chunk is None:
            raise RuntimeError("call reset() before step()")
        shape = tuple(self.action_space.shape)
        predicted = check_actions(action, shape, self.dataset.num_classes, "cpu", "StreamEnv.step").reshape(-1)
        scored = self._chunk
        reward = float(((predicted == scored.label[0]) & scored.end[0]).sum())
        self._chunk = self._reader.take(self.frames_per_step)
        obs, info = self._observation()
        return obs, reward, False, False, info

    def _observation(self):
        chunk = self._chunk[0, 0] if self.squeezed else self._chunk[0]
        # arrays, shape () when squeezed: a numpy.bool_ scalar would become an object array in SyncVectorEnv
        info = {key: value.numpy().copy() for key, value in chunk_info(chunk, self.info_phase).items()}
        return chunk.x.numpy().astype(np.float32, copy=True), info
