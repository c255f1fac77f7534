"""make-recording: a continuous scene with the scene streams' definitions, exact truth, deterministic, atomic."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import soundfile
import torch

from nrstream.cli import main
from nrstream.data.audio import FeatureFrontend, read_wav
from nrstream.deploy.recording import (
    WordFraming,
    _clip_piece,
    _noise_parts,
    events,
    make_recording,
    read_truth,
    recording_settings,
    split_files,
)
from nrstream.errors import ConfigError
from nrstream.stream.settings import StreamSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sample_options(speech_sample) -> dict:
    return {"root": str(speech_sample)}


def record(tmp_path, options, name="rec", **kw):
    kw.setdefault("minutes", 0.5)
    return make_recording(
        "speech_commands", out=tmp_path / f"{name}.wav", truth=tmp_path / f"{name}.csv", options=options, **kw
    )


def rows_of(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_recording_and_truth(tmp_path, sample_options):
    s = record(tmp_path, sample_options, seed=3)
    info = soundfile.info(str(s.wav))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "FLOAT", 30 * 16000)
    rows = rows_of(s.truth)
    assert len(rows) == s.words >= 10
    test_words = {w for w, _ in split_files("speech_commands", "test", sample_options).clips}
    starts = [float(r["start_s"]) for r in rows]
    ends = [float(r["end_s"]) for r in rows]
    assert starts == sorted(starts) and all(e > b for b, e in zip(starts, ends, strict=True))
    d = StreamSettings()  # the defaults: StreamSettings' scene
    assert all(b2 >= e1 + d.gap_min * 0.01 for e1, b2 in zip(ends, starts[1:], strict=False))
    assert ends[-1] <= 30.0 and {r["word"] for r in rows} <= test_words
    assert all(d.snr_db[0] <= float(r["snr_db"]) <= d.snr_db[1] for r in rows)
    assert len({r["level_db"] for r in rows}) == 1  # one level per recording, like one per lane
    assert d.level_db[0] <= float(rows[0]["level_db"]) <= d.level_db[1]
    assert [e.word for e in read_truth(s.truth)] == [r["word"] for r in rows]
    assert {k: s.settings[k] for k in ("gap_min", "gap_max", "snr_db", "level_db", "trim_db", "tail")} == {
        k: getattr(d, k) for k in ("gap_min", "gap_max", "snr_db", "level_db", "trim_db", "tail")
    }


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
    assert b"PEAK" not in a.wav.read_bytes()[:200]  # libsndfile's PEAK chunk holds the time of writing


def mel_frame_power(frontend: FeatureFrontend, wave: np.ndarray) -> np.ndarray:
    """The offline front end's frame power: mel power (exp of the log-mel minus the offset) summed over bands."""
    with torch.no_grad():
        feats = frontend(torch.from_numpy(wave)).double()
    return (feats.exp() - frontend.log_offset).clamp_min(0).sum(-1).numpy()


def test_snr_measured_from_the_parts_is_the_drawn_one(sample_options):
    """The scene's SNR, measured back: mean mel frame power of the word over its voiced frames vs the background's."""
    files = split_files("speech_commands", "test", sample_options)
    frontend = FeatureFrontend(**{k: v for k, v in files.frontend.items() if v is not None})
    settings = StreamSettings(gap_min=20, gap_max=40, snr_db=[-5, 15], level_db=[-3, 3])
    gen = events(files, _noise_parts(files), settings, seed=0)
    snrs = []
    for _ in range(20):
        background, word, row = next(gen)
        hop = frontend.hop_length
        assert row["start"] % hop == 0 and (row["end"] - row["start"]) % hop == 0  # on the recording's frame grid
        voiced = slice(row["start"] // hop, row["end"] // hop)
        measured = 10 * math.log10(
            mel_frame_power(frontend, word)[voiced].mean() / mel_frame_power(frontend, background)[voiced].mean()
        )
        assert abs(measured - row["snr_db"]) < 0.5 and -5 <= row["snr_db"] <= 15
        snrs.append(measured)
        assert np.all(word[: 20 * hop] == 0)  # the gap (>= gap_min frames) holds the background only
    assert max(snrs) - min(snrs) > 8  # drawn per word across the range, not one value


def test_voiced_frames_and_word_power_are_the_scenes(sample_options):
    """The recording's voiced frames and word power equal what nrstream.stream.scene computes from the loader's bank."""
    from nrstream.data.datasets import load_dataset
    from nrstream.stream.scene import linear_view, voiced_extent

    dataset = load_dataset("speech_commands", **sample_options)
    bank, view = dataset.splits["test"], linear_view(dataset)
    files = split_files("speech_commands", "test", sample_options, dataset)
    assert len(files.clips) == len(bank)  # the bank holds the split's clips in this order
    first, kept, voiced = voiced_extent(bank, view, 30.0, 7)
    power = view.frame_power(view.to_linear(bank.features))  # [N, L]: the scene's sample frame power
    framing = WordFraming(files.frontend, files.clip_seconds)
    offsets = []
    for i, (_, path) in enumerate(files.clips):
        padded, f, k, v = framing.voiced(read_wav(path, framing.rate).numpy(), 30.0, 7)
        assert (f, k, v) == (int(first[i]), int(kept[i]), int(voiced[i]))
        scene_power = float(power[i, f : f + v].mean())
        m = framing.margin // framing.hop
        word_power = float(framing.frame_power(_clip_piece(framing, padded, f, k))[m : m + v].mean())
        offsets.append(abs(10 * math.log10(word_power / scene_power)))
    # equal but where the loader's first frames saw the clip's start (reflect padding): measured max 0.37 dB
    assert np.median(offsets) < 1e-3 and max(offsets) < 0.5


def test_voiced_extent_known_answer():
    rate = 16000
    framing = WordFraming(FeatureFrontend().params())
    clip = np.zeros(rate, dtype=np.float32)
    t = np.arange(4000) / rate
    clip[6000:10000] = 0.5 * np.sin(2 * np.pi * 440 * t)
    clip += 1e-4 * np.random.default_rng(0).standard_normal(rate).astype(np.float32)  # -70 dB below the tone
    _, first, kept, voiced = framing.voiced(clip, 40.0, 10)
    half = framing.half  # frame t sees samples t * 160 - 256 .. t * 160 + 256
    assert 6000 - half <= first * 160 <= 6000 + 160 and 10000 - 160 <= (first + voiced - 1) * 160 <= 10000 + half
    assert kept == voiced + 10
    assert framing.voiced(clip, None, 10)[1:] == (0, 101, 101)  # trim_db null: the whole (padded) clip


def test_settings_take_stream_settings_defaults_and_checks():
    assert recording_settings() == StreamSettings(background="recorded")
    config = StreamSettings(gap_min=40, gap_max=60, snr_db=[3, 6], background="none", tail=4)
    got = recording_settings(config, snr_db=(10, 12), trim_db=None)
    assert (got.snr_db, got.gap_min, got.tail, got.trim_db) == ([10.0, 12.0], 40, 4, None)
    with pytest.raises(ConfigError, match=r"^make-recording --gap-max: must be >= gap_min \(40\), got 30$"):
        recording_settings(config, gap_max=30)


CONFIG = """
run: {{name: rec}}
data:
  source: speech_commands
  options: {{root: {root}}}
  stream: {{gap_min: 40, gap_max: 60, noise: recorded, background: none, snr_db: [3, 6], level_db: [1, 2], tail: 5}}
agents: [{{arch: gru, loss: ce}}]
"""


def test_config_gives_the_settings_and_flags_win(tmp_path, sample_options, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(root=sample_options["root"]))
    out, truth = tmp_path / "r.wav", tmp_path / "r.csv"
    base = ["data", "make-recording", "--config", str(config), "--minutes", "0.3", "--out", str(out)]
    assert main([*base, "--truth", str(truth)]) == 0
    done = capsys.readouterr()
    assert "words from the test split of speech_commands" in done.out
    scene = "scene: background recorded, gap_min 40, gap_max 60, snr_db [3, 6], level_db [1, 2], trim_db 40, tail 5"
    assert scene in done.out
    notice = done.err.strip().splitlines()
    assert len(notice) == 1 and "always makes an acoustic scene" in notice[0] and "background: none" in notice[0]
    rows = rows_of(truth)
    assert len(rows) >= 5 and all(3 <= float(r["snr_db"]) <= 6 and 1 <= float(r["level_db"]) <= 2 for r in rows)
    starts, ends = [float(r["start_s"]) for r in rows], [float(r["end_s"]) for r in rows]
    assert all(b2 >= e1 + 0.40 for e1, b2 in zip(ends, starts[1:], strict=False))  # gaps >= gap_min frames

    over = ["--snr-db", "10", "12", "--gap-max", "45", "--tail", "0", "--trim-db", "30"]
    assert main([*base, "--truth", str(truth), *over]) == 0
    scene = "scene: background recorded, gap_min 40, gap_max 45, snr_db [10, 12], level_db [1, 2], trim_db 30, tail 0"
    assert scene in capsys.readouterr().out
    assert all(10 <= float(r["snr_db"]) <= 12 and 1 <= float(r["level_db"]) <= 2 for r in rows_of(truth))

    # a bundled config by name, its source replaced by an explicit SOURCE: the config's settings stay
    args = ["data", "make-recording", "speech_commands", "-o", f"root={sample_options['root']}", "--config"]
    assert main([*args, "speech_quick", "--minutes", "0.1", "--out", str(out), "--truth", str(truth)]) == 0
    assert "gap_min 10, gap_max 50, snr_db [0, 20], level_db [-6, 6]" in capsys.readouterr().out


def test_cli_and_bad_input(tmp_path, sample_options, capsys):
    out, truth = tmp_path / "r.wav", tmp_path / "r.csv"
    args = ["data", "make-recording", "speech_commands", "-o", f"root={sample_options['root']}"]
    assert (
        main([*args, "--minutes", "0.1", "--out", str(out), "--truth", str(truth), "--snr-db", "5", "10", "--pcm16"])
        == 0
    )
    assert soundfile.info(str(out)).subtype == "PCM_16"
    assert "words from the test split" in capsys.readouterr().out
    assert all(5 <= float(r["snr_db"]) <= 10 for r in rows_of(truth))
    bad = [
        (["--minutes", "0"], "--minutes"),
        (["--minutes", "1", "--snr-db", "10", "5"], "--snr-db"),
        (["--minutes", "1", "--split", "dev"], "unknown split"),
        (["--minutes", "1", "--tail", "-1"], "--tail"),
        (["--minutes", "1", "--gap-min", "9", "--gap-max", "3"], "--gap-max"),
        (["--minutes", "1", "--config", str(tmp_path / "absent.yaml")], "absent.yaml"),
    ]
    for extra, message in bad:
        o2, t2 = tmp_path / "bad.wav", tmp_path / "bad.csv"
        assert main([*args, *extra, "--out", str(o2), "--truth", str(t2)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nrstream: error: ") and err.count("\n") == 1 and message in err, err
        assert not o2.exists() and not t2.exists()
    assert main(["data", "make-recording", "toy", "--minutes", "1", "--out", str(o2), "--truth", str(t2)]) == 2
    assert "data source 'toy' declares no audio files (DataSource.split_audio)" in capsys.readouterr().err
    assert main(["data", "make-recording", "--minutes", "1", "--out", str(o2), "--truth", str(t2)]) == 2
    assert "needs a data SOURCE, --config CONFIG or --like-agent RUN" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--gap-min"):
        record(tmp_path, sample_options, settings=recording_settings(gap_min=-1))
