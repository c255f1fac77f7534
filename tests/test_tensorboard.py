"""``run.tensorboard: true``: the training curves as TensorBoard event files, read back with TensorBoard's reader."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nrstream.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOY = str(ROOT / "configs" / "toy.yaml")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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
