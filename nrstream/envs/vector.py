"""``StreamVectorEnv``: ``B`` lanes of one stream as a ``gymnasium.vector.VectorEnv`` of torch tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from nrstream.data.datasets import make_stream
from nrstream.envs.checks import check_actions, check_count, check_split
from nrstream.envs.reader import ReadAhead
from nrstream.envs.single import check_render_mode, chunk_info, env_settings, lane_spaces
from nrstream.stream.settings import StreamSettings
from nrstream.stream.stream import Chunk

__all__ = ["StreamVectorEnv"]


class StreamVectorEnv(VectorEnv):
    """The batched version of :class:`~nrstream.envs.single.StreamEnv`, kept on one device.

    All lanes are read from one :class:`~nrstream.stream.stream.Stream` in lockstep, so a step
    is a handful of tensor ops whatever ``num_envs`` is, and nothing leaves the device.
    Observations, rewards, flags and info are torch tensors; spaces are the batched
    numpy spaces of the single env, for reference. ``gymnasium.make_vec`` builds this
    env by default for the nrstream ids (``vectorization_mode="sync"`` gives Gymnasium's
    ``SyncVectorEnv`` of numpy single envs instead).

    Example::

        >>> envs = gymnasium.make_vec("nrstream/Toy-v1", num_envs=256, frames_per_step=100)
        >>> obs, info = envs.reset(seed=0)
        >>> obs.shape, info["end"].shape          # (256, 100, F), (256, 100)
        >>> obs, reward, terminated, truncated, info = envs.step(actions)   # actions (256, 100)
        >>> reward.shape                          # (256,)

    With ``frames_per_step=1`` on a ``-v1`` id: observations ``(num_envs, F)``, actions
    and info values ``(num_envs,)``. ``info_phase=True`` adds ``phase`` (a scheduled stream's
    phase, :mod:`nrstream.stream.schedule`), left out by default: the learner is task-free.

    Autoreset (only with ``max_episode_steps``: the stream itself never ends). The mode is
    ``self.autoreset_mode`` and ``metadata["autoreset_mode"]``, as on Gymnasium's vector envs,
    chosen by the ``autoreset_mode`` argument (an ``AutoresetMode`` or its value):

    * ``DISABLED`` (the default: what TorchRL's ``GymWrapper`` prefers, and what Gymnasium's
      observation wrappers accept): lanes stay truncated until
      ``reset(options={"reset_mask": mask})`` (all lanes or none: they are one stream) starts
      new episodes on the stream as it is (TorchRL does this itself); a plain ``reset()``
      starts a new stream;
    * ``SAME_STEP`` (TorchRL also takes it; Gymnasium's observation wrappers refuse it): the
      step that truncates also starts the next episode; the stream goes on, so its
      observation is both the new episode's first and ``info["final_obs"]`` (with
      ``info["final_info"]`` and the masks ``info["_final_obs"]``, ``info["_final_info"]``);
    * ``NEXT_STEP`` (Gymnasium's ``SyncVectorEnv`` default, and this env's before issue 26;
      TorchRL refuses it): the step after a truncation is the reset: its action is ignored
      and earns nothing.

    Gymnasium's vector wrappers: those that only call functions you give (``TransformObservation``,
    ``TransformReward``, ``TransformAction``) work on the tensors as they are. Those that
    keep statistics in numpy (``RecordEpisodeStatistics``, ``NormalizeObservation``,
    ``NormalizeReward``) need numpy arrays: wrapped directly they fail on the first
    ``reset``/``step`` (a ``TypeError`` or ``RuntimeError`` where numpy meets torch); put
    ``gymnasium.wrappers.vector.ArrayConversion(envs, env_xp=torch, target_xp=numpy)``
    (needs ``array-api-compat``, in the ``compat`` extra) between them, at the price of
    one copy to host memory per step.

    Args: as the single env, plus ``num_envs`` (lanes), ``device`` and
    ``max_episode_steps`` (truncate all lanes after that many steps; the stream itself
    carries on after the automatic reset).

    Version History: as :class:`~nrstream.envs.single.StreamEnv` (v1: squeezed
    single-frame spaces; v0: a frame axis always).
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        source: str = "toy",
        source_options: dict[str, Any] | None = None,
        split: str = "train",
        gap_min: int | None = None,
        gap_max: int | None = None,
        noise: str | None = None,
        noise_scale: float | None = None,
        stream: StreamSettings | Mapping[str, Any] | None = None,
        frames_per_step: int = 1,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        squeeze: bool = False,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.DISABLED,
        info_phase: bool = False,
    ) -> None:
        check_render_mode(render_mode)
        self.info_phase = bool(info_phase)
        self.render_mode = render_mode
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            modes = ", ".join(repr(m.value) for m in AutoresetMode)
            raise ValueError(f"autoreset_mode must be one of {modes}, got {autoreset_mode!r}") from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.dataset, self.single_observation_space, self.single_action_space = lane_spaces(
            source, source_options, frames_per_step, squeeze
        )
        self.squeezed = isinstance(self.single_action_space, spaces.Discrete)
        self.split = check_split(self.dataset, split)
        self.settings = env_settings(stream, gap_min=gap_min, gap_max=gap_max, noise=noise, noise_scale=noise_scale)
        self.num_envs = check_count("num_envs", num_envs)
        self.frames_per_step = int(frames_per_step)
        self.device = torch.device(device)
        self.max_episode_steps = check_count("max_episode_steps", max_episode_steps, allow_none=True)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.stream = None
        self._chunk: Chunk | None = None
        self._steps = 0
        self._needs_reset = False

    def __repr__(self) -> str:
        return (
            f"StreamVectorEnv(num_envs={self.num_envs}, frames_per_step={self.frames_per_step}, stream={self.stream})"
        )

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Start a new stream for all lanes (they are one stream, drawn together).

        ``seed``: an int; or, as Gymnasium's vector envs take it, a list of ``num_envs``
        ints, which seeds the stream through ``numpy.random.SeedSequence(seeds)`` (the
        same list gives the same stream; lane ``b`` is not lane 0 of a stream seeded with
        ``seeds[b]``); ``None`` or a list of ``None``: the next stream seed from the env's
        generator (random at first, the next in the sequence after a seeded reset).
        """
        mask = (options or {}).get("reset_mask")
        if mask is not None and self._chunk is not None and seed is None:
            return self._reset_lanes(mask)
        super().reset(seed=self._one_seed(seed))
        stream_seed = int(self.np_random.integers(2**31))
        self.stream = make_stream(
            self.dataset, self.split, self.settings, num_lanes=self.num_envs, seed=stream_seed, device=self.device
        )
        self._reader = ReadAhead(self.stream)
        self._chunk = self._reader.take(self.frames_per_step)
        self._steps = 0
        self._needs_reset = False
        return self._observation()

    def _reset_lanes(self, mask) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``reset(options={"reset_mask": mask [num_envs] bool})``: new episodes, the stream goes on."""
        mask = torch.as_tensor(np.asarray(mask, dtype=bool) if not isinstance(mask, torch.Tensor) else mask)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {tuple(mask.shape)}")
        if bool(mask.any()) and not bool(mask.all()):
            raise ValueError("reset_mask must reset all lanes or none: the lanes are one stream, truncated together")
        if bool(mask.any()):
            self._steps = 0
            self._needs_reset = False
        return self._observation()

    def _one_seed(self, seed) -> int | None:
        if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
            return None if seed is None else int(seed)
        if isinstance(seed, list | tuple):
            if len(seed) != self.num_envs:
                raise ValueError(f"reset(seed=[...]) needs one seed per lane ({self.num_envs}), got {len(seed)}")
            if all(s is None for s in seed):
                return None
            if all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 0 for s in seed):
                return int(np.random.SeedSequence([int(s) for s in seed]).generate_state(1, np.uint64)[0] >> 1)
        raise TypeError(
            f"reset(seed=...) takes an int >= 0, a list of {self.num_envs} such ints, or None; got {seed!r}"
        )

    def _observation(self):
        chunk = self._chunk[:, 0] if self.squeezed else self._chunk
        return chunk.x, chunk_info(chunk, self.info_phase)

    def step(self, actions):
        """``actions``: predicted classes ``(num_envs, frames_per_step)`` (or ``(num_envs,)``)."""
        if self._chunk is None:
            raise RuntimeError("call reset() before step()")
        classes = self.dataset.num_classes
        shape = tuple(self.action_space.shape)
        predicted = check_actions(actions, shape, classes, self.device, "StreamVectorEnv.step")
        predicted = predicted.reshape(self.num_envs, -1)
        scored = self._chunk
        reward = ((predicted == scored.label) & scored.end).sum(1).float()
        if self._needs_reset:
            # NEXT_STEP autoreset: the step after a truncation is the reset (its action is
            # ignored, it earns nothing and is not counted in the new episode); the stream goes on
            reward.zero_()
            self._steps = 0
            self._needs_reset = False
        else:
            self._steps += 1
        self._chunk = self._reader.take(self.frames_per_step)
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = terminated.clone()
        obs, info = self._observation()
        if self.max_episode_steps is not None and self._steps >= self.max_episode_steps:
            truncated.fill_(True)
            if self.autoreset_mode is AutoresetMode.NEXT_STEP:
                self._needs_reset = True
            elif self.autoreset_mode is AutoresetMode.SAME_STEP:
                # the stream goes on: the next episode starts with this very observation
                self._steps = 0
                info = {**info, "final_obs": obs, "final_info": dict(info), "_final_obs": truncated.clone(),
                        "_final_info": truncated.clone()}  # fmt: skip
        return obs, reward, terminated, truncated, info
