"""Built-in metrics: exact values on hand-built chunks, Wilson interval, rolling window, toy stream."""

from __future__ import annotations

import json

import pytest
import torch
from nrstream_plugins._options import OptionError
from nrstream_plugins.metrics import (
    Accuracy,
    AccuracyByPosition,
    NoiseEntropy,
    Rolling,
    RollingAccuracy,
    StateNorm,
    wilson_interval,
)

from nrstream.stream.stream import Chunk

C = 3


def make_chunk(label: list[list[int]], end: list[list[int]], sample_index: list[list[int]]) -> Chunk:
    label_t = torch.tensor(label)
    mask = label_t >= 0
    b, t = label_t.shape
    return Chunk(
        x=torch.zeros(b, t, 1),
        label=label_t,
        mask=mask,
        start=torch.zeros(b, t, dtype=torch.bool),
        end=torch.tensor(end, dtype=torch.bool),
        sample_index=torch.tensor(sample_index),
        sample_id=torch.where(mask, 0, -1),
    )


def logits_for(pred: list[list[int]]) -> torch.Tensor:
    """Logits whose argmax is ``pred`` (``-1``: uniform)."""
    pred_t = torch.tensor(pred)
    onehot = torch.nn.functional.one_hot(pred_t.clamp_min(0), C).float()
    return torch.where((pred_t >= 0)[..., None], 5 * onehot, torch.zeros_like(onehot))


# two lanes, five frames; decisions: lane 0 at t=1 (pos 1) and t=4 (pos 2), lane 1 at t=2 (pos 1)
CHUNK = make_chunk(
    label=[[0, 0, -1, 2, 2], [-1, 1, 1, -1, -1]],
    end=[[0, 1, 0, 0, 1], [0, 0, 1, 0, 0]],
    sample_index=[[1, 1, 1, 2, 2], [0, 1, 1, 1, 1]],
)
# right at (0,1), wrong at (0,4), right at (1,2); non-decision frames deliberately wrong
LOGITS = logits_for([[1, 0, -1, 2, 0], [-1, 0, 1, -1, 2]])


def assert_json(result: dict) -> None:
    json.dumps(result, allow_nan=False)


def test_accuracy_exact_and_reset():
    metric = Accuracy()
    metric.update(CHUNK, LOGITS)
    result = metric.compute()
    assert (result["accuracy"], result["correct"], result["total"]) == (2 / 3, 2, 3)
    assert [result["ci95_low"], result["ci95_high"]] == pytest.approx(wilson_interval(2, 3))
    assert_json(result)
    metric.update(CHUNK, LOGITS)
    assert metric.compute()["total"] == 6
    metric.reset()
    assert metric.compute() == {"accuracy": None, "correct": 0, "total": 0, "ci95_low": None, "ci95_high": None}


def test_wilson_interval_by_hand():
    # 8 of 10 at 95 %: p = 0.8, z^2 = 3.841459; centre = (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half-width = 1.959964 / 1.384146 * sqrt(0.016 + 0.009604) = 0.226578 (textbook: 0.4902-0.9433)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.716740 - 0.226578, abs=2e-6)
    assert hi == pytest.approx(0.716740 + 0.226578, abs=2e-6)
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo == pytest.approx(5 / (5 + 1.959963984540054**2), abs=1e-12)


def test_accuracy_by_position_exact():
    metric = AccuracyByPosition(max_position=1)
    metric.update(CHUNK, LOGITS)
    result = metric.compute()
    assert (result["accuracy"]["x"], result["accuracy"]["y"], result["decisions"]["y"]) == ([1], [1.0], [2])
    assert result["beyond"] == 1
    metric = AccuracyByPosition()
    metric.update(CHUNK, LOGITS)
    result = metric.compute()
    assert result["accuracy"]["y"] == [1.0, 0.0] and result["decisions"]["y"] == [2, 1] and result["beyond"] == 0
    assert_json(result)
    metric.reset()
    assert metric.compute()["accuracy"]["x"] == []


def test_noise_entropy_exact():
    metric = NoiseEntropy()
    # noise frames: (0,2) and (1,0) uniform -> 1; (1,3) uniform -> 1; (1,4) confident
    metric.update(CHUNK, LOGITS)
    p = torch.softmax(torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64), 0)
    confident = float(-(p * p.log()).sum() / torch.log(torch.tensor(3.0, dtype=torch.float64)))
    result = metric.compute()
    assert result["frames"] == 4
    assert result["noise_entropy"] == pytest.approx((3 + confident) / 4, abs=1e-6)
    metric.reset()
    assert metric.compute() == {"noise_entropy": None, "frames": 0}


def test_state_norm_bins_and_mean():
    metric = StateNorm(every=2)
    hidden = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 2.0], [6.0, 8.0]]])
    chunk = CHUNK[:, :3]
    metric.update(chunk, torch.zeros(2, 3, C), {"hidden": hidden})
    metric.update(chunk, torch.zeros(2, 3, C), {"hidden": hidden})
    # norms per frame, lanes averaged: [3, 1.5, 5] then again [3, 1.5, 5]; bins of two frames
    result = metric.compute()
    assert result["state_norm"]["x"] == [0, 2, 4]
    assert result["state_norm"]["y"] == pytest.approx([2.25, 4.0, 3.25])
    assert result["mean"] == pytest.approx(9.5 / 3)
    assert result["frames"] == 6
    assert_json(result)
    with pytest.raises(OptionError, match="hidden"):
        metric.update(chunk, torch.zeros(2, 3, C), {})
    metric.reset()
    assert metric.compute()["state_norm"]["x"] == [] and metric.compute()["mean"] is None


def test_rolling_matches_naive_window():
    generator = torch.Generator().manual_seed(0)
    values = (torch.rand(500, generator=generator) < 0.7).double()
    window = 37
    rolling = Rolling(window)
    got = torch.cat([rolling.update(part) for part in torch.split(values, [1, 0, 60, 3, 200, 236])])
    naive = torch.stack([values[max(0, i + 1 - window) : i + 1].mean() for i in range(len(values))])
    assert torch.allclose(got, naive, rtol=0, atol=1e-12)
    assert rolling._tail.numel() == window  # bounded memory


def test_rolling_accuracy_stream_order_and_curve():
    generator = torch.Generator().manual_seed(1)
    metric = RollingAccuracy(window=10, every=3)
    decisions = []  # (time, lane, correct) for a naive recomputation
    for step in range(6):
        end = torch.rand(4, 7, generator=generator) < 0.4
        label = torch.randint(0, C, (4, 7), generator=generator)
        pred = torch.randint(0, C, (4, 7), generator=generator)
        chunk = Chunk(
            x=torch.zeros(4, 7, 1),
            label=label,
            mask=torch.ones(4, 7, dtype=torch.bool),
            start=end,
            end=end,
            sample_index=torch.ones(4, 7, dtype=torch.long),
            sample_id=torch.zeros(4, 7, dtype=torch.long),
        )
        metric.update(chunk, logits_for(pred.tolist()))
        for t in range(7):
            for b in range(4):
                if end[b, t]:
                    decisions.append((step * 7 + t, b, float(pred[b, t] == label[b, t])))
    decisions.sort()
    hits = [d[2] for d in decisions]
    n = len(hits)
    xs = list(range(3, n + 1, 3))
    ys = [sum(hits[max(0, x - 10) : x]) / len(hits[max(0, x - 10) : x]) for x in xs]
    result = metric.compute()
    assert result["rolling_accuracy"]["x"] == xs
    assert result["rolling_accuracy"]["y"] == pytest.approx(ys, abs=1e-12)
    assert result["decisions"] == n
    assert result["last"] == pytest.approx(sum(hits[-10:]) / 10)
    assert_json(result)
    metric.reset()
    assert metric.compute()["rolling_accuracy"]["x"] == [] and metric.compute()["decisions"] == 0


def test_toy_stream_oracle_is_perfect():
    from nrstream.data.datasets import load_dataset, make_stream

    ds = load_dataset("toy")
    stream = make_stream(ds, "test", num_lanes=4, seed=0, gap_min=2, gap_max=5)
    num_classes = stream.num_classes
    metrics = [Accuracy(), AccuracyByPosition(max_position=8), RollingAccuracy(window=20, every=5), NoiseEntropy()]
    for _ in range(10):
        chunk = stream.next_chunk(25)
        oracle = torch.nn.functional.one_hot(chunk.label.clamp_min(0), num_classes).float()
        oracle = torch.where(chunk.mask[..., None], oracle, torch.zeros_like(oracle))  # uniform on noise
        for metric in metrics:
            metric.update(chunk, oracle)
    accuracy, by_position, rolling, entropy = (m.compute() for m in metrics)
    assert accuracy["accuracy"] == 1.0 and accuracy["total"] > 20
    assert by_position["accuracy"]["x"][0] == 1 and len(by_position["accuracy"]["x"]) >= 3
    assert all(a == 1.0 for a in by_position["accuracy"]["y"])
    assert sum(by_position["decisions"]["y"]) + by_position["beyond"] == accuracy["total"]
    curve = rolling["rolling_accuracy"]
    assert all(y == 1.0 for y in curve["y"]) and rolling["decisions"] == accuracy["total"]
    assert entropy["noise_entropy"] == 1.0 and entropy["frames"] > 0
    for result in (accuracy, by_position, rolling, entropy):
        assert_json(result)


@pytest.mark.parametrize(
    ("factory", "config", "quoted"),
    [
        (RollingAccuracy, {"window": 0}, "0"),
        (RollingAccuracy, {"every": 2.5}, "2.5"),
        (AccuracyByPosition, {"max_position": "all"}, "'all'"),
        (StateNorm, {"every": -1}, "-1"),
    ],
)
def test_bad_options(factory, config, quoted):
    with pytest.raises(ValueError, match=quoted):
        factory(**config)


def test_registered_through_the_plugin_registry():
    from nrstream.plugin.registry import get_registry

    names = set(get_registry().names("metric"))
    assert {"accuracy", "accuracy_by_position", "rolling_accuracy", "noise_entropy", "state_norm"} <= names
    assert get_registry().create("metric", "state_norm").needs_hidden is True


@pytest.mark.parametrize("factory", [Accuracy, AccuracyByPosition, RollingAccuracy, NoiseEntropy, StateNorm])
def test_compute_returns_exactly_what_the_metric_declares(factory):
    """The report renders from ``produces``: scalars are floats or None, curves x/y lists with labels."""

    def check(result: dict) -> None:
        assert set(result) == set(factory.produces)
        for key, kind in factory.produces.items():
            value = result[key]
            if kind == "scalar":
                assert value is None or type(value) is float, (key, value)
            else:
                assert kind == "curve" and set(value) == {"x", "y", "x_label", "y_label"}
                assert len(value["x"]) == len(value["y"]) and all(type(v) is float for v in value["x"] + value["y"])
                assert value["x_label"] and value["y_label"]
        assert_json(result)

    metric = factory()
    check(metric.compute())  # before any update
    metric.update(CHUNK, LOGITS, {"hidden": torch.ones(*CHUNK.label.shape, 3)})
    check(metric.compute())
    metric.reset()
    check(metric.compute())
