"""Non-stationary streams (issue 27): phases, class-incremental draws, blends, determinism."""

from __future__ import annotations

import pytest
import torch

from nrstream.data.datasets import load_dataset, make_stream
from nrstream.stream.schedule import Schedule, ScheduleError
from nrstream.stream.settings import SettingError, StreamSettings
from nrstream.stream.stream import Chunk

FIELDS = ("x", "label", "mask", "start", "end", "sample_index", "sample_id", "phase")
SCHEDULE = [
    {"frames": 300, "classes": [0, 1]},
    {"frames": 400, "classes": ["class_2"], "blend": 100, "stream": {"gap_min": 0, "gap_max": 3, "noise_scale": 3.0}},
    {"frames": 200, "classes": [1, 0], "blend": 50},
]


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy", seed=3)


def read(stream, total: int, chunk: int) -> Chunk:
    parts, left = [], total
    while left > 0:
        parts.append(stream.next_chunk(min(chunk, left)))
        left -= chunk
    return Chunk.cat(parts)


def scheduled(toy, seed=5, lanes=7, **changes):
    settings = {"gap_min": 2, "gap_max": 9, "schedule": SCHEDULE, **changes}
    return make_stream(toy, "train", settings, num_lanes=lanes, seed=seed)


@pytest.mark.parametrize("mode", ["together", "independent"])
def test_a_scheduled_stream_is_the_same_whatever_the_chunk_size(toy, mode):
    whole = read(scheduled(toy, schedule_lanes=mode), 1200, 1200)
    for size in (1, 13, 256):
        part = read(scheduled(toy, schedule_lanes=mode), 1200, size)
        for name in FIELDS:
            assert torch.equal(getattr(whole, name), getattr(part, name)), (size, name)


def test_a_scheduled_stream_is_a_function_of_its_seed(toy):
    a, b, c = (read(scheduled(toy, seed=s), 600, 100) for s in (5, 5, 6))
    assert all(torch.equal(getattr(a, n), getattr(b, n)) for n in FIELDS)
    assert not torch.equal(a.label, c.label)


def test_state_dict_resumes_a_scheduled_stream(toy):
    stream = scheduled(toy)
    stream.next_chunk(250)
    state = stream.state_dict()
    rest = stream.next_chunk(200)
    again = scheduled(toy)
    again.load_state_dict(state)
    resumed = again.next_chunk(200)
    assert all(torch.equal(getattr(rest, n), getattr(resumed, n)) for n in FIELDS)


def test_abrupt_switch_draws_each_phase_only_from_its_classes(toy):
    schedule = [{"frames": 200, "classes": [0]}, {"frames": 10**6, "classes": ["class_1", "class_2"]}]
    stream = make_stream(toy, "train", {"gap_min": 0, "gap_max": 0, "schedule": schedule}, num_lanes=4, seed=1)
    chunk = read(stream, 600, 64)
    frame = torch.arange(600).expand(4, -1)
    starts = chunk.start
    # without gaps an event begins at its sample's first frame: the switch is at frame 200 exactly
    assert set(chunk.label[starts & (frame < 200)].tolist()) == {0}
    assert set(chunk.label[starts & (frame >= 200)].tolist()) == {1, 2}
    assert torch.equal(chunk.phase[starts], (frame[starts] >= 200).long())
    # an event's frames share its phase: the phase changes only where a sample starts
    changes = chunk.phase[:, 1:] != chunk.phase[:, :-1]
    assert not (changes & ~chunk.start[:, 1:]).any()


def test_a_class_incremental_phase_draws_each_of_its_samples_once_per_pass(toy):
    bank = toy.splits["test"]
    rows = torch.nonzero((bank.labels == 1) | (bank.labels == 3)).flatten()
    n = len(rows)
    schedule = [{"frames": 10**9, "classes": [3, 1]}]
    stream = make_stream(toy, "test", {"gap_min": 0, "gap_max": 0, "schedule": schedule}, num_lanes=1, seed=2)
    chunk = read(stream, 24 * n + 100, 97)  # samples are 6..12 frames long
    ids = chunk.sample_id[chunk.start][: 2 * n]  # two passes
    first, second = ids[:n], ids[n:]
    assert torch.equal(torch.sort(first).values, rows) and torch.equal(torch.sort(second).values, rows)
    assert not torch.equal(first, second)  # a fresh order per pass
    counts = torch.bincount(bank.labels[ids], minlength=4)
    assert counts.tolist() == [0, 2 * int((bank.labels == 1).sum()), 0, 2 * int((bank.labels == 3).sum())]


def test_a_gradual_switch_mixes_linearly(toy):
    schedule = Schedule.from_config([{"frames": 1000}, {"frames": 1000, "blend": 400}])
    assert [schedule.new_fraction(t) for t in (999, 1000, 1100, 1200, 1399, 1400)] == [1.0, 0.0, 0.25, 0.5, 0.9975, 1.0]
    assert [schedule.phase_at(t) for t in (0, 999, 1000, 5000)] == [0, 0, 1, 1]
    # empirically, over many lanes: the share of events of the new phase beginning near a frame
    stream = make_stream(
        toy, "train", {"gap_min": 0, "gap_max": 0, "schedule": schedule.to_config()}, num_lanes=2000, seed=4
    )
    chunk = read(stream, 1500, 500)
    for at, expected in ((1100, 0.25), (1200, 0.5), (1300, 0.75)):
        window = chunk.start[:, at - 20 : at + 20]
        phases = chunk.phase[:, at - 20 : at + 20][window].double()
        assert abs(phases.mean().item() - expected) < 0.03, (at, phases.mean().item())
    assert (chunk.phase[chunk.start][:, None] >= 0).all()
    early = chunk.start[:, :1000]
    assert (chunk.phase[:, :1000][early] == 0).all()


def test_the_stream_method_matches_the_schedule_exactly(toy):
    stream = scheduled(toy)
    clock = torch.arange(0, 1200, 10)
    u = torch.full_like(clock, 0.5, dtype=torch.float64)
    expected = [
        stream.schedule.phase_at(c) if stream.schedule.new_fraction(c) > 0.5 else stream.schedule.phase_at(c) - 1
        for c in clock.tolist()
    ]
    assert stream.phase_of(clock, u).tolist() == expected


def test_a_phase_changes_the_gaps_and_the_noise_scale(toy):
    chunk = read(scheduled(toy, lanes=64), 1000, 250)
    gaps_in = {p: chunk.mask[chunk.phase == p].logical_not().double().mean().item() for p in (0, 1)}
    assert gaps_in[1] < gaps_in[0]  # gaps 0..3 instead of 2..9
    noise = chunk.x[~chunk.mask]
    phase = chunk.phase[~chunk.mask]
    assert noise[phase == 1].std() > 2.0 * noise[phase == 0].std()


def test_a_stationary_stream_has_phase_zero_and_the_same_bytes(toy):
    plain = make_stream(toy, "train", {"gap_min": 2, "gap_max": 9}, num_lanes=3, seed=5).next_chunk(300)
    assert (plain.phase == 0).all()
    assert StreamSettings().identity() == StreamSettings(schedule=None).identity()
    assert "schedule" not in StreamSettings().identity()


@pytest.mark.parametrize(
    ("schedule", "key", "text"),
    [
        ([{"frames": 10, "classes": []}], "schedule[0].classes", "is empty"),
        ([{"frames": 10, "classes": [0, 1]}, {"frames": 10, "classes": [1, 2]}], "schedule[1].classes", "shares 1"),
        ([{"frames": -5}], "schedule[0].frames", "must be >= 1 frame, got -5"),
        ([{"frames": 10}, {"frames": 10, "blend": 11}], "schedule[1].blend", "longer than the phase itself"),
        ([{"frames": 10}, {"frames": 10, "blend": -1}], "schedule[1].blend", "must be >= 0"),
        ([{"frames": 10, "blend": 5}], "schedule[0].blend", "no phase before it"),
        ([{"frames": 10, "stream": {"background": "recorded"}}], "schedule[0].stream.background", "no scene to change"),
        ([{"frame": 10}], "schedule[0].frame", "did you mean 'frames'"),
        ([{"frames": 10, "stream": {"gap_max": 1}}], "schedule[0].stream.gap_max", "must be >= gap_min"),
    ],
)
def test_bad_schedules_name_the_phase_and_key(schedule, key, text):
    with pytest.raises(SettingError) as info:
        StreamSettings(schedule=schedule)
    assert info.value.field == key and text in info.value.reason
    assert "\n" not in str(info.value)


def test_unknown_classes_are_named_when_the_stream_is_built(toy):
    with pytest.raises(SettingError, match=r"schedule\[1\]\.classes: unknown class 'class_9'"):
        make_stream(toy, "train", {"schedule": [{"frames": 5}, {"frames": 5, "classes": ["class_9"]}]}, num_lanes=2)
    with pytest.raises(SettingError, match=r"schedule\[0\]\.classes: unknown class 7"):
        make_stream(toy, "train", {"schedule": [{"frames": 5, "classes": [7]}]}, num_lanes=2)


def test_phase_settings_give_a_stationary_test_stream_of_one_phase(toy):
    settings = StreamSettings(schedule=SCHEDULE, gap_min=2, gap_max=9)
    one = settings.phase_settings(1)
    chunk = make_stream(toy, "test", one, num_lanes=8, seed=0).next_chunk(400)
    assert set(chunk.label[chunk.mask].tolist()) == {2}
    assert (chunk.phase == 0).all()
    with pytest.raises(ScheduleError, match="needs at least one phase"):
        Schedule.from_config([])


def test_the_envs_run_a_schedule_without_telling_the_learner_its_phase():
    import gymnasium

    import nrstream  # noqa: F401  (registers the ids)

    schedule = [{"frames": 40, "classes": [0, 1]}, {"frames": 40, "classes": [2, 3]}]
    envs = gymnasium.make_vec(
        "nrstream/Toy-v1", num_envs=4, frames_per_step=10, vectorization_mode="vector_entry_point",
        stream={"gap_min": 0, "gap_max": 2, "schedule": schedule},
    )  # fmt: skip
    _, info = envs.reset(seed=0)
    labels = [info["label"]]
    for _ in range(9):
        _, _, _, _, info = envs.step(torch.zeros(4, 10, dtype=torch.long))
        labels.append(info["label"])
    assert "phase" not in info  # task-free: the phase is for the metrics, not the learner
    seen = torch.cat(labels, 1)
    assert set(seen[:, :30].flatten().tolist()) <= {-1, 0, 1} and set(seen[:, 60:].flatten().tolist()) <= {-1, 2, 3}
    envs.close()
    asked = gymnasium.make_vec(
        "nrstream/Toy-v1", num_envs=4, frames_per_step=10, vectorization_mode="vector_entry_point",
        stream={"gap_min": 0, "gap_max": 2, "schedule": schedule}, info_phase=True,
    )  # fmt: skip
    _, info = asked.reset(seed=0)
    assert info["phase"].shape == (4, 10) and (info["phase"] == 0).all()
    asked.close()
    single = gymnasium.make("nrstream/Toy-v1", stream={"schedule": schedule}, info_phase=True)
    _, info = single.reset(seed=0)
    assert info["phase"].shape == () and int(info["phase"]) == 0
    assert "phase" not in gymnasium.make("nrstream/Toy-v1", stream={"schedule": schedule}).reset(seed=0)[1]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["together", "independent"])
def test_a_scheduled_stream_on_cuda_equals_the_one_on_the_cpu_bit_for_bit(toy, mode):
    def stream(device: str):
        settings = {"gap_min": 2, "gap_max": 9, "schedule": SCHEDULE, "schedule_lanes": mode}
        return make_stream(toy, "train", settings, num_lanes=37, seed=5, device=device)

    cpu = read(stream("cpu"), 1200, 1200)
    for size in (1, 100, 1200):
        cuda = read(stream("cuda"), 1200, size)
        assert cuda.x.device.type == "cuda"
        for name in FIELDS:
            assert torch.equal(getattr(cuda, name).cpu(), getattr(cpu, name)), (size, name)
