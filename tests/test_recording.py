"""make-recording: a continuous scene, exact truth, deterministic, written atomically."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import soundfile

from nrstream.cli import main
from nrstream.errors import ConfigError
from nrstream.recording import events, make_recording, read_truth, split_files, voiced_extent


@pytest.fixture(scope="module")
def sample_options(speech_sample) -> dict:
    return {"root": str(speech_sample)}


def record(tmp_path, options, name="rec", **kw):
    kw.setdefault("minutes", 0.5)
    return make_recording(
        "speech_commands", out=tmp_path / f"{name}.wav", truth=tmp_path / f"{name}.csv", options=options, **kw
    )


def test_recording_and_truth(tmp_path, sample_options):
    s = record(tmp_path, sample_options, seed=3)
    info = soundfile.info(str(s.wav))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "FLOAT", 30 * 16000)
    rows = list(csv.DictReader(open(s.truth)))
    assert len(rows) == s.words >= 10
    test_words = {w for w, _ in split_files("speech_commands", "test", sample_options).clips}
    starts = [float(r["start_s"]) for r in rows]
    ends = [float(r["end_s"]) for r in rows]
    assert starts == sorted(starts) and all(e > b for b, e in zip(starts, ends, strict=True))
    assert all(b2 > e1 + 0.5 for e1, b2 in zip(ends, starts[1:], strict=False))  # gaps of >= 0.5 s
    assert ends[-1] <= 30.0 and {r["word"] for r in rows} <= test_words
    assert all(0 <= float(r["snr_db"]) <= 20 for r in rows)
    assert len({r["level_db"] for r in rows}) == 1 and -6 <= float(rows[0]["level_db"]) <= 6  # one per recording
    assert [e.word for e in read_truth(s.truth)] == [r["word"] for r in rows]


def test_no_digital_silence_anywhere(tmp_path, sample_options):
    s = record(tmp_path, sample_options, seed=4)
    wave, _ = soundfile.read(str(s.wav), dtype="float32")
    frames = wave[: len(wave) // 160 * 160].reshape(-1, 160)
    assert (np.abs(frames).max(axis=1) > 0).all()  # every 10 ms holds signal: background runs everywhere


def test_deterministic_per_seed(tmp_path, sample_options):
    a = record(tmp_path, sample_options, "a", seed=7, minutes=0.2)
    b = record(tmp_path, sample_options, "b", seed=7, minutes=0.2)
    c = record(tmp_path, sample_options, "c", seed=8, minutes=0.2)
    assert a.wav.read_bytes() == b.wav.read_bytes() and a.truth.read_text() == b.truth.read_text()
    assert a.wav.read_bytes() != c.wav.read_bytes()


def test_snr_from_the_parts_matches_the_drawn_one(sample_options):
    files = split_files("speech_commands", "test", sample_options)
    from nrstream.recording import _noise_parts

    parts = _noise_parts(files)
    gen = events(files, parts, snr=(0.0, 20.0), level=(-6.0, 6.0), gap=(0.5, 1.0), seed=0)
    for _ in range(15):
        background, word, row = next(gen)
        span = slice(row["start"], row["end"])
        measured = 10 * math.log10(
            np.mean(word[span].astype(float) ** 2) / np.mean(background[span].astype(float) ** 2)
        )
        assert abs(measured - row["snr_db"]) < 0.5
        assert np.all(word[: row["start"] - 800] == 0)  # the gap holds the background only


def test_voiced_extent_known_answer():
    rate = 16000
    clip = np.zeros(rate, dtype=np.float32)
    t = np.arange(4000) / rate
    clip[6000:10000] = 0.5 * np.sin(2 * np.pi * 440 * t)
    clip += 1e-4 * np.random.default_rng(0).standard_normal(rate).astype(np.float32)  # -70 dB below the tone
    a, b = voiced_extent(clip, rate)
    assert 6000 - 480 <= a <= 6000 and 10000 <= b <= 10000 + 480
    assert voiced_extent(np.zeros(rate, dtype=np.float32), rate) == (0, 0)


def test_cli_and_bad_input(tmp_path, sample_options, capsys):
    out, truth = tmp_path / "r.wav", tmp_path / "r.csv"
    args = ["data", "make-recording", "speech_commands", "-o", f"root={sample_options['root']}"]
    assert (
        main([*args, "--minutes", "0.1", "--out", str(out), "--truth", str(truth), "--snr-db", "5", "10", "--pcm16"])
        == 0
    )
    assert soundfile.info(str(out)).subtype == "PCM_16"
    assert "words from the test split" in capsys.readouterr().out
    assert all(5 <= float(r["snr_db"]) <= 10 for r in csv.DictReader(open(truth)))
    bad = [
        ["--minutes", "0"],
        ["--minutes", "1", "--snr-db", "10", "5"],
        ["--minutes", "1", "--split", "dev"],
        ["--minutes", "1", "--tail", "-1"],
    ]
    for extra in bad:
        o2, t2 = tmp_path / "bad.wav", tmp_path / "bad.csv"
        assert main([*args, *extra, "--out", str(o2), "--truth", str(t2)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nrstream: error: ") and err.count("\n") == 1
        assert not o2.exists() and not t2.exists()
    assert main(["data", "make-recording", "toy", "--minutes", "1", "--out", str(o2), "--truth", str(t2)]) == 2
    assert "has no audio clips" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--gap-s"):
        record(tmp_path, sample_options, gap_s=(-1, 2))
