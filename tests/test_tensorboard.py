"""``run.tensorboard: true``: the training curves as TensorBoard event files, read back with TensorBoard's reader."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nrstream.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOY = str(ROOT / "configs" / "toy.yaml")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "restore_logging")


event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the 'tensorboard' package is not installed (pip install 'nrstream[tensorboard]')",
)


def _train(tmp_path: Path, *extra: str) -> int:
    return main(["-q", "train", TOY, "--no-progress", "--set", f"run.out_dir={tmp_path}",
                 "--set", "agents.losses=[ce_kl]", "--set", "train.epochs=2", *extra])  # fmt: skip


def _scalars(folder: Path) -> dict[str, list]:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_curves_per_job_with_the_expected_tags_and_steps(tmp_path):
    assert _train(tmp_path, "--set", "run.tensorboard=true", "--seeds", "2") == 0
    base = tmp_path / "tensorboard" / "toy"
    assert sorted(p.name for p in base.iterdir()) == ["gru-ce_kl-seed0", "gru-ce_kl-seed1"]
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2
    for seed in (0, 1):
        scalars = _scalars(base / f"gru-ce_kl-seed{seed}")
        assert set(scalars) == {"train/loss", "train/lr", "epoch/loss", "val/accuracy"}
        steps = [e.step for e in scalars["train/loss"]]
        total = steps[-1]
        assert steps == list(range(1, total + 1)) and [e.step for e in scalars["train/lr"]] == steps
        epochs = [e.step for e in scalars["val/accuracy"]]
        assert len(epochs) == 2 and epochs[-1] == total and [e.step for e in scalars["epoch/loss"]] == epochs
        assert all(0.0 <= e.value <= 1.0 for e in scalars["val/accuracy"])
        assert all(math.isfinite(e.value) and e.value > 0 for e in scalars["train/loss"])
        # the epoch loss is the mean of that epoch's step losses
        first = [e.value for e in scalars["train/loss"] if e.step <= epochs[0]]
        assert scalars["epoch/loss"][0].value == pytest.approx(sum(first) / len(first), rel=1e-5)


def test_off_by_default_writes_nothing(tmp_path):
    assert _train(tmp_path) == 0
    assert not (tmp_path / "tensorboard").exists()


class _Interrupt(KeyboardInterrupt):
    pass


def test_resume_with_tensorboard_is_bitwise_identical_and_purges_the_stale_tail(tmp_path):
    import dataclasses

    import torch

    from nrstream.lab.config import load_config
    from nrstream.lab.engine import load_checkpoint, steps_per_epoch, train_agent
    from nrstream.lab.loading import load_data

    def config(name: str, tensorboard: bool):
        c = load_config(ROOT / "configs" / "toy.yaml")
        c.run.out_dir, c.run.checkpoint_dir, c.run.tensorboard = (
            str(tmp_path / name),
            str(tmp_path / name / "ck"),
            tensorboard,
        )
        c.train.progress, c.train.lanes, c.train.samples_per_lane, c.train.checkpoint_every = False, 8, 8, 3
        return c

    plain, tracked = config("plain", False), config("tracked", True)
    agent, data = dataclasses.replace(plain.agents[1], loss="ce_kl"), load_data(plain)
    per_epoch = steps_per_epoch(plain, data.dataset, "continual")
    train_agent(plain, agent, data, torch.device("cpu"), log=lambda _: None)

    def stop(step: int) -> None:
        if step == per_epoch + 2:  # past the last checkpoint: steps that the resumed run repeats
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_agent(tracked, agent, data, torch.device("cpu"), on_step=stop, log=lambda _: None)
    train_agent(tracked, agent, data, torch.device("cpu"), log=lambda _: None)

    a = load_checkpoint(next((tmp_path / "plain" / "ck").glob("*/last.pt")))
    b = load_checkpoint(next((tmp_path / "tracked" / "ck").glob("*/last.pt")))
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    scalars = _scalars(tmp_path / "tracked" / "tensorboard" / "toy" / "gru-ce_kl-seed0")
    assert [e.step for e in scalars["train/loss"]] == list(range(1, 2 * per_epoch + 1))  # no duplicated steps
    assert [e.step for e in scalars["val/accuracy"]] == [per_epoch, 2 * per_epoch]
    assert [e.value for e in scalars["val/accuracy"]] == pytest.approx([h["val_accuracy"] for h in a["history"]])
