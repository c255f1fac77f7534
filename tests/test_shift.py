"""``evaluate.stream``: test streams that differ from training (a distribution shift)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nrstream.cli import main
from nrstream.data.datasets import make_stream
from nrstream.errors import ConfigError
from nrstream.lab.config import load_config, parse_config
from nrstream.lab.evaluation import evaluate_agent
from nrstream.lab.loading import load_data
from nrstream.plugin.protocols import evaluation_settings
from nrstream.seeds import derive_seed

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Probe(nn.Module):
    """An architecture that answers class 0 and keeps every frame it is shown."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seen: list[torch.Tensor] = []
        self.weight = nn.Parameter(torch.zeros(1))

    def initial_state(self, batch_size: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch_size, 1, device=device)

    def forward(self, x, state, reset=None, aux=None):
        self.seen.append(x.clone())
        return torch.zeros(*x.shape[:2], self.num_classes), state


def shifted_toy(**shift):
    config = load_config(ROOT / "configs" / "toy.yaml")
    config.evaluate.stream = shift
    config.evaluate.lengths, config.evaluate.min_decisions, config.evaluate.endless_samples = [2], 128, 16
    config.evaluate.metrics = []
    return config


def first_test_frames(config, dataset, frames: int) -> torch.Tensor:
    """The first ``frames`` frames of the n=2 test stream built by hand from ``settings``."""
    lanes = 128 // 2
    stream = make_stream(
        dataset, "test", num_lanes=lanes, seed=derive_seed(config.run.seed, "test", 2), device=CPU,
        **evaluation_settings(config).stream_options(),
    )  # fmt: skip
    return stream.next_chunk(frames)


@pytest.mark.parametrize(
    "shift, check",
    [
        ({"gap_min": 0, "gap_max": 0}, "no_gaps"),
        ({"gap_min": 20, "gap_max": 80}, "long_gaps"),
        ({"noise_scale": 3.0}, "loud"),
        ({"noise": "silence"}, "silence"),
    ],
)
def test_the_evaluation_reads_the_shifted_test_stream(shift, check):
    config = shifted_toy(**shift)
    dataset = load_data(config).dataset
    probe = Probe(dataset.num_classes)
    evaluate_agent(probe, dataset, config, "never", CPU)
    seen = probe.seen[0]  # the first chunk of the n=2 streams
    expected = first_test_frames(config, dataset, seen.shape[1])
    assert torch.equal(seen, expected.x)  # exactly the stream the shifted settings describe
    plain = first_test_frames(shifted_toy(), dataset, seen.shape[1])
    assert not torch.equal(seen, plain.x)  # ... and not the training-time one
    noise = expected.x[~expected.mask]
    gaps = (~expected.mask).sum(1)
    if check == "no_gaps":
        assert noise.numel() == 0
    elif check == "long_gaps":
        starts = expected.start.nonzero()
        assert (starts[:, 1] >= 20).all()  # the first sample comes after a gap of 20..80 frames
        assert (gaps >= 20).all()
    elif check == "loud":
        assert float(noise.std()) == pytest.approx(3.0 * float(plain.x[~plain.mask].std()), rel=0.1)
    else:
        assert noise.numel() > 0 and (noise == 0).all()


def test_results_record_the_test_stream_and_training_is_reused(tmp_path):
    out, checkpoints = tmp_path / "run", tmp_path / "ck"
    base = [str(ROOT / "configs" / "toy.yaml"), "--checkpoints", str(checkpoints), "--no-progress"]
    base += ["--set", "agents.losses=[ce_kl]", "--set", "evaluate.lengths=[1]"]
    assert main(["evaluate", *base, "--out", str(out)]) == 0
    shifted = ["--set", "evaluate.stream={gap_min: 0, gap_max: 0}"]
    assert main(["evaluate", *base, *shifted, "--out", str(out / ".." / "shifted")]) == 0
    plain = json.loads((out / "results.json").read_text())
    moved = json.loads((tmp_path / "shifted" / "results.json").read_text())
    assert plain["data"]["test_stream"]["gap_max"] == 8 and moved["data"]["test_stream"]["gap_max"] == 0
    assert moved["config"]["evaluate"]["stream"] == {"gap_min": 0, "gap_max": 0}
    assert moved["config"]["data"]["stream"]["gap_max"] == 8  # training streams unchanged
    assert moved["runs"][0]["training"]["reused"] and not plain["runs"][0]["training"]["reused"]
    assert moved["runs"][0]["training"]["checkpoint"] == plain["runs"][0]["training"]["checkpoint"]


@pytest.mark.parametrize(
    "stream, key, words",
    [
        ({"gap_mni": 0}, "evaluate.stream.gap_mni", "did you mean 'gap_min'"),
        ({"gap_min": 40}, "evaluate.stream.gap_max", "must be >= gap_min (40)"),
        ({"noise": "pink"}, "evaluate.stream.noise", "expected one of"),
        ({"noise_scale": "loud"}, "evaluate.stream.noise_scale", "expected a number"),
    ],
)
def test_a_bad_shift_is_one_line_naming_the_key(stream, key, words):
    raw = {"agents": [{"arch": "gru", "loss": "ce"}], "data": {"stream": {"gap_min": 5, "gap_max": 30}}}
    raw["evaluate"] = {"stream": stream}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "x.yaml", check_plugins=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith("x.yaml") and key in message and words in message
