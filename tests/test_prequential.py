"""The prequential protocol (issue 27): predict and score each chunk, then learn from it; never reset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nrstream.agent import Agent
from nrstream.data.datasets import make_stream
from nrstream.lab.config.validate import parse_config
from nrstream.lab.loading import load_data
from nrstream.lab.prequential import Reservoir, make_online_optimizer, prequential_step, run_prequential
from nrstream.plugin.protocols import PREQUENTIAL, PROTOCOLS, prequential_reset
from nrstream.plugin.registry import get_registry


class MemoProbe(nn.Module):
    """Memorises labels: logits are a table row picked by hashing each frame's exact features.

    Two different samples (the toy's frames carry per-sample jitter) share no row, so the only
    way to be right on a sample is to have learnt that very sample's labels.
    """

    def __init__(self, input_size: int, num_classes: int, buckets: int = 1 << 16) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(buckets, num_classes))
        self.register_buffer(
            "weights", torch.randint(1, 1 << 20, (input_size,), generator=torch.Generator().manual_seed(0))
        )
        self.buckets = buckets

    def initial_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(batch_size, 1, device=device)

    def forward(self, x, state, reset=None, aux=None):
        key = ((x * 1000).round().long() * self.weights).sum(-1) % self.buckets
        return self.table[key], state


@pytest.fixture(scope="module", autouse=True)
def probe_registered():
    registry = get_registry()
    if "memo_probe" not in registry.names("architecture"):
        registry.add("architecture", "memo_probe", MemoProbe, "tests")


def config(**continual):
    raw = {
        "run": {"seed": 0, "device": "cpu"},
        "data": {
            "source": "toy",
            "options": {"num_classes": 4, "feature_size": 8},
            "stream": {"gap_min": 0, "gap_max": 0},
        },
        "agents": [{"arch": "memo_probe", "loss": "ce"}],
        "continual": {"lanes": 16, "chunk_length": 16, "optimizer": "sgd", "lr": 1.0, "test_lanes": 4,
                      "test_samples": 2, **continual},
    }  # fmt: skip
    return parse_config(raw)


def test_a_memorising_probe_scores_chance_on_its_first_pass_because_scoring_comes_first():
    # 512 train samples over 16 lanes: 32 per lane per pass, each at least 6 frames long, so
    # 192 frames are the first pass only: no sample has been learnt when it is scored
    cfg = config(frames=192)
    result = run_prequential(cfg, cfg.agents[0], load_data(cfg), "cpu")
    metrics = result.metrics
    assert metrics["decisions"] > 300
    assert metrics["accuracy"] < 0.35  # chance is ~0.25 (the untrained table predicts class 0)


def test_the_probe_does_memorise_so_the_order_is_what_keeps_it_at_chance():
    cfg = config()
    data = load_data(cfg).dataset
    model = MemoProbe(8, 4)
    agent = Agent(model, "never")
    optimizer = make_online_optimizer(model, cfg.continual)
    loss_fn = get_registry().create("loss", "ce")
    stream = make_stream(data, "train", cfg.data.stream, num_lanes=16, seed=1)
    before = after = second = total = total2 = 0
    for _ in range(40):  # ~two passes
        chunk = stream.next_chunk(16)
        began = agent.state
        _, predicted = prequential_step(agent, chunk, loss_fn, optimizer)
        first_pass = chunk.end & (chunk.sample_index <= 32)
        later = chunk.end & (chunk.sample_index > 40)
        hits = predicted.argmax(-1) == chunk.label
        before += int((hits & first_pass).sum())
        second += int((hits & later).sum())
        total, total2 = total + int(first_pass.sum()), total2 + int(later.sum())
        with torch.no_grad():  # the same chunk scored after learning it: what scoring late would report
            relearnt = model(chunk.x, began)[0].argmax(-1) == chunk.label
        after += int((relearnt & first_pass).sum())
    assert total > 300 and total2 > 100
    assert before / total < 0.35
    assert after / total > 0.95
    assert second / total2 > 0.9


def test_prequential_step_returns_the_prediction_made_before_the_update():
    cfg = config()
    data = load_data(cfg).dataset
    torch.manual_seed(0)
    model = get_registry().create("architecture", "gru", input_size=8, num_classes=4, hidden_size=8)
    agent = Agent(model, "never")
    agent.reset(4, "cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    chunk = make_stream(data, "train", {"gap_min": 1, "gap_max": 3}, num_lanes=4, seed=0).next_chunk(20)
    state = agent.state
    with torch.no_grad():
        expected, _ = model(chunk.x, state)
    loss, predicted = prequential_step(agent, chunk, get_registry().create("loss", "ce_kl"), optimizer)
    assert torch.equal(predicted, expected)
    with torch.no_grad():
        later, _ = model(chunk.x, state)
    assert not torch.allclose(later, expected)  # it did learn
    assert loss.ndim == 0 and not predicted.requires_grad
    assert all(not s.requires_grad for s in (agent.state if isinstance(agent.state, tuple) else [agent.state]))


@pytest.mark.parametrize(
    ("arch", "loss"),
    [("rnn", "ce_kl"), ("gru", "ce_kl"), ("lstm", "ce_kl"), ("ssm", "ce_kl"), ("snn", "ce_kl"), ("gru", "reset"),
     ("gru", "ce")],
)  # fmt: skip
def test_every_architecture_and_loss_runs_prequentially_on_a_schedule(arch, loss):
    raw = {
        "run": {"seed": 1, "device": "cpu"},
        "data": {
            "source": "toy",
            "options": {"num_classes": 4, "feature_size": 4, "train_size": 64, "test_size": 32},
            "stream": {"gap_min": 1, "gap_max": 4, "schedule": [{"frames": 48, "classes": [0, 1]},
                                                               {"frames": 48, "classes": [2, 3], "blend": 16}]},
        },
        "agents": [{"arch": arch, "loss": loss, "arch_options": {"hidden_size": 8}}],
        "continual": {"lanes": 2, "chunk_length": 16, "test_lanes": 2, "test_samples": 1, "replay": 2,
                      "steps_per_chunk": 2},
    }  # fmt: skip
    cfg = parse_config(raw)
    result = run_prequential(cfg, cfg.agents[0], load_data(cfg), "cpu")
    assert result.frames == 96
    assert result.reset == ("oracle" if loss == "reset" else "never")
    assert set(result.matrix) >= {"R_0_0", "R_1_1", "average_accuracy", "backward_transfer", "forward_transfer"}
    assert result.matrix["R_1_0"] is not None and 0 <= result.matrix["average_accuracy"] <= 1
    assert len(result.losses) == 6
    assert result.to_json()["protocol"] == "prequential"


def test_the_protocol_row_and_reset_policy():
    assert PREQUENTIAL.name == "prequential" and PREQUENTIAL.train_reset == "never"
    assert prequential_reset(PROTOCOLS["segmented"]) == "oracle"
    assert prequential_reset(PROTOCOLS["continual"]) == "never"


def test_a_reservoir_keeps_a_uniform_sample_of_what_it_saw():
    kept = torch.zeros(100)
    for seed in range(200):
        reservoir = Reservoir(5, seed)
        for i in range(100):
            reservoir.add(i, None)
        for item, _ in reservoir.items:
            kept[item] += 1
    assert kept.sum() == 1000
    assert kept[:50].sum() / kept.sum() == pytest.approx(0.5, abs=0.06)  # not just the first or last ones


def test_without_a_schedule_frames_are_needed():
    from nrstream.errors import ConfigError

    cfg = config()
    with pytest.raises(ConfigError, match="continual.frames: needed when data.stream has no schedule"):
        run_prequential(cfg, cfg.agents[0], load_data(cfg), "cpu")


def test_the_prequential_command_writes_its_run_folder(tmp_path, monkeypatch):
    import json

    import yaml

    from nrstream.cli import main

    raw = {
        "run": {"name": "cl", "seed": 0, "device": "cpu", "out_dir": str(tmp_path / "runs")},
        "data": {
            "source": "toy",
            "options": {"num_classes": 4, "feature_size": 4, "train_size": 64, "test_size": 32},
            "stream": {"gap_min": 1, "gap_max": 4, "schedule": [{"frames": 64, "classes": [0, 1]},
                                                               {"frames": 64, "classes": [2, 3]}]},
        },
        "agents": {"archs": [{"name": "gru", "options": {"hidden_size": 8}}], "losses": ["ce", "ce_kl"]},
        "continual": {"lanes": 2, "chunk_length": 32, "test_lanes": 2, "test_samples": 1, "window": 32},
    }  # fmt: skip
    path = tmp_path / "cl.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert main(["prequential", str(path), "--seeds", "2"]) == 0
    folder = tmp_path / "runs" / "cl"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".nrstream-outputs.json", "accuracy_matrix.png", "prequential.csv", "prequential.json",
        "prequential_accuracy.png",
    ]  # fmt: skip
    payload = json.loads((folder / "prequential.json").read_text())
    assert [(r["loss"], r["seed"]) for r in payload["runs"]] == [("ce", 0), ("ce_kl", 0), ("ce", 1), ("ce_kl", 1)]
    assert payload["schedule"]["task_of"] == [0, 1] and payload["schedule"]["starts"] == [0, 64]
    assert [(s["loss"], s["seeds"]) for s in payload["summary"]] == [("ce", 2), ("ce_kl", 2)]
    assert payload["runs"][0]["metrics"]["switches"]["x"] == [64.0]  # where the schedule's phase 1 begins
    assert payload["runs"][0]["loss_curve"] != payload["runs"][1]["loss_curve"]  # ce and ce_kl learn differently
    assert (folder / "prequential.csv").read_text().startswith("arch,loss,reset,seeds,prequential_accuracy")
    # a second run replaces the folder nrstream wrote; a folder it did not write is refused before any work
    assert main(["prequential", str(path), "--set", "continual.frames=64"]) == 0
    assert json.loads((folder / "prequential.json").read_text())["runs"][0]["frames_per_lane"] == 64
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["prequential", str(path), "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
