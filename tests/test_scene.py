"""Acoustic-scene streams (issue 16): background under everything, samples at an SNR, real extents."""

from __future__ import annotations

import math

import pytest
import torch

from nrstream.data.audio import FeatureFrontend
from nrstream.data.datasets import load_dataset, make_stream
from nrstream.stream import counter_rng
from nrstream.stream.scene import linear_view
from nrstream.stream.stream import _SNR, Chunk, Stream

FIELDS = ("x", "label", "mask", "start", "end", "sample_index", "sample_id")
SNR = (0.0, 20.0)


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy", seed=3)


@pytest.fixture(scope="module")
def speech(speech_sample):
    return load_dataset("speech_commands", root=str(speech_sample))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("NRSTREAM_CACHE")
    os.environ["NRSTREAM_CACHE"] = str(cache)
    try:
        from nrstream_plugins.data.synth_speech import load_synth_speech

        # the plain corpus (issue 14 made noisy, reverberant renderings the default): its clips hold digital silence
        return load_synth_speech(words=["yes", "no", "up"], renderings_per_word=3, variation="none", progress=False)
    finally:
        if old is None:
            del os.environ["NRSTREAM_CACHE"]
        else:
            os.environ["NRSTREAM_CACHE"] = old


def scene(dataset, split="train", lanes=6, seed=0, background="recorded", **options) -> Stream:
    options = {"gap_min": 5, "gap_max": 30, "snr_db": SNR, **options}
    return make_stream(dataset, split, num_lanes=lanes, seed=seed, background=background, **options)


def read(stream: Stream, total: int, chunk: int) -> Chunk:
    parts, left = [], total
    while left > 0:
        parts.append(stream.next_chunk(min(chunk, left)))
        left -= chunk
    return Chunk.cat(parts)


def silence_features(dataset) -> torch.Tensor:
    """``[F]``: the features of digital silence (a zero waveform), as the data set holds them."""
    view = linear_view(dataset)
    if not view.power:
        return torch.zeros(dataset.feature_size)
    keys = ("kind", "sample_rate", "window_ms", "hop_ms", "n_mels", "n_fft", "f_min", "f_max", "log_offset")
    frontend = FeatureFrontend(**{k: v for k, v in dataset.info["frontend"].items() if k in keys})
    with torch.no_grad():
        return (frontend(torch.zeros(frontend.sample_rate))[0] - view.mean) / view.std


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("source", ["toy", "synth", "speech"])
def test_no_frame_of_a_scene_stream_is_digital_silence(source, seed, request):
    dataset = request.getfixturevalue(source)
    background = "gaussian" if source == "toy" else "recorded"
    silence = silence_features(dataset)
    chunk = read(scene(dataset, seed=seed, background=background), 600, 200)
    distance = (chunk.x - silence).abs().amax(-1)
    assert chunk.mask.any() and (~chunk.mask).any()
    assert distance.min() > 1e-3, f"a frame of the {source} scene stream is digital silence"
    if source != "toy":  # the paper-style stream of the same clips does hold digital silence (the issue)
        paper = read(make_stream(dataset, "train", num_lanes=6, seed=seed, gap_min=5, gap_max=30), 600, 200)
        assert ((paper.x - silence).abs().amax(-1) < 1e-3).any() or source == "speech"


@pytest.mark.parametrize(("source", "background"), [("speech", "recorded"), ("toy", "gaussian"), ("synth", "recorded")])
def test_the_snr_computed_back_from_the_parts_is_the_drawn_one(source, background, request):
    dataset = request.getfixturevalue(source)
    seed, lanes, length = 4, 5, 700
    stream = scene(dataset, lanes=lanes, seed=seed, background=background)
    sc, view = stream.scene, stream.scene.view
    background_rows = stream._background_rows(length)
    chunk = stream.next_chunk(length)
    mixed = view.to_linear(chunk.x.double())
    bg = sc.background_rows.double()[background_rows] * stream._level.double()[..., None]
    part = mixed - bg
    checked = 0
    for lane in range(lanes):
        starts = chunk.start[lane].nonzero().flatten().tolist()
        ends = chunk.end[lane].nonzero().flatten().tolist()
        for s in starts:
            e = next((e for e in ends if e >= s), None)
            if e is None:
                continue
            sid = int(chunk.sample_id[lane, s])
            voiced = slice(s, s + int(sc.voiced[sid]))
            measured = view.frame_power(part[lane, voiced]).mean() / view.frame_power(bg[lane, voiced]).mean()
            k = int(chunk.sample_index[lane, s]) - 1
            u = float(counter_rng.hash32(seed, _SNR, lane, k)) / 2**32
            drawn = SNR[0] + (SNR[1] - SNR[0]) * u
            assert abs(10 * math.log10(float(measured)) - drawn) < 0.5, (lane, k, drawn)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize(("source", "background"), [("speech", "recorded"), ("toy", "gaussian"), ("speech", "silence")])
def test_scene_streams_are_the_same_for_any_chunk_size_and_seeded(source, background, request):
    dataset = request.getfixturevalue(source)
    whole = read(scene(dataset, seed=3, background=background), 900, 900)
    for size in (1, 37, 300):
        tiled = read(scene(dataset, seed=3, background=background), 900, size)
        for name in FIELDS:
            assert torch.equal(getattr(tiled, name), getattr(whole, name)), (size, name)
    other = read(scene(dataset, seed=4, background=background), 900, 900)
    assert not torch.equal(other.x, whole.x)


def test_scene_streams_cover_the_split_once_per_pass(speech):
    bank = speech.splits["test"]
    lanes = 8
    per_lane = math.ceil(len(bank) / lanes)
    stream = scene(speech, "test", lanes=lanes, seed=2, gap_min=0, gap_max=0)
    ids = []
    while int(stream.event.min()) < per_lane:
        chunk = stream.next_chunk(64)
        ids.append(chunk.sample_id[chunk.start & (chunk.sample_index <= per_lane)])
    counts = torch.bincount(torch.cat(ids), minlength=len(bank))
    assert (counts >= 1).all() and counts.sum() == lanes * per_lane


@pytest.mark.parametrize("tail", [0, 10])
def test_the_decision_frame_lies_within_the_tail_after_the_voiced_part(speech, tail):
    trim_db = 40.0
    bank = speech.splits["train"]
    view = linear_view(speech)
    chunk = read(scene(speech, seed=1, tail=tail, trim_db=trim_db), 1500, 500)
    # the voiced part, computed here from the clips: frames within trim_db of the loudest whose power, averaged
    # over the 5 frames around them, is 6 dB above the clip's floor (its 20th-percentile frame power; issue 24)
    power = view.frame_power(view.to_linear(bank.features))
    loud = power >= power.amax(1, keepdim=True) * 10 ** (-trim_db / 10)
    for i, row in enumerate(power[:, : int(bank.lengths.min())].tolist()):  # every clip here is 101 frames
        assert len(row) == int(bank.lengths[i])
        floor = sorted(row)[int((len(row) - 1) * 0.2)]
        for t in range(len(row)):
            window = row[max(0, t - 2) : t + 3]
            loud[i, t] &= sum(window) / len(window) >= floor * 10 ** (6 / 10)
    checked = 0
    for lane in range(chunk.batch_size):
        starts = chunk.start[lane].nonzero().flatten().tolist()
        for e in chunk.end[lane].nonzero().flatten().tolist():
            s = max((s for s in starts if s <= e), default=None)
            if s is None:
                continue
            sid = int(chunk.sample_id[lane, e])
            voiced = loud[sid].nonzero().flatten()
            first, last = int(voiced[0]), int(voiced[-1])
            decision = first + (e - s)  # the clip frame scored
            assert last <= decision <= min(last + tail, int(bank.lengths[sid]) - 1), (sid, first, last, decision)
            checked += 1
    assert checked >= 10


def test_a_background_without_power_is_refused(toy):
    with pytest.raises(ValueError, match="background has no power"):
        scene(toy, background="silence")


def test_background_none_is_the_paper_style_stream(toy):
    plain = make_stream(toy, "train", num_lanes=4, seed=2, gap_min=2, gap_max=9).next_chunk(300)
    none = make_stream(toy, "train", num_lanes=4, seed=2, gap_min=2, gap_max=9, background="none").next_chunk(300)
    assert all(torch.equal(getattr(plain, f), getattr(none, f)) for f in FIELDS)


def test_a_scene_stream_resumes_from_its_state_dict(speech):
    first = scene(speech, seed=9)
    first.next_chunk(2345)  # past a background segment boundary (2,000 frames)
    saved = first.state_dict()
    expected = first.next_chunk(300)
    second = scene(speech, seed=9)
    second.load_state_dict(saved)
    resumed = second.next_chunk(300)
    assert all(torch.equal(getattr(expected, f), getattr(resumed, f)) for f in FIELDS)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_scene_stream_on_cuda_matches_the_cpu(speech):
    # the same events, labels and rows; the mix agrees up to the devices' exp/log rounding
    cpu = read(scene(speech, seed=5), 1200, 300)
    cuda = read(
        make_stream(
            speech,
            "train",
            num_lanes=6,
            seed=5,
            gap_min=5,
            gap_max=30,
            snr_db=SNR,
            background="recorded",
            device="cuda",
        ),
        1200,
        100,
    )
    for name in FIELDS[1:]:
        assert torch.equal(getattr(cuda, name).cpu(), getattr(cpu, name)), name
    torch.testing.assert_close(cuda.x.cpu(), cpu.x, rtol=1e-4, atol=1e-4)
