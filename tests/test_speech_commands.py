"""The speech_commands data source on the real 300-clip v0.01 sample."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from nrstream_plugins.data import speech_commands as sc

from nrstream import DataNotFoundError
from nrstream.data.cache import CacheWarning
from nrstream.errors import DataFileError
from nrstream.plugin.registry import get_registry

WORDS = ["bed", "no", "yes", "cat"]


def _mini(sample: Path, dest: Path, per_word: int = 3) -> Path:
    """A small copy: ``per_word`` clips of four words (first in validation, second in testing), 1 noise file."""
    dest.mkdir(parents=True)
    val, test = [], []
    for word in WORDS:
        (dest / word).mkdir()
        for i, clip in enumerate(sorted((sample / word).glob("*.wav"))[:per_word]):
            shutil.copy(clip, dest / word / clip.name)
            (val if i == 0 else test if i == 1 else []).append(f"{word}/{clip.name}")
    (dest / "validation_list.txt").write_text("\n".join(val) + "\n")
    (dest / "testing_list.txt").write_text("\n".join(test) + "\n")
    (dest / sc.NOISE_FOLDER).mkdir()
    noise, rate = soundfile.read(sample / sc.NOISE_FOLDER / "white_noise.wav", frames=16000 * 20)
    soundfile.write(dest / sc.NOISE_FOLDER / "white_noise.wav", noise, rate)
    return dest


def test_registered_as_plugins():
    names = get_registry().names("data_source")
    assert {"fashion_mnist", "speech_commands", "synth_speech"} <= set(names)


def test_official_splits_30_labels_and_noise_banks(speech_sample, tmp_cache):
    data = sc.load_speech_commands(root=str(speech_sample))
    assert data.sizes() == {"train": 205, "validation": 44, "test": 51}
    assert data.num_classes == 30 and data.class_names == sorted(sc.WORDS_V1)
    assert data.info["version"] == "0.01" and data.info["root"] == str(speech_sample)
    assert data.info["labels"] == "all" and data.info["sizes"] == data.sizes()
    for bank in data.splits.values():
        assert bank.features.shape[1:] == (101, 40) and bank.lengths.unique().tolist() == [101]
    assert data.splits["train"].labels.bincount(minlength=30).sum() == 205
    assert set(data.noise) == {"train", "validation", "test"}
    frames = {split: bank.lengths for split, bank in data.noise.items()}
    assert all(len(bank) == 6 and bank.labels.eq(0).all() for bank in data.noise.values())
    # 80/10/10 of each recording
    assert torch.allclose(frames["train"].float() / frames["test"].float(), torch.full((6,), 8.0), rtol=0.01)
    train = data.splits["train"].features.reshape(-1, 40)
    assert train.mean(0).abs().max() < 1e-3 and (train.std(0) - 1).abs().max() < 1e-2


def test_noise_dir_replaces_the_background_noise_folder(speech_sample, tmp_path, tmp_cache):
    """Any folder of WAV recordings is the background, gaps and split_audio's noise: two 10 s tones, cut 80/10/10."""
    root = _mini(speech_sample, tmp_path / "sc")
    folder = tmp_path / "hum"
    folder.mkdir()
    t = np.arange(160000) / 16000
    for name, freq in (("a_hum.wav", 50.0), ("b_whistle.wav", 3000.0)):
        soundfile.write(folder / name, (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    data = sc.load_speech_commands(root=str(root), noise_dir=str(folder))
    own = sc.load_speech_commands(root=str(root))
    assert data.info["noise_dir"] == str(folder) and data.info["noise_recordings"] == ["a_hum.wav", "b_whistle.wav"]
    assert own.info["noise_recordings"] == ["white_noise.wav"]
    # 10 s = 1,001 frames of 10 ms per recording, split 80/10/10
    assert {s: b.lengths.tolist() for s, b in data.noise.items()} == {
        "train": [801, 801], "validation": [101, 101], "test": [101, 101]
    }
    # the clips are the same; only the noise (and so nothing else) changed
    assert torch.equal(data.splits["test"].labels, own.splits["test"].labels)
    audio = sc.split_audio(data, "test")
    assert audio.noise == [folder / "a_hum.wav", folder / "b_whistle.wav"] and audio.noise_share == (0.9, 1.0)
    with pytest.raises(DataNotFoundError, match="noise_dir .* holds no .wav recordings"):
        sc.load_speech_commands(root=str(root), noise_dir=str(tmp_path))


def test_twelve_labels_with_unknown_and_silence(speech_sample, tmp_cache):
    data = sc.load_speech_commands(root=str(speech_sample), labels="12")
    assert data.class_names == [*sc.KEYWORDS_12, "_silence_", "_unknown_"]
    words = sc.load_speech_commands(root=str(speech_sample))
    for split, n in {"train": 205, "validation": 44, "test": 51}.items():
        silence = math.ceil(0.1 * n)
        assert data.info["silence"][split] == silence
        assert len(data.splits[split]) == n + silence
        counts = data.splits[split].labels.bincount(minlength=12)
        assert counts[10] == silence
        word_labels = [words.class_names[i] for i in words.splits[split].labels.tolist()]
        assert counts[11] == sum(w not in sc.KEYWORDS_12 for w in word_labels)
        assert counts[sc.KEYWORDS_12.index("yes")] == word_labels.count("yes")


def test_resampled_and_stereo_clips_match_the_original(speech_sample, tmp_path, tmp_cache):
    root = _mini(speech_sample, tmp_path / "sc")
    clip = sorted((root / "yes").glob("*.wav"))[2]  # a training clip
    wave, rate = soundfile.read(clip, dtype="float32")
    reference = sc.load_speech_commands(root=str(root), normalize=False)
    # the same clip at 22.05 kHz in stereo (left = the clip, right = the clip)
    from scipy.signal import resample_poly

    up = resample_poly(wave, 441, 320).astype(np.float32)
    soundfile.write(clip, np.stack([up, up], axis=1), 22050, subtype="FLOAT")
    data = sc.load_speech_commands(root=str(root), normalize=False)
    assert not data.info["cache"]["hit"]  # the file changed: a new cache key
    yes = data.class_names.index("yes")  # the clip is the only "yes" training sample
    ref = reference.splits["train"].features[reference.splits["train"].labels == yes][0]
    got = data.splits["train"].features[data.splits["train"].labels == yes][0]
    loud = ref > ref.mean()  # compare where there is energy: resampling blurs near-silent bands
    assert (got[loud] - ref[loud]).abs().mean() < 0.3


def test_corrupt_clip_is_named_or_skipped_with_a_count(speech_sample, tmp_path, tmp_cache):
    root = _mini(speech_sample, tmp_path / "sc")
    (root / "cat" / "deadbeef_nohash_0.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(DataFileError, match="deadbeef_nohash_0.wav"):
        sc.load_speech_commands(root=str(root))
    with pytest.warns(sc.SkippedClipsWarning, match="skipped 1 unreadable"):
        data = sc.load_speech_commands(root=str(root), on_error="skip")
    assert data.sizes() == {"train": 4, "validation": 4, "test": 4} and data.info["skipped"] == 1


def test_second_load_is_a_cache_hit(speech_sample, tmp_cache, monkeypatch):
    first = sc.load_speech_commands(root=str(speech_sample))
    assert not first.info["cache"]["hit"]

    def no_features(*args, **kwargs):
        raise AssertionError("features recomputed on a cache hit")

    monkeypatch.setattr(sc, "extract_features", no_features)
    second = sc.load_speech_commands(root=str(speech_sample))
    assert second.info["cache"]["hit"]
    assert torch.equal(first.splits["test"].features, second.splits["test"].features)
    # another frontend is another key
    with pytest.raises(AssertionError, match="recomputed"):
        sc.load_speech_commands(root=str(speech_sample), frontend={"kind": "mfcc"})


def test_corrupt_cache_is_rebuilt(speech_sample, tmp_path, tmp_cache):
    root = _mini(speech_sample, tmp_path / "sc")
    first = sc.load_speech_commands(root=str(root))
    (entry,) = (tmp_cache / "speech_commands").glob("*.pt")
    entry.write_bytes(b"garbage")
    with pytest.warns(CacheWarning):
        again = sc.load_speech_commands(root=str(root))
    assert not again.info["cache"]["hit"]
    assert torch.equal(first.splits["train"].features, again.splits["train"].features)


def test_missing_data_lists_every_path(tmp_path, tmp_cache):
    with pytest.raises(DataNotFoundError) as err:
        sc.load_speech_commands()
    message = str(err.value)
    for path in sc.candidate_roots():
        assert str(path) in message
    assert "nrstream data download speech_commands" in message


def test_download_from_a_local_tarball(speech_sample, tmp_path, tmp_cache, monkeypatch):
    mini = _mini(speech_sample, tmp_path / "mini")
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(mini.rglob("*")):
            tar.add(path, arcname="./" + path.relative_to(mini).as_posix(), recursive=False)
    checksum = "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(sc.URLS, "0.02", (archive.as_uri(), checksum))
    dest = sc.download_speech_commands(progress=False)
    assert dest == tmp_cache.parent / "data" / "speech_commands_v0.02"
    assert not (dest.parent / "speech_commands_v0.02.tar.gz").exists()
    data = sc.load_speech_commands()  # found on the default search path
    assert data.info["root"] == str(dest) and data.info["version"] == "0.02"
    assert data.sizes() == {"train": 4, "validation": 4, "test": 4}


def test_cli_data_info_and_download(speech_sample, tmp_cache, capsys, monkeypatch):
    from nrstream.cli import main
    from nrstream.data.datasets import clear_dataset_cache

    clear_dataset_cache()
    assert main(["data", "info", "speech_commands", "-o", f"root={speech_sample}", "-o", "labels=12"]) == 0
    out = capsys.readouterr().out
    assert str(speech_sample) in out and "train:" in out and "226 samples" in out and "_unknown_" in out
    assert main(["data", "download", "toy"]) == 2
    assert "nothing to download" in capsys.readouterr().err

    calls = []
    registry = get_registry()
    entry = registry.get("data_source", "speech_commands")
    fake = dataclasses.replace(entry.declared, download=lambda dest=None, **kw: calls.append((dest, kw)) or "here")
    monkeypatch.setitem(registry._items["data_source"], "speech_commands", dataclasses.replace(entry, declared=fake))
    assert main(["data", "download", "speech_commands", "--version", "0.01"]) == 0
    assert calls == [(None, {"version": "0.01"})]
