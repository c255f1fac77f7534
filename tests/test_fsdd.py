"""The ``fsdd`` data source on the shared FSDD v1.0.10 subset (issue 24): splits, speakers, checksums, download.

Real recordings, no mocks: the subset holds 2,000 recordings (four speakers x ten digits x
50 takes). Tests that only need the layout use a small copy (``mini_fsdd``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from nrstream_plugins.data import fsdd

from nrstream import DataNotFoundError, load_dataset, make_stream
from nrstream.data.audio import FeatureFrontend, fix_length, read_wav
from nrstream.data.datasets import clear_dataset_cache
from nrstream.errors import DataFileError, DownloadError

SPEAKERS = ["george", "jackson", "nicolas", "yweweler"]


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """One private cache for the module: the 2,000 clips are featurised once (~5 s), not per test."""
    cache = tmp_path_factory.mktemp("fsdd_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NRSTREAM_CACHE", str(cache))
        mp.setenv("NRSTREAM_DATA", str(cache / "no-data"))
        yield cache
    clear_dataset_cache()


@pytest.fixture(scope="module")
def official(fsdd_sample, module_cache):
    return fsdd.load_fsdd(root=str(fsdd_sample))


def _keys(data, split):
    """``{(digit, speaker, take)}`` of a split, from the per-sample record."""
    info = data.info
    bank = data.splits[split]
    return list(
        zip(
            bank.labels.tolist(),
            [info["speakers"][i] for i in info["sample_speaker"][split]],
            info["sample_take"][split],
            strict=True,
        )
    )


def test_official_split_is_disjoint_complete_and_follows_the_documented_rule(official):
    assert official.info["speakers"] == SPEAKERS
    assert official.sizes() == {"train": 1600, "validation": 200, "test": 200}
    assert official.class_names == fsdd.DIGITS and official.feature_size == 40
    keys = {s: _keys(official, s) for s in ("train", "validation", "test")}
    every = [k for v in keys.values() for k in v]
    assert len(set(every)) == len(every) == 2000  # disjoint and complete
    assert {t for _, _, t in keys["test"]} == set(range(5))  # the data set's own rule: takes 0-4
    assert {t for _, _, t in keys["validation"]} == set(range(5, 10))  # ours: takes 5-9
    assert {t for _, _, t in keys["train"]} == set(range(10, 50))
    for split, n in (("train", 40), ("validation", 5), ("test", 5)):  # every speaker and digit, equally
        assert Counter((d, s) for d, s, _ in keys[split]) == {(d, s): n for d in range(10) for s in SPEAKERS}
    assert official.info["split_speakers"] == {s: SPEAKERS for s in ("train", "validation", "test")}


def test_speaker_disjoint_protocol(official, fsdd_sample):
    data = fsdd.load_fsdd(
        root=str(fsdd_sample), split="speakers", test_speakers=["nicolas"], validation_speakers="george"
    )
    assert data.sizes() == {"train": 1000, "validation": 500, "test": 500}
    assert data.info["split_speakers"] == {
        "train": ["jackson", "yweweler"],
        "validation": ["george"],
        "test": ["nicolas"],
    }
    # without validation speakers: takes 5-9 of the training speakers, never a test voice
    data = fsdd.load_fsdd(root=str(fsdd_sample), split="speakers", test_speakers=["yweweler"])
    assert data.sizes() == {"train": 1350, "validation": 150, "test": 500}
    assert {s for _, s, _ in _keys(data, "test")} == {"yweweler"}
    assert {s for _, s, _ in _keys(data, "validation")} == {"george", "jackson", "nicolas"}
    assert {t for _, _, t in _keys(data, "validation")} == set(range(5, 10))
    assert data.info["cache"]["hit"]  # the split is not part of the feature cache


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": "speakers"}, "needs test_speakers"),
        ({"split": "speakers", "test_speakers": ["theo"]}, "unknown speaker(s) ['theo']; the root has george"),
        ({"split": "speakers", "test_speakers": "george", "validation_speakers": ["george"]}, "cannot be in"),
        ({"split": "speakers", "test_speakers": SPEAKERS[:2], "validation_speakers": SPEAKERS[2:]}, "no training"),
        ({"test_speakers": ["george"]}, "need split: speakers"),
        ({"split": "random"}, "'official' or 'speakers'"),
    ],
)
def test_bad_split_options_are_one_line_errors(fsdd_sample, module_cache, options, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        fsdd.load_fsdd(root=str(fsdd_sample), **options)
    assert "\n" not in str(caught.value)


def test_per_sample_record_names_the_recording_behind_every_sample(official):
    """The speaker and take of sample k are those of the file whose features sample k holds."""
    files = fsdd.fsdd_split_audio(official, "test")
    assert files.sample_rate == 8000 and files.clip_seconds == 1.0 and files.noise_share == (0.9, 1.0)
    assert len(files.clips) == 200 and len(files.noise) == 6
    fe = FeatureFrontend(**official.info["frontend"])
    mean, std = (torch.tensor(official.info["normalization"][k]) for k in ("mean", "std"))
    for k in (0, 57, 199):
        word, path = files.clips[k]
        digit, speaker, take = path.stem.split("_")
        assert word == fsdd.DIGITS[int(digit)] == official.class_names[int(official.splits["test"].labels[k])]
        assert (speaker, int(take)) == (official.info["speakers"][official.info["sample_speaker"]["test"][k]],
                                        official.info["sample_take"]["test"][k])  # fmt: skip
        with torch.no_grad():
            expected = (fe(fix_length(read_wav(path, 8000), 8000)) - mean) / std
        torch.testing.assert_close(official.splits["test"].features[k], expected, atol=1e-4, rtol=1e-4)


def test_default_background_is_the_synthetic_noise_in_disjoint_parts(official, module_cache):
    info = official.info
    assert info["noise_recordings"] == ["blue_noise.wav", "brown_noise.wav", "mains_hum.wav", "pink_noise.wav",
                                        "violet_noise.wav", "white_noise.wav"]  # fmt: skip
    assert Path(info["noise_dir"]) == module_cache / "synthetic_noise" / "seed0"
    # 60 s each at 100 frames/s, cut 80/10/10: train 48 s, validation and test 6 s per recording
    assert info["noise_frames"] == {"train": 6 * 4801, "validation": 6 * 601, "test": 6 * 601}


def test_noise_dir_takes_the_background_from_a_folder_of_recordings(fsdd_sample, module_cache, speech_sample):
    data = fsdd.load_fsdd(root=str(fsdd_sample), noise_dir=str(speech_sample / "_background_noise_"))
    assert data.info["noise_recordings"] == sorted(p.name for p in (speech_sample / "_background_noise_").glob("*.wav"))
    assert all(len(data.noise[s]) == len(data.info["noise_recordings"]) for s in ("train", "validation", "test"))


def test_scene_stream_over_fsdd_has_no_repeated_frame_padding(official):
    """Under a running background no frame repeats its predecessor; the paper-style stream pads with digital silence."""
    scene = make_stream(official, "test", num_lanes=4, seed=3, gap_min=10, gap_max=50, background="recorded")
    chunk = scene.next_chunk(1000)
    repeats = (chunk.x[:, 1:] == chunk.x[:, :-1]).all(-1)
    assert int(chunk.end.sum()) >= 20 and not bool(repeats.any())
    # every word is cut to its voiced frames + tail: far shorter than the 101-frame clip
    lengths = official.splits["test"].lengths
    assert float(chunk.mask.sum()) / float(chunk.end.sum()) < 0.8 * float(lengths.float().mean())
    paper = make_stream(official, "test", num_lanes=4, seed=3, gap_min=10, gap_max=50, noise="recorded")
    assert bool((lambda x: (x[:, 1:] == x[:, :-1]).all(-1).any())(paper.next_chunk(1000).x))


def test_load_dataset_by_name_and_the_search_path_message(fsdd_sample, module_cache):
    assert load_dataset("fsdd", root=str(fsdd_sample)).info["source"] == "fsdd"
    with pytest.raises(DataNotFoundError, match="nrstream data download fsdd") as caught:
        fsdd.load_fsdd()  # nothing on the search path
    assert str(module_cache / fsdd.FOLDER) in str(caught.value)


# ------------------------------------------------------------------ checksums and download


def mini_fsdd(sample: Path, dest: Path, speakers=("george", "nicolas"), takes=(0, 5, 10, 11)) -> Path:
    """A copy with some speakers and takes (every split non-empty), and its checksum list."""
    (dest / "recordings").mkdir(parents=True)
    for digit in range(10):
        for speaker in speakers:
            for take in takes:
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy2(sample / "recordings" / name, dest / "recordings" / name)
    return dest


def _sums(folder: Path, path: Path) -> Path:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  recordings/{p.name}\n"
             for p in sorted((folder / "recordings").glob("*.wav"))]  # fmt: skip
    path.write_text("".join(lines))
    return path


def _flip_byte(path: Path, at: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_shipped_checksums_cover_the_release(fsdd_sample):
    sums = fsdd.read_checksums()
    assert len(sums) == 3000
    assert Counter(name.split("_")[1] for name in sums) == {s: 500 for s in [*SPEAKERS, "lucas", "theo"]}
    assert sums == fsdd.read_checksums(fsdd_sample / "SHA256SUMS.full")


def test_a_flipped_byte_is_a_one_line_error_naming_the_file(fsdd_sample, tmp_path, tmp_cache):
    root = mini_fsdd(fsdd_sample, tmp_path / "mini")
    path = root / "recordings" / "3_nicolas_11.wav"
    _flip_byte(path)
    with pytest.raises(DataFileError) as caught:
        fsdd.load_fsdd(root=str(root))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "SHA-256" in message
    with pytest.warns(UserWarning, match="skipped 1 "):
        data = fsdd.load_fsdd(root=str(root), on_error="skip")
    assert data.sizes() == {"train": 39, "validation": 20, "test": 20}
    assert fsdd.load_fsdd(root=str(root), verify=False).sizes()["train"] == 40  # your own recordings


def _archive(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=fsdd.ARCHIVE_TOP)  # as GitHub packs a tag
    return archive


def test_download_from_a_local_archive(fsdd_sample, tmp_path, tmp_cache):
    mini = mini_fsdd(fsdd_sample, tmp_path / "src")
    (mini / "README.md").write_text("the release's other files are extracted too\n")
    sums = _sums(mini, tmp_path / "SHA256SUMS")
    archive = _archive(mini, tmp_path / "v1.0.10.tar.gz")
    dest = tmp_cache.parent / "data"  # $NRSTREAM_DATA
    root = fsdd.download_fsdd(url=archive.as_uri(), checksums=sums, progress=False)
    assert root == dest / fsdd.FOLDER / fsdd.ARCHIVE_TOP
    assert sorted(p.name for p in dest.iterdir()) == [fsdd.FOLDER]  # no archive, no staging folder left
    data = fsdd.load_fsdd()  # found on the default search path
    assert data.info["root"] == str(root) and data.sizes() == {"train": 40, "validation": 20, "test": 20}
    # a second call finds the verified download and fetches nothing
    archive.unlink()
    assert fsdd.download_fsdd(url=archive.as_uri(), checksums=sums, progress=False) == root


def test_download_with_a_damaged_recording_keeps_nothing(fsdd_sample, tmp_path, tmp_cache):
    mini = mini_fsdd(fsdd_sample, tmp_path / "src")
    sums = _sums(mini, tmp_path / "SHA256SUMS")
    _flip_byte(mini / "recordings" / "7_george_5.wav")
    archive = _archive(mini, tmp_path / "v1.0.10.tar.gz")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DownloadError) as caught:
        fsdd.download_fsdd(dest, url=archive.as_uri(), checksums=sums, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "recordings/7_george_5.wav" in message and "checksum mismatch" in message
    assert list(dest.iterdir()) == []
    # the full list: the mini archive lacks most of the release
    with pytest.raises(DownloadError, match=r"lacks 2920 of its 3000 recordings"):
        fsdd.download_fsdd(dest, url=_archive(mini_fsdd(fsdd_sample, tmp_path / "ok"), tmp_path / "ok.tgz").as_uri())
    assert list(dest.iterdir()) == []


def test_download_never_replaces_a_folder_it_did_not_write(fsdd_sample, tmp_path, tmp_cache):
    dest = tmp_path / "dest"
    (dest / fsdd.FOLDER).mkdir(parents=True)
    (dest / fsdd.FOLDER / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="not written by 'nrstream data download'"):
        fsdd.download_fsdd(dest, url=(tmp_path / "never-fetched.tgz").as_uri(), progress=False)
    assert (dest / fsdd.FOLDER / "mine.txt").read_text() == "keep"


def test_cli_download_refuses_a_foreign_folder_in_one_line(tmp_path, tmp_cache, capsys):
    from nrstream.cli import main

    assert fsdd.SOURCE.download is fsdd.download_fsdd  # what `nrstream data download fsdd` calls
    (tmp_path / "d" / fsdd.FOLDER).mkdir(parents=True)  # checked before anything is fetched
    assert main(["data", "download", "fsdd", "--dest", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "d" / fsdd.FOLDER) in err, err
