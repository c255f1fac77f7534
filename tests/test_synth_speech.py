"""The synth_speech data source: espeak-ng renderings in the Speech Commands layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from nrstream_plugins.data import _speech_variation as variation
from nrstream_plugins.data import synth_speech as ss

from nrstream import DataNotFoundError
from nrstream.data.datasets import load_dataset, make_stream

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

WORDS = ["yes", "no", "up"]


@needs_espeak
def test_three_words_end_to_end_and_cached(tmp_cache, monkeypatch):
    data = ss.load_synth_speech(words=WORDS, renderings_per_word=5, progress=False)
    assert data.class_names == sorted(WORDS)
    assert data.sizes() == {"train": 9, "validation": 3, "test": 3}
    for bank in data.splits.values():
        assert bank.features.shape[1:] == (101, 40)
        assert bank.labels.bincount(minlength=3).tolist() == [len(bank) // 3] * 3
    assert data.info["source"] == "synth_speech" and data.info["words"] == WORDS
    assert {split: len(bank) for split, bank in data.noise.items()} == {"train": 6, "validation": 6, "test": 6}

    (root,) = (tmp_cache / "synth_speech").iterdir()
    assert (root / ".complete").is_file() and not list(root.parent.glob(".*.part"))
    val = set((root / "validation_list.txt").read_text().split())
    test = set((root / "testing_list.txt").read_text().split())
    speakers = lambda names: {n.split("/")[1].split("_")[0] for n in names}  # noqa: E731
    assert not speakers(val) & speakers(test)

    def no_espeak(*args, **kwargs):
        raise AssertionError("re-synthesised a cached corpus")

    monkeypatch.setattr(ss, "_render", no_espeak)
    monkeypatch.setattr(ss, "_speak", no_espeak)
    again = ss.load_synth_speech(words=WORDS, renderings_per_word=5, progress=False)
    assert again.info["cache"]["hit"]
    assert torch.equal(again.splits["train"].features, data.splits["train"].features)


@needs_espeak
def test_through_the_registry_into_a_stream(tmp_cache):
    data = load_dataset("synth_speech", words=WORDS, renderings_per_word=3, labels="12", progress=False)
    assert data.class_names[-2:] == ["_silence_", "_unknown_"] and data.num_classes == 12
    stream = make_stream(data, "train", num_lanes=2, gap_min=5, gap_max=20, noise="recorded")
    chunk = stream.next_chunk(300)
    assert chunk.x.shape == (2, 300, 40)
    labels = set(chunk.label.unique().tolist())
    assert -1 in labels and labels - {-1} <= {0, 1, 2, 10}  # yes, no, up, _silence_


def test_missing_espeak_says_how_to_install(tmp_cache, monkeypatch):
    monkeypatch.setattr(ss.shutil, "which", lambda name: None)
    with pytest.raises(DataNotFoundError, match="apt-get install espeak-ng"):
        ss.load_synth_speech(words=WORDS, renderings_per_word=3)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="renderings_per_word"):
        ss.load_synth_speech(words=WORDS, renderings_per_word=2)
    with pytest.raises(ValueError, match="-rf"):
        ss.load_synth_speech(words=["yes", "-rf"])


def test_yaml_booleans_as_words_get_a_hint():
    with pytest.raises(ValueError, match="quote yes/no/on/off in YAML"):
        ss.load_synth_speech(words=[True, False, "up"], renderings_per_word=3)


# --- acoustic variation (issue 14): noise under the word, a room, a gain -------------------------

TWO = ["yes", "no"]


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def _dry(word="yes", seed=0):
    import tempfile
    from pathlib import Path

    item = ss._plan([word], 3, seed)[-1]
    with tempfile.TemporaryDirectory() as tmp:
        return item, ss._speak(ss._espeak(), item, Path(tmp))


@needs_espeak
def test_varied_corpus_is_a_function_of_the_seed(tmp_path, monkeypatch):
    roots = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        monkeypatch.setenv("NRSTREAM_CACHE", str(tmp_path / name))
        roots[name] = ss.synthesize_corpus(TWO, 3, seed, variation="hard", progress=False)
    a, b, c = (_files(roots[n]) for n in "abc")
    assert a == b and len(a) == 6 + 6  # 2 words x 3 clips, 6 background noises
    assert {k: v for k, v in a.items() if not k.startswith("_")} != {
        k: v for k, v in c.items() if not k.startswith("_")
    }
    # the variation alone (same dry word, same plan entry) also follows the seed
    item, dry = _dry()
    options = variation.parse_variation("hard")
    one, p1 = ss._vary(0, item, dry, [dry], options, 0)
    again, p2 = ss._vary(0, item, dry, [dry], options, 0)
    other, p3 = ss._vary(0, item, dry, [dry], options, 1)
    assert np.array_equal(one, again) and p1 == p2
    assert p1 != p3 and not np.allclose(one, other)


@needs_espeak
def test_snr_of_a_written_clip_matches_the_drawn_one(tmp_cache):
    import json

    import soundfile

    root = ss.synthesize_corpus(TWO, 3, 0, variation={"snr_db": [0, 20]}, progress=False)
    drawn = {d["file"]: d for d in json.loads((root / "variation.json").read_text())}
    plan = ss._plan(TWO, 3, 0)
    options = variation.parse_variation({"snr_db": [0, 20]})
    pools = {s: [] for s in ("train", "validation", "test")}
    with tempfile_dir() as tmp:
        dry = [ss._speak(ss._espeak(), item, tmp) for item in plan]
    for d, item in zip(dry, plan, strict=True):
        pools[item["split"]].append(d)
    checked = 0
    for i, item in enumerate(plan):
        rng = np.random.default_rng([0, i, 0x5EED])
        params = variation.draw(options, rng)
        assert params == {k: v for k, v in drawn[item["file"]].items() if k != "file"}
        parts = variation.mix(dry[i], item["offset"], params, pools[item["split"]], rng)
        written, rate = soundfile.read(str(root / item["file"]), dtype="float64")
        assert rate == 16000 and written.shape == (16000,)
        assert np.abs(written - parts.clip).max() <= 1 / 32768 + 1e-9  # the file is the mix, to 16-bit precision
        measured = variation.snr_db(parts.speech, written - parts.speech, parts.start, parts.stop)
        assert abs(measured - params["snr_db"]) < 0.5, (item["file"], measured, params)
        assert 0 <= params["snr_db"] <= 20
        checked += 1
    assert checked == 6


def tempfile_dir():
    import tempfile
    from contextlib import contextmanager
    from pathlib import Path

    @contextmanager
    def cm():
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)

    return cm()


@needs_espeak
@pytest.mark.parametrize("kind", ["white", "pink", "brown", "babble"])
def test_snr_holds_for_every_noise_kind(kind):
    _, dry = _dry("no")
    for snr in (0.0, 7.5, 20.0):
        params = {"noise": kind, "snr_db": snr, "babble_talkers": 4, "rt60": 0.5, "drr_db": 3.0, "gain_db": 6.0}
        parts = variation.mix(dry, 0.3, params, [dry[::2], dry], np.random.default_rng(3))
        assert abs(variation.snr_db(parts.speech, parts.noise, parts.start, parts.stop) - snr) < 1e-6
        assert np.abs(parts.clip).max() <= 0.99 + 1e-12  # no clipping in the 16-bit file
        assert np.all(np.abs(parts.clip) > 0) or np.count_nonzero(parts.clip == 0) < 5  # no digital silence


@needs_espeak
def test_reverberation_changes_the_signal_and_keeps_its_length():
    _, dry = _dry("up")
    base = {"noise": "white", "snr_db": 20.0, "babble_talkers": 3, "drr_db": 0.0, "gain_db": 0.0}
    plain = variation.mix(dry, 0.0, {**base, "rt60": 0.0}, [dry], np.random.default_rng(1))
    room = variation.mix(dry, 0.0, {**base, "rt60": 0.6}, [dry], np.random.default_rng(1))
    assert plain.speech.shape == room.speech.shape == room.clip.shape == (16000,)
    stop = plain.stop
    assert np.array_equal(plain.speech[stop:], np.zeros(16000 - stop))  # dry: nothing after the word
    tail = np.mean(room.speech[stop : stop + 1600] ** 2) / np.mean(room.speech[: plain.stop] ** 2)
    assert tail > 1e-4  # the room rings on after the word (first 100 ms after it: above -40 dB; dry: 0)
    diff = np.linalg.norm(room.speech[:stop] - plain.speech[:stop]) / np.linalg.norm(plain.speech[:stop])
    assert diff > 0.3


def test_room_impulse_has_the_drawn_decay_and_direct_to_reverberant_ratio():
    h = variation.room_impulse(0.5, 6.0, np.random.default_rng(0))
    assert h.shape == (8001,) and h[0] == 1.0 and np.all(h[1:17] == 0)  # 1 ms before the first reflection
    assert abs(10 * np.log10(1 / np.sum(h[1:] ** 2)) - 6.0) < 1e-9
    early, late = np.mean(h[17:817] ** 2), np.mean(h[-800:] ** 2)  # first and last 50 ms of the tail
    assert 45 < 10 * np.log10(early / late) < 65  # about 57 dB apart for an RT60 of 0.5 s (60 dB at 0.5 s)


OLD_FIELDS = ["words", "renderings_per_word", "seed", "espeak", "generator", "voices", "variants"]


@needs_espeak
def test_cache_key_follows_the_options_and_none_keeps_the_old_key(tmp_cache):
    import hashlib
    import json

    old = {
        "words": TWO,
        "renderings_per_word": 3,
        "seed": 0,
        "espeak": ss._espeak_version(ss._espeak()),
        "generator": 1,
        "voices": ss.VOICES,
        "variants": ss.VARIANTS,
    }
    old_key = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]  # the formula before issue 14
    assert ss.corpus_config(TWO, 3, 0, None) == old and sorted(old) == sorted(OLD_FIELDS)
    assert ss.corpus_key(ss.corpus_config(TWO, 3, 0, None)) == old_key
    hard = ss.corpus_key(ss.corpus_config(TWO, 3, 0, variation.parse_variation("hard")))
    softer = ss.corpus_key(ss.corpus_config(TWO, 3, 0, variation.parse_variation({"snr_db": [10, 30]})))
    dry_room = ss.corpus_key(ss.corpus_config(TWO, 3, 0, variation.parse_variation({"rt60": [0, 0]})))
    assert len({old_key, hard, softer, dry_room}) == 4
    assert variation.parse_variation({}) == variation.parse_variation("hard") == variation.HARD
    # "none" lands in the old folder, the loader's default ("hard") in its own
    ss.synthesize_corpus(TWO, 3, 0, variation="none", progress=False)
    data = ss.load_synth_speech(words=TWO, renderings_per_word=3, progress=False)
    assert sorted(p.name for p in (tmp_cache / "synth_speech").iterdir()) == sorted([old_key, hard])
    assert data.info["variation"] == variation.HARD
    assert not (tmp_cache / "synth_speech" / old_key / "variation.json").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("loud", "variation must be 'none', 'hard' or a mapping"),
        ({"snr": [0, 20]}, r"unknown option\(s\) \['snr'\]"),
        ({"snr_db": [20, 0]}, "variation.snr_db must be \\[low, high\\] with low <= high"),
        ({"rt60": 0.5}, r"variation.rt60 must be \[low, high\]"),
        ({"noise": ["pink", "traffic"]}, "variation.noise must be a non-empty list of"),
        ({"babble_talkers": [0, 2]}, "babble_talkers must be >= 1"),
    ],
)
def test_bad_variation_options_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        ss.load_synth_speech(words=WORDS, renderings_per_word=3, variation=value)
