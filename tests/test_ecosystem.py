"""nrstream beside the tools researchers use: Gymnasium's registry in every import order,
TorchRL, Stable-Baselines3, Gymnasium's vector wrappers, and a loss in a user's own loop.

Registration tests each start a fresh interpreter: what is checked is what happens at
import time. TorchRL and Stable-Baselines3 come with the ``compat`` extra (installed by
``scripts/dev.sh``); without them those tests skip and say so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from nrstream import Chunk
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.envs.registration import ENVS

ROOT = Path(__file__).resolve().parents[1]
IDS = sorted(ENVS)
PRINT_IDS = "print(sorted(k for k in gymnasium.registry if k.startswith('nrstream/')))\n"


def fresh(code: str, *flags: str, cwd: Path, no_site: bool = False) -> str:
    """Run ``code`` in a new interpreter of this venv (``-S``: without any ``.pth`` hook); its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    args = [sys.executable, *flags]
    if no_site:  # no site, no .pth: nrstream and its dependencies only through the path
        env["PYTHONPATH"] = os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT), str(ROOT / "plugins")])
        args.append("-S")
    proc = subprocess.run([*args, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def hook_installed() -> bool:
    return (Path(sysconfig.get_paths()["purelib"]) / "nrstream-gymnasium.pth").is_file()


needs_hook = pytest.mark.skipif(not hook_installed(), reason="nrstream-gymnasium.pth is not installed in this venv")


# --- registration -------------------------------------------------------------------------


@needs_hook
def test_start_up_only_adds_the_hook_and_import_gymnasium_imports_no_torch(tmp_path):
    code = (
        "import sys\n"
        "before = sorted(m for m in ('_nrstream_gymnasium', 'nrstream', 'gymnasium', 'torch', 'importlib.abc')"
        " if m in sys.modules)\n"
        "import gymnasium\n"
        "print(before, 'torch' in sys.modules)\n" + PRINT_IDS
    )
    before, ids = fresh(code, cwd=tmp_path).splitlines()
    assert before == "['_nrstream_gymnasium'] False"
    assert ids == str(IDS)


@needs_hook
def test_ids_registered_after_find_spec_gymnasium(tmp_path):
    # TorchRL does `importlib.util.find_spec("gymnasium")` on import; that must not use the hook up
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('gymnasium') is not None and 'gymnasium' not in sys.modules\n"
        "assert importlib.util.find_spec('gymnasium') is not None\n"
        "import gymnasium\n" + PRINT_IDS
    )
    assert fresh(code, cwd=tmp_path).strip() == str(IDS)


@needs_hook
def test_ids_registered_after_importing_the_registration_module_first_under_W_error(tmp_path):
    code = (
        "import sys\n"
        "import nrstream.envs.registration\n"
        "assert 'gymnasium' not in sys.modules and 'torch' not in sys.modules\n"
        "import gymnasium\n" + PRINT_IDS
    )
    assert fresh(code, "-W", "error", cwd=tmp_path).strip() == str(IDS)


@needs_hook
def test_under_W_error_the_v1_ids_register_make_reset_and_step(tmp_path):
    code = (
        "import gymnasium\n"
        "env = gymnasium.make('nrstream/Toy-v1')\n"
        "obs, info = env.reset(seed=0)\n"
        "obs, reward, terminated, truncated, info = env.step(0)\n"
        "print(obs.shape, terminated, truncated)\n" + PRINT_IDS
    )
    shapes, ids = fresh(code, "-W", "error", cwd=tmp_path).splitlines()
    assert shapes == "(8,) False False" and ids == str(IDS)


def test_import_nrstream_registers_without_the_hook(tmp_path):
    gymnasium_first = "import gymnasium\n" + PRINT_IDS + "import nrstream\n" + PRINT_IDS
    assert fresh(gymnasium_first, no_site=True, cwd=tmp_path).splitlines() == ["[]", str(IDS)]
    nrstream_first = (
        "import sys, nrstream\n"
        "print('gymnasium' in sys.modules, 'torch' in sys.modules)\n"  # registration is data: cheap
        "import gymnasium\n" + PRINT_IDS
    )
    assert fresh(nrstream_first, "-W", "error", no_site=True, cwd=tmp_path).splitlines() == ["False False", str(IDS)]


def test_gymnasium_module_colon_id_form_registers(tmp_path):
    code = (
        "import gymnasium\n"
        "try:\n"
        "    gymnasium.make('nrstream/Toy-v1')\n"
        "except gymnasium.error.NamespaceNotFound:\n"
        "    print('not yet')\n"
        "env = gymnasium.make('nrstream:nrstream/Toy-v1')\n"
        "print(env.spec.id, env.observation_space.shape)\n"
    )
    assert fresh(code, no_site=True, cwd=tmp_path).splitlines() == ["not yet", "nrstream/Toy-v1 (8,)"]


def test_startup_benchmark_runs_and_sees_only_the_hook_module(tmp_path):
    out = tmp_path / "startup.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--runs", "1", "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == "startup" and payload["ids_registered_by_hook"] is True
    assert payload["modules_added_at_start_up"]["hook"] == ["_nrstream_gymnasium"]
    assert "importlib.abc" in payload["modules_added_at_start_up"]["importlib_abc"]
    assert set(payload["median_ms"]) == {"pass", "import_gymnasium"}
    assert all(v > 0 for case in payload["median_ms"].values() for v in case.values())


# --- TorchRL and Stable-Baselines3 ---------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("torchrl") is None, reason="torchrl not installed (pip install '.[compat]')"
)
def test_torchrl_gymenv_passes_check_env_specs_and_rolls_out(tmp_path):
    # a fresh interpreter where TorchRL is imported before gymnasium, as a TorchRL user does
    code = (
        "import json, torch\n"
        "from torchrl.envs import GymEnv\n"
        "from torchrl.envs.utils import check_env_specs\n"
        "env = GymEnv('nrstream/Toy-v1')\n"
        "check_env_specs(env)\n"
        "env.set_seed(0)\n"
        "td = env.rollout(50)\n"
        "rewards = sorted(set(td['next', 'reward'].flatten().tolist()))\n"
        "print(json.dumps({'obs': list(td['next', 'observation'].shape), 'action': list(td['action'].shape),\n"
        "    'rewards': rewards, 'done': bool(td['next', 'done'].any())}))\n"
    )
    out = json.loads(fresh(code, cwd=tmp_path).strip().splitlines()[-1])
    assert out["obs"] == [50, 8] and out["action"] == [50, 4]  # one-hot Discrete(4)
    assert set(out["rewards"]) <= {0.0, 1.0} and out["done"] is False


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gymnasium: "nrstream/Toy-v0 is out of date"
def test_sb3_check_env_v1_is_warning_free_and_v0_is_not():
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install '.[compat]')")
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make("nrstream/Toy-v1"))
    with pytest.warns(UserWarning):  # what -v1 fixes: the (1, F) / MultiDiscrete([C]) spaces of -v0
        check_env(gymnasium.make("nrstream/Toy-v0"))


def test_sb3_ppo_trains_a_few_hundred_steps(one_torch_thread):
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install '.[compat]')")
    from stable_baselines3 import PPO

    env = gymnasium.make("nrstream/Toy-v1")
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    buffer = model.rollout_buffer  # the last rollout, flattened to (steps x envs, ...) for training
    assert buffer.observations.shape == (128, 8) and buffer.actions.shape == (128, 1)
    assert set(np.unique(buffer.rewards)) <= {0.0, 1.0} and not buffer.episode_starts.any()


def test_sb3_make_vec_env_two_envs_trains_ppo(one_torch_thread):
    # issue 26 (1): make_vec_env asks for render_mode="rgb_array" and retries without it on TypeError only
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install '.[compat]')")
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gymnasium: "rgb_array not in the possible render_modes"
        envs = make_vec_env("nrstream/Toy-v1", n_envs=2, seed=0)
    assert envs.num_envs == 2 and envs.reset().shape == (2, 8)
    model = PPO("MlpPolicy", envs, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256 and model.rollout_buffer.observations.shape == (128, 8)  # 64 steps x 2 envs
    # rendering itself is still refused, in one line naming the argument
    with pytest.raises(TypeError, match="nrstream envs do not render .* got render_mode='rgb_array'"):
        gymnasium.make_vec("nrstream/Toy-v1", num_envs=2, render_mode="rgb_array")


def test_torchrl_gymwrapper_over_the_torch_vector_env_rolls_out(one_torch_thread):
    # issue 26 (2): GymWrapper needs an autoreset_mode attribute, SAME_STEP or DISABLED
    pytest.importorskip("torchrl", reason="torchrl not installed (pip install '.[compat]')")
    from gymnasium.vector import AutoresetMode
    from torchrl.envs import GymWrapper

    vec = gymnasium.make_vec("nrstream/Toy-v1", num_envs=4)
    assert vec.autoreset_mode is AutoresetMode.DISABLED and vec.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    env = GymWrapper(vec)
    env.set_seed(0)
    td = env.rollout(20)
    assert td["next", "observation"].shape == (4, 20, 8) and td["action"].shape == (4, 20, 4)  # one-hot Discrete(4)
    assert set(td["next", "reward"].flatten().tolist()) <= {0.0, 1.0} and not td["next", "done"].any()
    # with a step limit: truncated on every 5th step, on all lanes; TorchRL resets them (reset_mask) and
    # the rollout carries on, in either mode TorchRL takes
    for mode in ("Disabled", "SameStep"):
        limited = GymWrapper(
            gymnasium.make_vec("nrstream/Toy-v1", num_envs=4, max_episode_steps=5, autoreset_mode=mode)
        )
        td = limited.rollout(12, break_when_any_done=False)
        truncated = td["next", "truncated"].squeeze(-1)  # [4, 12]
        assert truncated.all(0).nonzero().flatten().tolist() == [4, 9], mode
        assert torch.equal(truncated.all(0), truncated.any(0)), mode


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sync_and_async_info_arrays_have_numpy_dtypes_and_make_chunks(mode):
    # issue 26 (3): the single env's info values are arrays of shape (), not numpy.bool_ (-> object arrays)
    envs = gymnasium.make_vec("nrstream/Toy-v1", num_envs=2, vectorization_mode=mode)
    try:
        obs, info = envs.reset(seed=0)
        obs, _, _, _, info = envs.step(np.zeros(2, dtype=np.int64))
    finally:
        envs.close()
    dtypes = {key: info[key].dtype for key in ("label", "mask", "start", "end", "sample_index")}
    assert dtypes == {"label": np.int64, "mask": np.bool_, "start": np.bool_, "end": np.bool_, "sample_index": np.int64}
    assert all(info[key].shape == (2,) for key in dtypes)
    chunk = Chunk.from_info(obs, info)
    assert chunk.x.shape == (2, 1, 8) and chunk.mask.dtype == torch.bool and chunk.label.dtype == torch.int64
    assert torch.equal(chunk.mask, chunk.label >= 0)


# --- Gymnasium's vector wrappers ------------------------------------------------------------


def test_record_episode_statistics_needs_numpy_as_documented():
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    envs = RecordEpisodeStatistics(
        gymnasium.make_vec("nrstream/Toy-v1", num_envs=3, max_episode_steps=3, autoreset_mode="SameStep")
    )
    envs.reset(seed=0)
    with pytest.raises(TypeError):  # numpy statistics += torch rewards (see StreamVectorEnv's docstring)
        envs.step(torch.zeros(3, dtype=torch.long))
    doc = " ".join(type(envs.unwrapped).__doc__.split())
    assert "RecordEpisodeStatistics" in doc and "ArrayConversion(envs, env_xp=torch, target_xp=numpy)" in doc


def test_function_wrappers_work_on_the_tensors_as_documented():
    from gymnasium.wrappers.vector import TransformAction, TransformObservation, TransformReward

    base = gymnasium.make_vec("nrstream/Toy-v1", num_envs=3)
    plain_obs, _ = base.reset(seed=2)
    plain = base.step(torch.zeros(3, dtype=torch.long))
    envs = TransformReward(
        TransformObservation(gymnasium.make_vec("nrstream/Toy-v1", num_envs=3), lambda o: 2 * o), lambda r: r + 10
    )
    envs = TransformAction(envs, lambda a: a - 1)  # the user's actions are classes + 1
    obs, _ = envs.reset(seed=2)
    step = envs.step(torch.ones(3, dtype=torch.long))
    assert torch.equal(obs, 2 * plain_obs) and torch.equal(step[0], 2 * plain[0])
    assert torch.equal(step[1], plain[1] + 10)


def test_record_episode_statistics_through_array_conversion():
    pytest.importorskip("array_api_compat", reason="array-api-compat not installed (pip install '.[compat]')")
    from gymnasium.wrappers.vector import ArrayConversion, RecordEpisodeStatistics

    base = gymnasium.make_vec(
        "nrstream/Toy-v1", num_envs=3, max_episode_steps=3, frames_per_step=1, autoreset_mode="SameStep"
    )
    envs = RecordEpisodeStatistics(ArrayConversion(base, env_xp=torch, target_xp=np))
    obs, info = envs.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.shape == (3, 8)
    returns, episodes = np.zeros(3), []
    for _ in range(9):  # SAME_STEP autoreset: truncations at 2, 5, 8, no step lost
        perfect = np.where(info["label"] >= 0, info["label"], 0)
        obs, reward, terminated, truncated, info = envs.step(perfect)
        assert isinstance(reward, np.ndarray)
        returns += reward
        if truncated.any():
            episodes.append((info["episode"]["r"].copy(), info["episode"]["l"].copy(), returns.copy()))
            returns[:] = 0
    assert len(episodes) == 3
    for r, length, expected in episodes:
        assert np.array_equal(length, [3, 3, 3]) and np.array_equal(r, expected)


# --- losses from user code ------------------------------------------------------------------


def test_chunk_from_info_is_the_streams_chunk():
    envs = gymnasium.make_vec("nrstream/Toy-v1", num_envs=3, frames_per_step=6)
    obs, info = envs.reset(seed=4)
    chunks = [Chunk.from_info(obs, info)]
    for _ in range(4):
        obs, *_, info = envs.step(torch.zeros(3, 6, dtype=torch.long))
        chunks.append(Chunk.from_info(obs, info))
    got = Chunk.cat(chunks)
    stream_seed = int(np.random.default_rng(4).integers(2**31))
    expected = make_stream(load_dataset("toy"), "train", num_lanes=3, seed=stream_seed, gap_min=5, gap_max=30)
    expected = expected.next_chunk(30)
    for name in ("x", "label", "mask", "start", "end", "sample_index"):
        assert torch.equal(getattr(got, name), getattr(expected, name)), name
    assert (got.sample_id == -1).all()  # info carries no sample_id
    # one frame per step (-v1): [B, F] and [B] get a frame axis
    single = gymnasium.make_vec("nrstream/Toy-v1", num_envs=3)
    obs, info = single.reset(seed=4)
    chunk = Chunk.from_info(obs, info)
    assert chunk.x.shape == (3, 1, 8) and chunk.label.shape == chunk.end.shape == (3, 1)
    assert torch.equal(chunk.x[:, 0], obs)


def test_nrstream_create_builds_a_loss_that_takes_the_envs_chunk():
    import nrstream

    loss_fn = nrstream.create("loss", "ce_kl", kl_weight=0.5)
    assert loss_fn.kl_weight == 0.5 and loss_fn.protocol == "continual"
    envs = gymnasium.make_vec("nrstream/Toy-v1", num_envs=2, frames_per_step=40)
    obs, info = envs.reset(seed=0)
    uniform = torch.zeros(2, 40, 4)  # uniform predictions: CE = log 4 on sample frames, KL = 0 on noise
    loss = loss_fn(uniform, Chunk.from_info(obs, info))
    assert torch.isclose(loss, torch.tensor(np.log(4.0), dtype=loss.dtype))
    with pytest.raises(nrstream.PluginError, match="ce_kll"):
        nrstream.create("loss", "ce_kll")


def readme_loop() -> str:
    """The own-loop tutorial's first block (it moved from README to the docs site, issue 25)."""
    readme = (ROOT / "docs" / "tutorials" / "own-loop.md").read_text()
    section = readme[readme.index("## Your own PyTorch loop") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_own_loop_snippet_trains_a_gru_on_the_vector_env(one_torch_thread, capsys):
    code = readme_loop()
    assert len(code.strip().splitlines()) <= 25
    namespace: dict = {}
    exec(compile(code, "docs/tutorials/own-loop.md (own training loop)", "exec"), namespace)
    accuracy = namespace["correct"] / namespace["decisions"]
    assert namespace["decisions"] > 500 and accuracy > 0.9  # chance is 0.25 on the toy task
    assert f"{accuracy:.3f}" in capsys.readouterr().out


def test_create_with_an_unknown_kind_is_one_line_with_did_you_mean():
    # issue 26 (8): was a bare KeyError
    import nrstream

    with pytest.raises(nrstream.PluginError) as raised:
        nrstream.create("architectures", "gru")
    assert str(raised.value) == "unknown component kind 'architectures'; did you mean 'architecture'?"
    with pytest.raises(nrstream.PluginError, match="unknown component kind 'widget'; valid kinds: architecture, loss"):
        nrstream.get_registry().names("widget")


def test_conformance_checks_take_registry_entries():
    # issue 26 (8): check_loss(get_registry().get(...)) without .factory
    from nrstream import get_registry
    from nrstream.testing import check_architecture, check_loss, check_metric

    registry = get_registry()
    check_loss(registry.get("loss", "ce_kl"))
    check_metric(registry.get("metric", "accuracy"))
    check_architecture(registry.get("architecture", "gru"), options={"hidden_size": 8})
    check_loss(registry.get("loss", "ce_kl"), options={"kl_weight": 0.5})  # options go to its factory


def test_agent_acts_on_the_single_envs_numpy_observations(one_torch_thread):
    # issue 26 (8): the agent takes (F,) and (T, F) numpy frames and answers in the action space's shape
    import nrstream
    from nrstream import Agent

    torch.manual_seed(0)
    model = nrstream.create("architecture", "gru", input_size=8, num_classes=4, hidden_size=16)
    env = gymnasium.make("nrstream/Toy-v1")
    obs, info = env.reset(seed=0)
    single, batched = Agent(model), Agent(model)
    frames = []
    for _ in range(6):
        action = single.act(obs, info["start"])
        assert isinstance(action, np.ndarray) and action.shape == () and action.dtype == np.int64
        assert env.action_space.contains(action)
        frames.append(obs)
        obs, _, _, _, info = env.step(action)
    # the same frames as one [1, T, F] tensor give the same actions
    expected = batched.act(torch.as_tensor(np.stack(frames))[None])
    assert expected.shape == (1, 6)
    wide = gymnasium.make("nrstream/Toy-v0", frames_per_step=5, disable_env_checker=True)
    obs, _ = wide.reset(seed=0)
    action = Agent(model).act(obs)
    assert action.shape == (5,) and wide.action_space.contains(action)
    with pytest.raises(ValueError, match=r"must be \(F,\) or \(T, F\)"):
        Agent(model).act(np.zeros((1, 2, 8), dtype=np.float32))
