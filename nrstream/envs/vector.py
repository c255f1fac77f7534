"""``StreamVectorEnv``: ``B`` lanes of one stream as a ``gymnasium.vector.VectorEnv`` of torch tensors."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from nrstream.datasets import make_stream
from nrstream.envs.reader import ReadAhead
from nrstream.envs.single import chunk_info, lane_spaces
from nrstream.stream import Chunk

__all__ = ["StreamVectorEnv"]


class StreamVectorEnv(VectorEnv):
    """The batched version of :class:`~nrstream.envs.single.StreamEnv`, kept on one device.

    All lanes are read from one :class:`~nrstream.stream.Stream` in lockstep, so a step
    is a handful of tensor ops whatever ``num_envs`` is, and nothing leaves the device.
    Observations, rewards, flags and info are torch tensors; spaces are the batched
    numpy spaces of the single env, for reference.

    Example::

        >>> envs = gymnasium.make_vec("nrstream/Toy-v0", num_envs=256, frames_per_step=100,
        ...                           vectorization_mode="vector_entry_point")
        >>> obs, info = envs.reset(seed=0)
        >>> obs.shape, info["end"].shape          # (256, 100, F), (256, 100)
        >>> obs, reward, terminated, truncated, info = envs.step(actions)   # actions (256, 100)
        >>> reward.shape                          # (256,)

    Args: as the single env, plus ``num_envs`` (lanes), ``device`` and
    ``max_episode_steps`` (truncate all lanes after that many steps; the stream itself
    carries on after the automatic reset).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        source: str = "toy",
        source_options: dict[str, Any] | None = None,
        split: str = "train",
        gap_min: int = 5,
        gap_max: int = 30,
        noise: str = "gaussian",
        noise_scale: float = 1.0,
        frames_per_step: int = 1,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
    ) -> None:
        self.dataset, self.single_observation_space, self.single_action_space = lane_spaces(
            source, source_options, frames_per_step
        )
        self._stream_options = dict(split=split, gap_min=gap_min, gap_max=gap_max, noise=noise, noise_scale=noise_scale)
        self.num_envs = int(num_envs)
        self.frames_per_step = int(frames_per_step)
        self.device = torch.device(device)
        self.max_episode_steps = max_episode_steps
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

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new stream (``seed``: one int for all lanes); ``seed=None`` draws one."""
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"StreamVectorEnv.reset takes one int seed for all lanes, got {seed!r}")
        super().reset(seed=seed)
        stream_seed = int(self.np_random.integers(2**31))
        self.stream = make_stream(
            self.dataset, num_lanes=self.num_envs, seed=stream_seed, device=self.device, **self._stream_options
        )
        self._reader = ReadAhead(self.stream)
        self._chunk = self._reader.take(self.frames_per_step)
        self._steps = 0
        self._needs_reset = False
        return self._chunk.x, chunk_info(self._chunk)

    def step(self, actions):
        """``actions``: predicted classes ``(num_envs, frames_per_step)`` (or ``(num_envs,)``)."""
        if self._chunk is None:
            raise RuntimeError("call reset() before step()")
        predicted = torch.as_tensor(actions, device=self.device).long().reshape(self.num_envs, -1)
        scored = self._chunk
        reward = ((predicted == scored.label) & scored.end).sum(1).float()
        if self._needs_reset:  # the step after a truncation starts a new episode, the stream goes on
            reward.zero_()
            self._steps = 0
            self._needs_reset = False
        self._chunk = self._reader.take(self.frames_per_step)
        self._steps += 1
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = terminated.clone()
        if self.max_episode_steps is not None and self._steps >= self.max_episode_steps:
            truncated.fill_(True)
            self._needs_reset = True
        return self._chunk.x, reward, terminated, truncated, chunk_info(self._chunk)
