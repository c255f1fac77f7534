"""Early stopping (``train.patience``, ``train.min_delta``): when it stops, resume, keys, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from nrstream.errors import ConfigError
from nrstream.lab.config import TrainConfig, agent_key, load_config, parse_config
from nrstream.lab.engine import _stalled, steps_per_epoch, train_agent
from nrstream.lab.loading import load_data

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quiet(_line: str) -> None:
    pass


def history(*scores: float) -> list[dict]:
    return [{"epoch": i + 1, "val_accuracy": s} for i, s in enumerate(scores)]


@pytest.mark.parametrize(
    "scores, patience, min_delta, stalled",
    [
        ((0.5, 0.6, 0.6, 0.6), 2, 0.0, True),  # two epochs without a gain
        ((0.5, 0.6, 0.6, 0.61), 2, 0.0, False),  # the last epoch gained
        ((0.5, 0.6, 0.6, 0.61), 2, 0.02, True),  # ... but by less than min_delta
        ((0.5, 0.6, 0.59), 2, 0.0, False),  # not yet patience epochs since the best
        ((0.6, 0.5), 1, 0.0, True),
        ((0.6, 0.5), 2, 0.0, False),  # fewer than patience + 1 epochs: never stalled
        ((0.6, 0.5, 0.5, 0.5), 0, 0.0, False),  # patience 0: early stopping off
    ],
)
def test_stalled_on_small_histories(scores, patience, min_delta, stalled):
    assert _stalled(history(*scores), TrainConfig(patience=patience, min_delta=min_delta)) is stalled


@pytest.mark.parametrize("min_epochs, stalled", [(0, True), (3, True), (4, True), (5, False), (40, False)])
def test_min_epochs_delays_the_stop_to_that_epoch(min_epochs, stalled):
    four = history(0.5, 0.6, 0.6, 0.6)  # stalled under patience 2 from epoch 4 on
    assert _stalled(four, TrainConfig(patience=2, min_epochs=min_epochs)) is stalled


def toy(checkpoints: Path, **train):
    config = load_config(ROOT / "configs" / "toy.yaml")
    config.run.checkpoint_dir = str(checkpoints)
    config.train.progress = False
    config.train.epochs = 40
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def test_training_stops_after_patience_epochs_without_a_gain_and_is_then_finished(tmp_path):
    config = toy(tmp_path / "ck", patience=2)
    data = load_data(config)
    agent = config.agents[1]  # gru/ce_kl
    lines: list[str] = []
    result = train_agent(config, agent, data, CPU, log=lines.append)
    per_epoch = steps_per_epoch(config, data.dataset, "continual")
    epochs = len(result.history)
    assert epochs < 40 and result.steps == epochs * per_epoch
    scores = [r["val_accuracy"] for r in result.history]
    assert max(scores[-2:]) <= max(scores[:-2])  # exactly the rule
    assert not any(_stalled(result.history[:k], config.train) for k in range(1, epochs))  # and not earlier
    assert result.history[-1]["stopped_early"] is True
    assert sum("stopped_early" in r for r in result.history) == 1
    assert any("stopped early after epoch" in line for line in lines)
    again = train_agent(config, agent, data, CPU, log=quiet)  # a finished checkpoint is reused
    assert again.reused and again.steps == result.steps


def test_min_epochs_trains_at_least_that_long_then_the_same_rule_applies(tmp_path):
    free = toy(tmp_path / "free", patience=2)
    data = load_data(free)
    agent = free.agents[1]
    alone = train_agent(free, agent, data, CPU, log=quiet).history
    first = len(alone)  # where patience alone stops
    assert alone[-1]["stopped_early"] and first < 37
    held = toy(tmp_path / "held", patience=2, min_epochs=first + 3)
    result = train_agent(held, agent, data, CPU, log=quiet)
    epochs = len(result.history)
    assert epochs >= first + 3
    assert result.history[-1].get("stopped_early") or epochs == 40  # stopped by the rule, or ran to the end
    assert not any(_stalled(result.history[:k], held.train) for k in range(1, epochs))
    assert result.history[: first - 1] == alone[: first - 1]  # the same training up to there


def test_an_interrupted_run_resumes_to_the_same_early_stop(tmp_path):
    class Stop(KeyboardInterrupt):
        pass

    def stop_at(step):
        def on_step(s):
            if s == step:
                raise Stop

        return on_step

    whole = toy(tmp_path / "whole", patience=2)
    data = load_data(whole)
    agent = whole.agents[1]
    done = train_agent(whole, agent, data, CPU, log=quiet)
    assert len(done.history) > 3 and done.history[-1].get("stopped_early")  # the cut falls before the stop
    cut = toy(tmp_path / "cut", patience=2)
    per_epoch = steps_per_epoch(cut, data.dataset, "continual")
    with pytest.raises(Stop):
        train_agent(cut, agent, data, CPU, on_step=stop_at(2 * per_epoch + 1), log=quiet)
    resumed = train_agent(cut, agent, data, CPU, log=quiet)
    assert resumed.history == done.history and resumed.steps == done.steps
    for a, b in zip(done.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_patience_is_part_of_the_key_only_when_set(tmp_path):
    config = toy(tmp_path)
    agent = config.agents[0]
    base = agent_key(config, agent)
    assert agent_key(dataclasses.replace(config, train=dataclasses.replace(config.train, patience=0)), agent) == base
    assert agent_key(dataclasses.replace(config, train=dataclasses.replace(config.train, patience=3)), agent) != base
    held = dataclasses.replace(config.train, patience=3, min_epochs=5)
    assert agent_key(dataclasses.replace(config, train=held), agent) != agent_key(
        dataclasses.replace(config, train=dataclasses.replace(config.train, patience=3)), agent
    )


def test_min_epochs_without_patience_is_a_one_line_error():
    raw = {"agents": [{"arch": "gru", "loss": "ce"}], "train": {"min_epochs": 5}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "x.yaml", check_plugins=False)
    assert str(info.value) == (
        "x.yaml: train.min_epochs: only delays early stopping, which is off; set train.patience (> 0) or drop it"
    )


def test_patience_without_validation_is_a_one_line_error():
    raw = {"agents": [{"arch": "gru", "loss": "ce"}], "train": {"patience": 3, "validate": False}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "x.yaml", check_plugins=False)
    message = str(info.value)
    assert "\n" not in message and "x.yaml" in message and "train.patience" in message
    assert "train.validate: true" in message
