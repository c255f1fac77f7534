"""Continual-learning metrics (issue 27): the accuracy matrix and its scores by hand, recovery, prequential accuracy."""

from __future__ import annotations

import pytest
import torch
from nrstream_plugins.metrics.continual import continual_scores, recovery_frames

from nrstream import create
from nrstream.stream.stream import Chunk
from nrstream.testing import check_metric

R = [[0.9, 0.1, 0.2], [0.6, 0.8, 0.3], [0.5, 0.7, 0.95]]
BASELINE = [0.3, 0.25, 0.1]


def test_scores_of_a_three_phase_matrix_by_hand():
    scores = continual_scores(R, [0, 1, 2], BASELINE)
    assert scores["average_accuracy"] == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    assert scores["backward_transfer"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)  # -0.25
    assert scores["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)  # 0.25
    assert scores["forward_transfer"] == pytest.approx(((0.1 - 0.25) + (0.3 - 0.1)) / 2)  # 0.025


def test_a_recurring_task_is_scored_from_its_last_training_phase():
    matrix = [[0.9, 0.1], [0.5, 0.8], [0.95, 0.6]]  # phases A, B, A again
    scores = continual_scores(matrix, [0, 1, 0], [0.2, 0.3])
    assert scores["average_accuracy"] == pytest.approx(0.775)
    assert scores["backward_transfer"] == pytest.approx(0.6 - 0.8)
    assert scores["forgetting"] == pytest.approx(0.8 - 0.6)
    assert scores["forward_transfer"] == pytest.approx(0.1 - 0.3)  # only B comes after another phase


def test_missing_rows_give_none_not_a_guess():
    scores = continual_scores([R[0], None, None], [0, 1, 2], None)
    assert scores == dict.fromkeys(("average_accuracy", "backward_transfer", "forgetting", "forward_transfer"))


def test_the_accuracy_matrix_metric_from_rows_and_from_test_chunks():
    metric = create("metric", "accuracy_matrix", phases=3, tasks=3)
    metric.record_baseline(BASELINE)
    for i, row in enumerate(R):
        metric.record_row(i, row)
    out = metric.compute()
    assert out["R_1_0"] == 0.6 and out["baseline_2"] == 0.1
    assert out["backward_transfer"] == pytest.approx(-0.25) and out["forward_transfer"] == pytest.approx(0.025)
    # streaming: test chunks whose phase field says the task
    streaming = create("metric", "accuracy_matrix", phases=2, tasks=2)
    label = torch.tensor([[0, 1, 1, 0]])
    chunk = _chunk(label, end=torch.ones_like(label, dtype=torch.bool), phase=torch.tensor([[0, 0, 1, 1]]))
    logits = torch.nn.functional.one_hot(torch.tensor([[0, 0, 1, 1]]), 2).float()  # right, wrong, right, wrong
    streaming.update(chunk, logits)
    streaming.end_row(0)
    assert streaming.rows == [[0.5, 0.5], None]


def test_recovery_time_by_hand():
    hits = torch.tensor([1] * 10 + [0] * 5 + [1] * 10)
    decisions = torch.ones(25, dtype=torch.long)
    # pre-switch level 1.0 (frames 6..9); after the switch the window of 4 frames since it reaches
    # 0.9 first at frame 18 (frames 15..18 all right): 9 frames, the switch frame included
    assert recovery_frames(hits, decisions, [10], window=4, margin=0.1, min_decisions=2) == [9]
    # a second switch at 14 cuts the first short (not back by then); its own pre-switch level is
    # 0 (frames 10..13), met once its window holds the 2 decisions asked for (frames 14, 15)
    assert recovery_frames(hits, decisions, [10, 14], window=4, margin=0.1, min_decisions=2) == [None, 2]


def _chunk(label, end, phase):
    b, t = label.shape
    return Chunk(
        x=torch.zeros(b, t, 1), label=label, mask=label >= 0, start=end, end=end,
        sample_index=torch.ones_like(label), sample_id=torch.zeros_like(label), phase=phase,
    )  # fmt: skip


def test_prequential_accuracy_per_phase_switches_and_curve():
    metric = create("metric", "prequential_accuracy", window=4, phases=2, min_decisions=1, margin=0.0)
    # two lanes, 12 frames in two chunks; a decision on every frame; phase 1 from frame 6
    label = torch.zeros(2, 12, dtype=torch.long)
    phase = (torch.arange(12) >= 6).long().expand(2, -1)
    right = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1]).bool()
    logits = torch.stack([torch.where(right, 1.0, -1.0), torch.zeros(12)], -1).expand(2, -1, -1)
    end = torch.ones(2, 12, dtype=torch.bool)
    for part in (slice(0, 5), slice(5, 12)):
        metric.update(_chunk(label[:, part], end[:, part], phase[:, part]), logits[:, part])
    out = metric.compute()
    assert out["accuracy"] == pytest.approx(20 / 24)
    assert out["accuracy_phase_0"] == 1.0 and out["accuracy_phase_1"] == pytest.approx(4 / 6)
    assert out["switches"]["x"] == [6.0] and out["switches"]["y"] == [1.0]
    # back to 1.0 (margin 0) once the 4-frame window since the switch holds only right ones: frames 8..11
    assert out["recovery_frames"]["y"] == [6.0]
    assert out["rolling_accuracy"]["x"][-1] == 12.0 and out["rolling_accuracy"]["y"][-1] == 1.0


@pytest.mark.parametrize(
    ("name", "options"),
    [("prequential_accuracy", {"window": 5, "phases": 2}), ("accuracy_matrix", {"phases": 2, "tasks": 2})],
)
def test_the_continual_metrics_pass_the_conformance_kit(name, options):
    check_metric(lambda **kw: create("metric", name, **kw), options=options, name=name)


def test_switches_read_from_the_stream_ignore_a_blends_back_and_forth():
    metric = create("metric", "prequential_accuracy", window=3, phases=2)
    # majority phase per frame: 0 x5, a blend flickering 1, 0, 1, 0, then 1 x6
    phase = torch.tensor([0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1])[None]
    label = torch.zeros_like(phase)
    metric.update(_chunk(label, torch.zeros_like(phase, dtype=torch.bool), phase), torch.zeros(1, 15, 2))
    assert metric.compute()["switches"]["x"] == [9.0]
    given = create("metric", "prequential_accuracy", window=3, phases=2, switches=[5])
    given.update(_chunk(label, torch.zeros_like(phase, dtype=torch.bool), phase), torch.zeros(1, 15, 2))
    assert given.compute()["switches"] == {"x": [5.0], "y": [1.0], "x_label": "frames per lane",
                                           "y_label": "phase switched to"}  # fmt: skip
