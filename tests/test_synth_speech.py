"""The synth_speech data source: espeak-ng renderings in the Speech Commands layout."""

from __future__ import annotations

import shutil

import pytest
import torch
from nrstream_plugins.data import synth_speech as ss

from nrstream import DataNotFoundError
from nrstream.datasets import load_dataset, make_stream

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
