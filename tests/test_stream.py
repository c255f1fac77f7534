"""The endless stream: tiling, invariants, determinism, coverage."""

from __future__ import annotations

import math

import pytest
import torch

from nrstream.data.datasets import load_dataset, make_stream
from nrstream.stream.bank import SampleBank
from nrstream.stream.noise import GaussianNoise, RecordedNoise, SilenceNoise, make_noise
from nrstream.stream.stream import Chunk, GapLengths, Stream

FIELDS = ("x", "label", "mask", "start", "end", "sample_index", "sample_id")


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy", seed=3)


def read(stream: Stream, total: int, chunk: int) -> Chunk:
    parts, left = [], total
    while left > 0:
        parts.append(stream.next_chunk(min(chunk, left)))
        left -= chunk
    return Chunk.cat(parts)


def recordings() -> SampleBank:
    generator = torch.Generator().manual_seed(0)
    return SampleBank(torch.randn(3, 40, 8, generator=generator), torch.tensor([40, 17, 5]), torch.zeros(3), ["noise"])


@pytest.mark.parametrize("noise", ["gaussian", "silence", "recorded"])
def test_any_chunk_size_tiles_the_same_stream(toy, noise):
    def stream():
        reference = toy.splits["train"]
        source = make_noise(noise, reference, recordings(), seed=5)
        return Stream(toy.splits["train"], source, num_lanes=5, gaps=GapLengths(0, 9), seed=11)

    whole = read(stream(), 700, 700)
    for size in (1, 7, 100):
        tiled = read(stream(), 700, size)
        for name in FIELDS:
            assert torch.equal(getattr(tiled, name), getattr(whole, name)), (size, name)


def test_block_frames_is_a_speed_setting_only(toy):
    """``block_frames`` (events drawn per refill) changes nothing a reader sees, in any chunking."""

    def stream(block_frames: int | None = None) -> Stream:
        noise = make_noise("gaussian", toy.splits["train"], recordings(), seed=5)
        s = Stream(toy.splits["train"], noise, num_lanes=6, gaps=GapLengths(0, 9), seed=2)
        if block_frames is not None:
            s.block_frames = block_frames
        return s

    whole = read(stream(), 900, 900)
    for block_frames, size in ((1, 1), (7, 13), (58, 58), (5000, 100)):
        tiled = read(stream(block_frames), 900, size)
        for name in FIELDS:
            assert torch.equal(getattr(tiled, name), getattr(whole, name)), (block_frames, size, name)


def test_chunk_shapes_and_dtypes(toy):
    chunk = make_stream(toy, "test", num_lanes=3, gap_min=1, gap_max=4).next_chunk(50)
    assert chunk.x.shape == (3, 50, toy.feature_size) and chunk.x.dtype == torch.float32
    for name in FIELDS[1:]:
        value = getattr(chunk, name)
        assert value.shape == (3, 50)
        assert value.dtype == (torch.bool if name in ("mask", "start", "end") else torch.long)


def _runs(flags: torch.Tensor) -> list[tuple[bool, int]]:
    """Run-length encoding of a 1-D bool tensor."""
    out: list[tuple[bool, int]] = []
    for value in flags.tolist():
        if out and out[-1][0] == value:
            out[-1] = (value, out[-1][1] + 1)
        else:
            out.append((value, 1))
    return out


def test_labels_starts_ends_and_gaps_are_consistent(toy):
    bank = toy.splits["train"]
    gap_min, gap_max = 2, 6
    chunk = read(make_stream(toy, "train", num_lanes=4, seed=1, gap_min=gap_min, gap_max=gap_max), 2000, 64)
    assert torch.equal(chunk.label >= 0, chunk.mask)
    assert torch.equal(chunk.sample_id >= 0, chunk.mask)
    assert torch.equal(chunk.label[chunk.mask], bank.labels[chunk.sample_id[chunk.mask]])
    for lane in range(4):
        starts = chunk.start[lane].nonzero().flatten().tolist()
        ends = chunk.end[lane].nonzero().flatten().tolist()
        assert len(starts) >= len(ends) >= len(starts) - 1
        for s, e in zip(starts, ends, strict=False):
            sid = int(chunk.sample_id[lane, s])
            assert e - s + 1 == int(bank.lengths[sid])
            assert torch.equal(chunk.x[lane, s : e + 1], bank.features[sid, : e - s + 1])
            assert chunk.mask[lane, s : e + 1].all() and (chunk.sample_id[lane, s : e + 1] == sid).all()
        # every noise run between two samples lies within the gap bounds (a 0-length gap leaves no run)
        runs = _runs(chunk.mask[lane])
        for value, length in runs[1:-1]:
            if not value:
                assert gap_min <= length <= gap_max
        # sample_index counts the samples started so far
        assert torch.equal(chunk.sample_index[lane], torch.cumsum(chunk.start[lane].long(), 0))


def test_zero_gaps_give_back_to_back_samples(toy):
    chunk = read(make_stream(toy, "train", num_lanes=2, gap_min=0, gap_max=0), 300, 50)
    assert chunk.mask.all()
    assert torch.equal(chunk.start[:, 1:], chunk.end[:, :-1])


def test_same_seed_same_stream_other_seed_other_stream(toy):
    a = make_stream(toy, "train", num_lanes=3, seed=1, gap_min=0, gap_max=5).next_chunk(200)
    b = make_stream(toy, "train", num_lanes=3, seed=1, gap_min=0, gap_max=5).next_chunk(200)
    c = make_stream(toy, "train", num_lanes=3, seed=2, gap_min=0, gap_max=5).next_chunk(200)
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in FIELDS)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.label, c.label)


def test_lanes_cover_the_split_exactly_once_per_pass(toy):
    bank = toy.splits["test"]
    lanes = 16
    per_lane = math.ceil(len(bank) / lanes)
    stream = make_stream(toy, "test", num_lanes=lanes, seed=4, gap_min=0, gap_max=0)
    ids = []
    while int(stream.event.min()) < per_lane:
        chunk = stream.next_chunk(32)
        keep = chunk.start & (chunk.sample_index <= per_lane)
        ids.append(chunk.sample_id[keep])
    ids = torch.cat(ids)
    assert len(ids) == lanes * per_lane
    counts = torch.bincount(ids, minlength=len(bank))
    assert (counts >= 1).all(), "a pass over the split missed samples"
    assert counts.max() <= 2 and int((counts == 2).sum()) == lanes * per_lane - len(bank)


def test_state_dict_resumes_the_same_stream(toy):
    first = make_stream(toy, "train", num_lanes=3, seed=9, gap_min=0, gap_max=7)
    first.next_chunk(123)
    saved = first.state_dict()
    expected = first.next_chunk(77)
    second = make_stream(toy, "train", num_lanes=3, seed=9, gap_min=0, gap_max=7)
    second.load_state_dict(saved)
    resumed = second.next_chunk(77)
    assert all(torch.equal(getattr(expected, f), getattr(resumed, f)) for f in FIELDS)


def test_noise_sources():
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    gaussian = GaussianNoise(mean, std, seed=0, pool_size=50000)
    frames = gaussian.frames(torch.zeros(50000, dtype=torch.long), torch.arange(50000))
    assert torch.allclose(frames.mean(0), mean, atol=0.05) and torch.allclose(frames.std(0), std, rtol=0.03)
    silence = SilenceNoise(torch.tensor([0.25, 0.5]))
    assert torch.equal(silence.frames(torch.tensor([3, 4]), torch.tensor([0, 9])), torch.tensor([[0.25, 0.5]] * 2))
    recorded = RecordedNoise(recordings())
    key = torch.tensor([2 + 3 * 4])  # recording 2 (5 frames), starting at frame 4, wrapping round
    got = recorded.frames(key.expand(3), torch.arange(3))
    assert torch.equal(got, recordings().features[2, torch.tensor([4, 0, 1])])


def test_bad_arguments_name_the_value(toy):
    with pytest.raises(ValueError, match="min=3, max=1"):
        GapLengths(3, 1)
    with pytest.raises(ValueError, match="unknown noise kind 'pink'"):
        make_noise("pink", toy.splits["train"])
    with pytest.raises(ValueError, match="needs noise recordings"):
        make_noise("recorded", toy.splits["train"])
    with pytest.raises(ValueError, match="needs a noise source"):
        Stream(toy.splits["train"], None, 2, GapLengths(0, 3))
    with pytest.raises(ValueError, match="chunk length must be >= 1"):
        make_stream(toy, "train", num_lanes=1).next_chunk(0)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make_stream(toy, "dev", num_lanes=1)


def test_gaussian_noise_follows_the_training_statistics_computed_once(toy):
    mean, std = toy.splits["train"].feature_stats()
    assert toy.train_stats() is toy.train_stats()
    assert all(torch.equal(a, b) for a, b in zip(toy.train_stats(), (mean, std), strict=True))
    stream = make_stream(toy, "test", num_lanes=64, seed=0, gap_min=30, gap_max=30, noise_scale=2.0)
    chunk = stream.next_chunk(300)
    noise = chunk.x[~chunk.mask]
    assert torch.allclose(noise.mean(0), mean, atol=0.15)
    assert torch.allclose(noise.std(0), 2.0 * std, rtol=0.1)


def _digest(chunks: list[Chunk]) -> str:
    import hashlib

    h = hashlib.sha256()
    for chunk in chunks:
        for name in FIELDS:
            h.update(getattr(chunk, name).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# sha256 of every field's bytes of the first two 150-frame chunks, computed by the stream as it
# was before the issue-12 rewrite: any change of the stream's bytes must be deliberate (and
# change these values in the same commit, saying why)
PINNED = {
    ("gaussian", 0): "30d24fc487fbc703",
    ("gaussian", 1): "8686cbfc8ea210d0",
    ("gaussian", 2): "011ca2b812a0a7b9",
    ("silence", 0): "d00b5df39f755356",
    ("silence", 1): "670d26a70f27e432",
    ("silence", 2): "dbe72137437a3fca",
    ("recorded", 0): "9ff1e3c6ce4473d9",
    ("recorded", 1): "f950d93189f4acc1",
    ("recorded", 2): "e48bbd814b2a906b",
}


@pytest.mark.parametrize(("noise", "seed"), sorted(PINNED))
def test_stream_bytes_are_pinned(toy, noise, seed):
    source = make_noise(noise, toy.splits["train"], recordings(), seed=seed)
    stream = Stream(toy.splits["train"], source, num_lanes=5, gaps=GapLengths(2, 9), seed=seed)
    assert _digest([stream.next_chunk(150), stream.next_chunk(150)]) == PINNED[noise, seed]


@pytest.mark.parametrize(("noise", "digest"), [("gaussian", "bb5bc0668ddec838"), ("silence", "690669fd9de20eb2")])
def test_stream_bytes_are_pinned_over_many_passes(toy, noise, digest):
    # 16 lanes x ~90 samples over a 256-sample split: six passes, each its own permutation
    stream = make_stream(toy, "test", num_lanes=16, seed=7, gap_min=0, gap_max=30, noise=noise)
    assert _digest([stream.next_chunk(100) for _ in range(20)]) == digest


def test_a_bank_too_large_to_copy_gives_the_same_bytes(toy, monkeypatch):
    # banks over Stream.TABLE_COPY_BYTES are gathered in place, the noise apart, then selected
    monkeypatch.setattr(Stream, "TABLE_COPY_BYTES", 0)
    for noise, seed in [("gaussian", 0), ("recorded", 1)]:
        source = make_noise(noise, toy.splits["train"], recordings(), seed=seed)
        stream = Stream(toy.splits["train"], source, num_lanes=5, gaps=GapLengths(2, 9), seed=seed)
        assert stream._table is None
        assert _digest([stream.next_chunk(150), stream.next_chunk(150)]) == PINNED[noise, seed]


def test_small_blocks_of_events_give_the_same_bytes(toy, monkeypatch):
    # a block of drawn events shorter than a chunk's reach must still be refilled in time
    monkeypatch.setattr(Stream, "BLOCK_FRAMES", 1)
    stream = make_stream(toy, "test", num_lanes=16, seed=7, gap_min=0, gap_max=30, noise="silence")
    assert _digest([stream.next_chunk(100) for _ in range(20)]) == "690669fd9de20eb2"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("noise", ["gaussian", "silence", "recorded"])
def test_the_stream_on_cuda_equals_the_stream_on_the_cpu_bit_for_bit(toy, noise):
    def stream(device: str) -> Stream:
        bank = toy.splits["train"].to(device)
        source = make_noise(noise, toy.splits["train"], recordings(), seed=5).to(device)
        return Stream(bank, source, num_lanes=37, gaps=GapLengths(0, 9), seed=11)

    cpu = read(stream("cpu"), 3000, 3000)
    for size in (1, 100, 3000):
        cuda = read(stream("cuda"), 3000, size)
        assert cuda.x.device.type == "cuda"
        for name in FIELDS:
            assert torch.equal(getattr(cuda, name).cpu(), getattr(cpu, name)), (size, name)
    for seed in range(3):
        source = make_noise(noise, toy.splits["train"], recordings(), seed=seed).to("cuda")
        on_cuda = Stream(toy.splits["train"].to("cuda"), source, num_lanes=5, gaps=GapLengths(2, 9), seed=seed)
        assert _digest([on_cuda.next_chunk(150), on_cuda.next_chunk(150)]) == PINNED[noise, seed]
