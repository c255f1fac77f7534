"""Domain-incremental scene schedules (issue 27, item 1): phases change SNR, level, background and speakers."""

from __future__ import annotations

import hashlib

import pytest
import torch

from nrstream.data.datasets import clear_dataset_cache, load_dataset, make_stream
from nrstream.stream.scene import db
from nrstream.stream.settings import SettingError, StreamSettings
from nrstream.stream.stream import Chunk, Stream

FIELDS = ("x", "label", "mask", "start", "end", "sample_index", "sample_id", "phase")
# toy: amplitude view (the features are the linear domain), a Gaussian background
SNR_LEVEL = [
    {"frames": 400, "stream": {"snr_db": [30, 30], "level_db": [0, 0]}},
    {"frames": 10**6, "blend": 200, "stream": {"snr_db": [0, 0], "level_db": [12, 12]}},
]
DOMAINS = [
    {"name": "clean", "frames": 300, "stream": {"snr_db": [20, 30]}},
    {"name": "hard", "frames": 300, "blend": 100, "stream": {"snr_db": [-5, 0], "noise_scale": 3.0}},
    {"name": "loud", "frames": 200, "blend": 50, "stream": {"level_db": [6, 12]}},
    {"name": "clean", "frames": 300, "blend": 100, "stream": {"snr_db": [20, 30]}},
]


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy", seed=3)


@pytest.fixture(scope="module")
def speech(speech_sample):
    return load_dataset("speech_commands", root=str(speech_sample))


@pytest.fixture(scope="module")
def fsdd(fsdd_sample, tmp_path_factory):
    """The FSDD subset, featurised once into a private cache (``info["sample_speaker"]``: a speaker per sample)."""
    cache = tmp_path_factory.mktemp("fsdd_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NRSTREAM_CACHE", str(cache))
        mp.setenv("NRSTREAM_DATA", str(cache / "no-data"))
        yield load_dataset("fsdd", root=str(fsdd_sample))
    clear_dataset_cache()


def read(stream: Stream, total: int, chunk: int) -> Chunk:
    parts, left = [], total
    while left > 0:
        parts.append(stream.next_chunk(min(chunk, left)))
        left -= chunk
    return Chunk.cat(parts)


def toy_scene(toy, schedule, lanes=6, seed=2, **changes) -> Stream:
    settings = {"background": "gaussian", "gap_min": 0, "gap_max": 6, "schedule": schedule, **changes}
    return make_stream(toy, "train", settings, num_lanes=lanes, seed=seed)


def parts(toy, schedule, length, **options):
    """A chunk of ``length`` frames and, per frame, its background and level (amplitude view: ``x = level * bg``)."""
    stream = toy_scene(toy, schedule, **options)
    chunk = stream.next_chunk(length)
    twin = toy_scene(toy, schedule, **options)  # at frame 0: the background rows of the same frames
    bg = twin.scene.background_rows.double()[twin._background_rows(length, chunk.phase)]  # [B, T, F]
    level = stream._level.double()
    level = level.expand(-1, length) if level.shape[1] == 1 else level.gather(1, chunk.phase)  # [B, T]
    return stream, chunk, bg, level


def measured_snr(chunk: Chunk, bg: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per complete sample (toy: the whole sample is voiced): its SNR computed back from the parts, and its phase."""
    x = chunk.x.double() / level[..., None]
    part = (x - bg).square().sum(-1) * chunk.mask  # sample frame power, [B, T]
    noise = bg.square().sum(-1) * chunk.mask
    lanes, length = chunk.label.shape
    key = (torch.arange(lanes)[:, None] * 10**6 + chunk.sample_index).flatten()
    index = torch.unique(key, return_inverse=True)[1]
    size = int(index.max()) + 1
    sums = [torch.zeros(size, dtype=torch.float64).index_add_(0, index, v.flatten()) for v in (part, noise)]
    starts = torch.zeros(size, dtype=torch.bool).index_put_((index[chunk.start.flatten()],), torch.tensor(True))
    ends = torch.zeros(size, dtype=torch.bool).index_put_((index[chunk.end.flatten()],), torch.tensor(True))
    mask = chunk.mask.flatten()  # (lane, sample_index) also holds the gap after the sample: another event
    phase = torch.zeros(size, dtype=torch.long).index_put_((index[mask],), chunk.phase.flatten()[mask])
    whole = starts & ends  # samples begun and ended inside the chunk
    return db(sums[0][whole] / sums[1][whole]), phase[whole]


# -- the draws of each phase, exactly ---------------------------------------------------------


def test_each_phase_draws_its_own_snr_exactly(toy):
    _, chunk, bg, level = parts(toy, SNR_LEVEL, 1200, lanes=16)
    snr, phase = measured_snr(chunk, bg, level)
    assert (phase == 0).sum() >= 100 and (phase == 1).sum() >= 100
    assert torch.allclose(snr[phase == 0], torch.tensor(30.0, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(snr[phase == 1], torch.tensor(0.0, dtype=torch.float64), atol=1e-3)


def test_each_phase_scales_the_mix_by_its_own_level(toy):
    stream, chunk, bg, _ = parts(toy, SNR_LEVEL, 1200, lanes=16)
    assert stream._level.shape == (16, 2)
    gaps = ~chunk.mask
    ratio = chunk.x.double()[gaps] / bg[gaps]  # on gap frames x = level * background, feature by feature
    expected = torch.tensor([1.0, 10 ** (12 / 20)], dtype=torch.float64)[chunk.phase[gaps]]  # amplitude gain
    assert torch.allclose(ratio, expected[:, None].expand_as(ratio), rtol=1e-5)
    # the level changes where an event (its gap) begins, never inside one: phases change only at event starts
    event_start = chunk.mask[:, :-1] & (~chunk.mask[:, 1:] | chunk.start[:, 1:])  # a gap, or a sample right after one
    changes = chunk.phase[:, 1:] != chunk.phase[:, :-1]
    assert changes.any() and not (changes & ~event_start).any()


def test_a_lane_keeps_its_place_in_each_phases_level_range(toy):
    schedule = [{"frames": 10**6, "stream": {"level_db": [-6, 6]}}, {"frames": 10, "stream": {"level_db": [6, 18]}}]
    stream = toy_scene(toy, schedule, lanes=32, level_db=[-6, 6])
    gain_db = 20 * torch.log10(stream._level.double())  # amplitude gains: 20 log10
    assert torch.allclose(gain_db[:, 1] - gain_db[:, 0], torch.tensor(12.0, dtype=torch.float64), atol=1e-4)
    assert gain_db[:, 0].min() >= -6 and gain_db[:, 0].max() <= 6 and gain_db[:, 0].std() > 2


def test_a_blend_mixes_the_two_phases_domains_with_its_fraction(toy):
    # 2,000 lanes, gaps of 0: the blend runs over frames 400..600; an event is of the new phase with p = t / 200
    _, chunk, bg, level = parts(toy, SNR_LEVEL, 700, lanes=2000, gap_max=0)
    snr, phase = measured_snr(chunk, bg, level)
    assert torch.allclose(snr, torch.where(phase == 0, 30.0, 0.0).double(), atol=1e-3)  # each event, its phase's SNR
    frame = torch.arange(700).expand(2000, -1)
    for at, expected in ((450, 0.25), (500, 0.5), (550, 0.75)):
        window = chunk.start & (frame >= at - 10) & (frame < at + 10)
        share = chunk.phase[window].double().mean().item()
        assert abs(share - expected) < 0.03, (at, share)
    assert (chunk.phase[chunk.start & (frame < 400)] == 0).all()
    assert (chunk.phase[chunk.start & (frame >= 600)] == 1).all()


def test_a_phase_changes_the_background_kind(speech):
    # the recorded background, then a Gaussian one: gap frames are exactly the phase's background, levelled
    schedule = [{"frames": 500}, {"frames": 10**6, "stream": {"background": "gaussian", "snr_db": [10, 10]}}]
    settings = {"background": "recorded", "gap_min": 5, "gap_max": 30, "level_db": [0, 0], "schedule": schedule}
    stream = make_stream(speech, "train", settings, num_lanes=4, seed=1)
    twin = make_stream(speech, "train", settings, num_lanes=4, seed=1)
    assert len(stream.scene.backgrounds) == 2 and stream.scene.background_base[1] > 0
    chunk = stream.next_chunk(1500)
    rows = twin._background_rows(1500, chunk.phase)
    table = stream.scene.background_rows
    base = stream.scene.background_base[1]
    assert ((rows < base) == (chunk.phase == 0)).all()  # each frame reads its phase's source
    view = stream.scene.view
    gaps = ~chunk.mask
    assert torch.allclose(view.to_linear(chunk.x[gaps]), table[rows[gaps]], rtol=1e-4, atol=1e-6)
    assert (chunk.phase == 0).any() and (chunk.phase == 1).any()


def test_a_phase_scales_a_gaussian_background(toy):
    schedule = [{"frames": 600}, {"frames": 10**6, "stream": {"noise_scale": 3.0}}]
    chunk = toy_scene(toy, schedule, lanes=32, level_db=[0, 0]).next_chunk(1200)
    gaps = ~chunk.mask
    spread = [chunk.x[gaps & (chunk.phase == p)].std().item() for p in (0, 1)]
    assert spread[1] > 2.5 * spread[0]


# -- determinism, chunk invariance, and the streams that use none of it ------------------------


@pytest.mark.parametrize("mode", ["together", "independent"])
def test_a_domain_schedule_is_the_same_whatever_the_chunk_size_and_a_function_of_its_seed(toy, mode):
    whole = read(toy_scene(toy, DOMAINS, lanes=7, schedule_lanes=mode), 1300, 1300)
    assert set(whole.phase.unique().tolist()) == {0, 1, 2, 3}
    for size in (1, 13, 256):
        tiled = read(toy_scene(toy, DOMAINS, lanes=7, schedule_lanes=mode), 1300, size)
        for name in FIELDS:
            assert torch.equal(getattr(whole, name), getattr(tiled, name)), (size, name)
    again = read(toy_scene(toy, DOMAINS, lanes=7, schedule_lanes=mode), 1300, 100)
    other = read(toy_scene(toy, DOMAINS, lanes=7, seed=3, schedule_lanes=mode), 1300, 100)
    assert all(torch.equal(getattr(whole, n), getattr(again, n)) for n in FIELDS)
    assert not torch.equal(whole.x, other.x)


def test_a_background_schedule_on_recorded_audio_tiles_and_resumes(speech):
    schedule = [
        {"frames": 700, "stream": {"snr_db": [10, 20]}},
        {"frames": 700, "blend": 300, "stream": {"background": "gaussian", "snr_db": [0, 5], "level_db": [-12, -6]}},
    ]
    settings = {"background": "recorded", "gap_min": 5, "gap_max": 30, "schedule": schedule}

    def stream() -> Stream:
        return make_stream(speech, "train", settings, num_lanes=5, seed=4)

    whole = read(stream(), 2400, 2400)  # past a background segment boundary (2,000 frames)
    for size in (37, 500):
        tiled = read(stream(), 2400, size)
        for name in FIELDS:
            assert torch.equal(getattr(whole, name), getattr(tiled, name)), (size, name)
    first = stream()
    first.next_chunk(1100)
    resumed = stream()
    resumed.load_state_dict(first.state_dict())
    expected, got = first.next_chunk(600), resumed.next_chunk(600)
    assert all(torch.equal(getattr(expected, n), getattr(got, n)) for n in FIELDS)


def _digest(chunk: Chunk) -> str:
    h = hashlib.sha256()
    for name in FIELDS:
        h.update(getattr(chunk, name).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# sha256 of every field of 5 lanes x 600 frames (seed 7), computed before phases could change the scene
# (commit 087d5f2): streams that use no new phase field must keep their bytes
PINNED_SCENES = {
    "stationary": ({"background": "gaussian", "snr_db": [0, 20]}, "5b80b9aef2b5a374"),
    "gaps_only": (
        {
            "background": "gaussian",
            "schedule": [
                {"frames": 300, "classes": [0, 1]},
                {"frames": 400, "blend": 100, "stream": {"gap_min": 0, "gap_max": 3}},
            ],
        },  # fmt: skip
        "bccf32976eb9a856",
    ),
}


@pytest.mark.parametrize("case", sorted(PINNED_SCENES))
def test_scene_streams_without_scene_phases_keep_their_bytes(toy, case):
    settings, digest = PINNED_SCENES[case]
    assert _digest(make_stream(toy, "train", settings, num_lanes=5, seed=7).next_chunk(600)) == digest


def test_a_phase_that_repeats_the_streams_scene_reads_the_stationary_draws(toy):
    stationary = {"background": "gaussian", "snr_db": [5, 15], "level_db": [-3, 3]}
    same = {**stationary, "schedule": [{"frames": 10**6, "stream": {"snr_db": [5, 15], "level_db": [-3, 3]}}]}
    a = make_stream(toy, "train", stationary, num_lanes=5, seed=7).next_chunk(600)
    b = make_stream(toy, "train", same, num_lanes=5, seed=7).next_chunk(600)
    assert all(torch.equal(getattr(a, n), getattr(b, n)) for n in FIELDS)


# -- speakers (fsdd records one per sample) ---------------------------------------------------


def test_a_phase_draws_only_its_speakers_samples_each_once_per_pass(fsdd):
    speaker = torch.tensor(fsdd.info["sample_speaker"]["test"])
    assert fsdd.info["speakers"] == ["george", "jackson", "nicolas", "yweweler"]
    schedule = [{"frames": 10**6, "speakers": ["jackson", 3], "classes": ["zero", "one", "two"]}]
    stream = make_stream(fsdd, "test", {"gap_min": 0, "gap_max": 0, "schedule": schedule}, num_lanes=1, seed=2)
    bank = fsdd.splits["test"]
    rows = torch.nonzero(((speaker == 1) | (speaker == 3)) & (bank.labels <= 2)).flatten()
    n = len(rows)
    assert n == 30  # 2 speakers x 3 digits x 5 takes
    chunk = read(stream, 101 * 2 * n, 512)
    ids = chunk.sample_id[chunk.start]
    assert len(ids) == 2 * n
    for one_pass in (ids[:n], ids[n:]):
        assert torch.equal(torch.sort(one_pass).values, rows)
    assert torch.bincount(speaker[ids], minlength=4).tolist() == [0, 2 * 15, 0, 2 * 15]


def test_speaker_phases_switch_voices_in_a_scene(fsdd):
    schedule = [{"frames": 1000, "speakers": ["george"]}, {"frames": 10**6, "speakers": ["nicolas", "yweweler"]}]
    settings = {"background": "recorded", "gap_min": 0, "gap_max": 0, "schedule": schedule}
    chunk = read(make_stream(fsdd, "train", settings, num_lanes=8, seed=0), 2500, 500)
    speaker = torch.tensor(fsdd.info["sample_speaker"]["train"])
    frame = torch.arange(2500).expand(8, -1)
    before, after = chunk.start & (frame < 1000), chunk.start & (frame >= 1000)
    assert set(speaker[chunk.sample_id[before]].tolist()) == {0}
    assert set(speaker[chunk.sample_id[after]].tolist()) == {2, 3}


def test_speakers_are_checked_against_the_data_set(fsdd, toy, fsdd_sample):
    unknown = r"^stream setting schedule\[1\]\.speakers: unknown speaker 'jakson'; did you mean 'jackson'\?"
    with pytest.raises(SettingError, match=unknown):
        make_stream(fsdd, "test", {"schedule": [{"frames": 5}, {"frames": 5, "speakers": ["jakson"]}]}, num_lanes=2)
    with pytest.raises(SettingError, match=r"schedule\[0\]\.speakers: data source 'toy' records no speaker per"):
        make_stream(toy, "test", {"schedule": [{"frames": 5, "speakers": ["george"]}]}, num_lanes=2)
    # the speaker-disjoint split (the fixture's feature cache): george's takes are the whole test set
    disjoint = load_dataset("fsdd", root=str(fsdd_sample), split="speakers", test_speakers=["george"])
    with pytest.raises(SettingError, match=r"schedule\[0\]\.speakers: the split has no sample by speakers"):
        make_stream(disjoint, "test", {"schedule": [{"frames": 5, "speakers": ["jackson"]}]}, num_lanes=2)


# -- bad values: one line naming schedule[i].KEY ----------------------------------------------


@pytest.mark.parametrize(
    ("background", "phase", "key", "text"),
    [
        ("recorded", {"stream": {"snr_db": [5, 0]}}, "schedule[0].stream.snr_db", "needs -120 <= low <= high <= 120"),
        ("recorded", {"stream": {"level_db": [0, 500]}}, "schedule[0].stream.level_db", "got [0, 500]"),
        ("recorded", {"stream": {"snr_db": 5}}, "schedule[0].stream.snr_db", "expected [low, high] in dB, got 5"),
        ("recorded", {"stream": {"background": "rain"}}, "schedule[0].stream.background", "unknown background 'rain'"),
        ("recorded", {"stream": {"background": "none"}}, "schedule[0].stream.background", "cannot turn the scene off"),
        ("recorded", {"stream": {"noise_scale": 2.0}}, "schedule[0].stream.noise_scale", "background is recorded"),
        ("none", {"stream": {"snr_db": [0, 5]}}, "schedule[0].stream.snr_db", "paper-style stream"),
        ("none", {"stream": {"background": "recorded"}}, "schedule[0].stream.background", "paper-style stream"),
        ("none", {"speakers": []}, "schedule[0].speakers", "is empty"),
        ("none", {"speakers": ["a", "a"]}, "schedule[0].speakers", "lists a speaker twice"),
        ("none", {"speakers": "george"}, "schedule[0].speakers", "expected a list of speaker names"),
    ],
)
def test_bad_scene_phases_name_the_phase_and_key(background, phase, key, text):
    with pytest.raises(SettingError) as info:
        StreamSettings(background=background, schedule=[{"frames": 10, **phase}])
    assert info.value.field == key and text in info.value.reason, str(info.value)
    assert "\n" not in str(info.value)


def test_a_recurring_phase_must_recur_with_the_same_scene():
    with pytest.raises(SettingError, match=r"schedule\[1\]\.name: 'clean' is also schedule\[0\] with other"):
        StreamSettings(
            background="recorded",
            schedule=[
                {"name": "clean", "frames": 5, "stream": {"snr_db": [10, 20]}},
                {"name": "clean", "frames": 5, "stream": {"snr_db": [0, 5]}},
            ],
        )
    settings = StreamSettings(background="gaussian", schedule=DOMAINS)
    assert settings.timeline.task_of == [0, 1, 2, 0]
    assert settings.schedule[0]["stream"]["snr_db"] == [20.0, 30.0]  # normalised: floats, as the stream's own


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_domain_schedule_on_cuda_matches_the_cpu(speech):
    # the same events, phases, labels and rows; the mix agrees up to the devices' exp/log rounding
    schedule = [
        {"frames": 700, "stream": {"snr_db": [10, 20]}},
        {"frames": 700, "blend": 300, "stream": {"background": "gaussian", "snr_db": [0, 5], "level_db": [-12, -6]}},
    ]
    settings = {"background": "recorded", "gap_min": 5, "gap_max": 30, "schedule": schedule}
    cpu = read(make_stream(speech, "train", settings, num_lanes=6, seed=5), 2400, 300)
    cuda = read(make_stream(speech, "train", settings, num_lanes=6, seed=5, device="cuda"), 2400, 100)
    for name in FIELDS[1:]:
        assert torch.equal(getattr(cuda, name).cpu(), getattr(cpu, name)), name
    torch.testing.assert_close(cuda.x.cpu(), cpu.x, rtol=1e-4, atol=1e-4)


def test_a_phase_background_without_power_names_the_phase(toy):
    schedule = [{"frames": 300, "stream": {}}, {"frames": 300, "stream": {"background": "silence"}}]
    message = r"^stream setting schedule\[1\]\.stream\.background: silence: the background has no power"
    with pytest.raises(ValueError, match=message):
        toy_scene(toy, schedule)
