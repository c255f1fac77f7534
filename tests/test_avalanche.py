"""The Avalanche adapter (issue 27): a schedule as an Avalanche benchmark; a strategy runs; the metrics agree."""

from __future__ import annotations

import warnings

import pytest
import torch
from nrstream_plugins.metrics.continual import continual_scores

from nrstream import create, load_dataset, make_stream
from nrstream.lab.avalanche import WindowClassifier, avalanche_matrix, schedule_benchmark, stream_windows
from nrstream.stream.settings import StreamSettings
from nrstream.stream.stream import Chunk

avalanche = pytest.importorskip("avalanche", reason="the optional extra nrstream[avalanche] is not installed")

SCHEDULE = [{"frames": 100, "classes": [0, 1]}, {"frames": 100, "classes": [2, 3]}, {"frames": 100, "classes": [4, 5]}]


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy", seed=1, num_classes=6, feature_size=4)


def test_windows_end_at_the_decision_frames(toy):
    settings = StreamSettings(gap_min=1, gap_max=3)
    x, y = stream_windows(toy, "train", settings, examples=50, window=15, lanes=4, seed=0, chunk_length=7)
    assert x.shape == (50, 15, 4) and y.shape == (50,)
    # the same windows, cut by hand from one long chunk read at once
    chunk = make_stream(toy, "train", settings, num_lanes=4, seed=0).next_chunk(400)
    frames = torch.cat([torch.zeros(4, 14, 4), chunk.x], 1)
    lanes, times = torch.nonzero(chunk.end.T, as_tuple=True)[1], torch.nonzero(chunk.end.T, as_tuple=True)[0]
    expected = torch.stack([frames[b, t : t + 15] for b, t in zip(lanes.tolist(), times.tolist(), strict=True)])[:50]
    assert torch.equal(x, expected) and torch.equal(y, chunk.label.T[chunk.end.T][:50])


def test_a_schedule_runs_under_an_avalanche_strategy_and_the_metrics_agree(toy):
    from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche.training.supervised import Naive

    settings = StreamSettings(gap_min=1, gap_max=3, schedule=SCHEDULE)
    benchmark = schedule_benchmark(toy, settings, train_examples=96, test_examples=64, lanes=8, seed=0)
    assert len(benchmark.train_stream) == 3 and len(benchmark.test_stream) == 3
    assert [sorted(set(e.dataset.targets)) for e in benchmark.train_stream] == [[0, 1], [2, 3], [4, 5]]

    torch.manual_seed(0)
    model = WindowClassifier(create("architecture", "gru", input_size=4, num_classes=6, hidden_size=16))
    with warnings.catch_warnings():  # "no loggers": we read the results ourselves
        warnings.simplefilter("ignore")
        evaluator = EvaluationPlugin(
            accuracy_metrics(experience=True, stream=True),
            forgetting_metrics(experience=True, stream=True),
            bwt_metrics(experience=True, stream=True),
            loggers=[],
        )
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=2, eval_mb_size=64,
                     evaluator=evaluator, device="cpu")  # fmt: skip
    ours = create("metric", "accuracy_matrix", phases=3, tasks=3)
    evaluations = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, experience in enumerate(benchmark.train_stream):
            strategy.train(experience)
            evaluations.append(strategy.eval(benchmark.test_stream))
            # nrstream's own accuracy_matrix on the same model and test windows, fed as chunks
            model.eval()
            for j, test in enumerate(benchmark.test_stream):
                x = torch.stack([test.dataset[k][0] for k in range(len(test.dataset))])
                y = torch.tensor([test.dataset[k][1] for k in range(len(test.dataset))])
                label = torch.full((len(y), x.shape[1]), -1)
                label[:, -1] = y
                end = label >= 0
                chunk = Chunk(x=x, label=label, mask=end, start=end, end=end, sample_index=end.long(),
                              sample_id=torch.zeros_like(label), phase=torch.full_like(label, j))  # fmt: skip
                with torch.no_grad():
                    ours.update(chunk, model.model(x, model.model.initial_state(len(x), "cpu"))[0])
            ours.end_row(i)
    matrix = avalanche_matrix(evaluations, 3)
    assert sum(matrix, []) == pytest.approx(sum(ours.rows, []))  # R[i][j], both ways
    assert matrix[2][2] > 0.5  # it learnt the last task
    scores = continual_scores(matrix, [0, 1, 2])
    final = evaluations[-1]
    # Avalanche's stream accuracy pools equal-sized test experiences: our mean over tasks
    assert scores["average_accuracy"] == pytest.approx(final["Top1_Acc_Stream/eval_phase/test_stream/Task000"])
    # Avalanche's BWT and forgetting are Lopez-Paz's BWT and its negative (each task trained once)
    assert scores["backward_transfer"] == pytest.approx(final["StreamBWT/eval_phase/test_stream"])
    assert -scores["backward_transfer"] == pytest.approx(final["StreamForgetting/eval_phase/test_stream"])
