"""Envs reject bad actions and bad arguments (issue 29), as Gymnasium's ``action_space.contains`` would,
but saying what is wrong: a wrong shape or range is a ``ValueError``, a float or bool a ``TypeError``
(a float would be truncated), never a torch broadcast error or a silently scored action; ``make`` refuses
bad arguments at once, not at ``reset()``. A refused action does not advance the stream.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

import nrstream  # noqa: F401  (registers the ids)


@pytest.fixture(scope="module")
def vec():
    envs = gymnasium.make_vec("nrstream/Toy-v0", num_envs=4, frames_per_step=3, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    return envs


@pytest.fixture(scope="module")
def single():
    env = gymnasium.make("nrstream/Toy-v1").unwrapped
    env.reset(seed=0)
    return env


@pytest.fixture(scope="module")
def single_chunked():
    env = gymnasium.make("nrstream/Toy-v1", frames_per_step=3).unwrapped
    env.reset(seed=0)
    return env


VECTOR_BAD = {
    "one_per_lane": (torch.zeros(4, dtype=torch.long), ValueError, "shape (4, 3)"),
    "scalar_broadcast": (torch.tensor(1), ValueError, "got shape ()"),
    "python_int": (1, ValueError, "got shape ()"),
    "too_few_lanes": (torch.zeros(3, 3, dtype=torch.long), ValueError, "got shape (3, 3)"),
    "transposed": (torch.zeros(3, 4, dtype=torch.long), ValueError, "got shape (3, 4)"),
    "extra_axis": (torch.zeros(4, 3, 2, dtype=torch.long), ValueError, "got shape (4, 3, 2)"),
    "float_tensor": (torch.full((4, 3), 1.7), TypeError, "dtype torch.float32"),
    "float_numpy": (np.full((4, 3), 2.0), TypeError, "dtype torch.float64"),
    "bool_tensor": (torch.ones(4, 3, dtype=torch.bool), TypeError, "dtype torch.bool"),
    "class_999": (torch.full((4, 3), 999), ValueError, "in [0, 4), got 999"),
    "class_minus_5": (torch.full((4, 3), -5), ValueError, "in [0, 4), got -5"),
    "one_bad_frame": (torch.tensor([[0, 1, 2]] * 3 + [[0, 4, 1]]), ValueError, "got 4"),
    "list_of_floats": ([[0.0, 1.0, 2.0]] * 4, TypeError, "dtype torch.float"),
    "string": ("1", TypeError, "integer class indices"),
}


@pytest.mark.parametrize("case", sorted(VECTOR_BAD))
def test_vector_env_refuses_a_bad_action(vec, case):
    actions, error, words = VECTOR_BAD[case]
    before = vec.unwrapped._chunk
    with pytest.raises(error, match=r"StreamVectorEnv\.step: actions must") as info:
        vec.step(actions)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert vec.unwrapped._chunk is before  # the stream did not move


@pytest.mark.parametrize(
    "actions",
    [
        torch.zeros(4, 3, dtype=torch.long),
        np.zeros((4, 3), dtype=np.int32),
        [[0, 1, 2]] * 4,
        torch.zeros(4, 3, 1).long(),
    ],
    ids=["long", "int32_numpy", "list", "trailing_1"],
)
def test_vector_env_takes_good_actions(vec, actions):
    obs, reward, *_ = vec.step(actions)
    assert obs.shape == (4, 3, 8) and reward.shape == (4,)


SINGLE_BAD = {
    "float": (2.0, TypeError, "got float 2.0"),
    "numpy_float": (np.float32(1.0), TypeError, "dtype torch.float32"),
    "bool": (True, TypeError, "got bool True"),
    "class_999": (999, ValueError, "in [0, 4), got 999"),
    "class_minus_5": (-5, ValueError, "in [0, 4), got -5"),
    "two_actions": (np.array([1, 2]), ValueError, "got shape (2,)"),
    "none": (None, TypeError, "integer class indices"),
}


@pytest.mark.parametrize("case", sorted(SINGLE_BAD))
def test_single_env_refuses_a_bad_action(single, case):
    action, error, words = SINGLE_BAD[case]
    with pytest.raises(error, match=r"StreamEnv\.step: actions must") as info:
        single.step(action)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("action", "error", "words"),
    [
        (1, ValueError, "shape (3,)"),
        (np.array([0, 1]), ValueError, "got shape (2,)"),
        (np.array([0.0, 1.0, 2.0]), TypeError, "float64"),
        (np.array([0, 1, 4]), ValueError, "got 4"),
    ],
    ids=["scalar_broadcast", "too_short", "floats", "out_of_range"],
)
def test_chunked_single_env_refuses_a_bad_action(single_chunked, action, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        single_chunked.step(action)


def test_single_env_takes_good_actions(single):
    for action in (0, np.int64(3), np.array(2), np.array([1]), torch.tensor(1)):
        single.step(action)


# ---------------------------------------------------------------- make-time arguments


MAKE_BAD = {
    "split_typo": (dict(split="tset"), ValueError, "split must be one of train, validation, test, got 'tset'"),
    "split_none": (dict(split=None), ValueError, "split must be one of"),
    "gap_min_above_max": (dict(gap_min=9, gap_max=3), ValueError, "gap"),
    "negative_gap": (dict(gap_min=-1), ValueError, "gap_min"),
    "frames_per_step_0": (dict(frames_per_step=0), ValueError, "frames_per_step must be >= 1"),
    "unknown_noise": (dict(noise="pink"), ValueError, "noise"),
    "stream_not_a_mapping": (dict(stream=[1, 2]), ValueError, "stream"),
}


@pytest.mark.parametrize("case", sorted(MAKE_BAD))
@pytest.mark.parametrize("kind", ["single", "vector"])
def test_make_refuses_bad_arguments_at_once(case, kind):
    kwargs, error, words = MAKE_BAD[case]
    with pytest.raises(error, match=words.replace("(", r"\(")):
        if kind == "single":
            gymnasium.make("nrstream/Toy-v1", **kwargs)
        else:
            gymnasium.make_vec("nrstream/Toy-v1", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)


def test_split_typo_suggests_the_right_name():
    with pytest.raises(ValueError, match="did you mean 'test'"):
        gymnasium.make("nrstream/Toy-v1", split="tset")


@pytest.mark.parametrize("num_envs", [0, -1, 2.5, True, "4"])
def test_make_vec_refuses_a_bad_num_envs(num_envs):
    with pytest.raises(ValueError, match=f"num_envs must be an int >= 1, got {num_envs!r}"):
        gymnasium.make_vec("nrstream/Toy-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")


@pytest.mark.parametrize("steps", [0, -3, 1.5])
def test_make_vec_refuses_a_bad_step_limit(steps):
    with pytest.raises(ValueError, match="max_episode_steps must be an int >= 1 or None"):
        gymnasium.make_vec(
            "nrstream/Toy-v1", num_envs=2, max_episode_steps=steps, vectorization_mode="vector_entry_point"
        )
