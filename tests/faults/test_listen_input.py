"""``listen`` survives bad input (issue 29): NaN, infinite and out-of-range samples in a float WAV become
silence, are reported once per stretch (time range and count), never reach the carried state, and the
score says how much audio was unusable. An architecture that still produces a non-finite state is reset
with a notice, and the detections after it say so. A truth CSV that cannot be scored is refused.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch
from test_listen import trained  # noqa: F401  (the module-scoped trained GRU, reused)
from torch import nn

from faults.conftest import assert_nothing_lost, assert_one_line_error, snapshot

RATE = 16000


def _blocks(wave: np.ndarray, seconds: float = 1.0):
    step = int(seconds * RATE)
    return [wave[i : i + step] for i in range(0, len(wave), step)]


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


class _Model(nn.Module):
    """A tiny GRU classifier (3 classes); ``nan_at``: the state turns NaN once, at that frame."""

    def __init__(self, features: int, nan_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(features, 8, batch_first=True)
        self.out = nn.Linear(8, 3)
        self.nan_at, self.seen = nan_at, 0

    def initial_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, 8, device=device)

    def forward(self, x, state, reset=None, aux=None):
        y, state = self.gru(x, state)
        if self.nan_at is not None and self.seen <= self.nan_at < self.seen + x.shape[1]:
            state = state * math.nan
            y = y.clone()
            y[:, self.nan_at - self.seen :] = math.nan
        self.seen += x.shape[1]
        return self.out(y), state


def _agent(nan_at: int | None = None, label: str = "gru/test"):
    from nrstream.data.streaming_frontend import StreamingFrontend

    fe = StreamingFrontend({})
    model = _Model(fe.feature_size, nan_at)
    return SimpleNamespace(
        label=label,
        model=model,
        class_names=["yes", "no", "_silence_"],
        frontend={},
        mean=None,
        std=None,
        feature_size=fe.feature_size,
    )


def _listen(wave, agent=None, **kw):
    from nrstream.deploy.listen import listen

    notes: list[str] = []
    agent = agent or _agent()
    result = listen([agent], _blocks(wave, kw.pop("block", 1.0)), notify=notes.append, **kw)
    return result, notes, agent


@pytest.mark.parametrize(
    ("bad", "count"),
    [(math.nan, 4000), (math.inf, 4000), (-math.inf, 4000), (1e30, 4000), (-3e38, 4000)],
    ids=["nan", "inf", "-inf", "1e30", "-3e38"],
)
def test_a_bad_quarter_second_is_one_notice_and_silence(bad, count):
    wave = _tone(4.0)
    wave[2 * RATE : int(2.25 * RATE)] = bad
    result, notes, agent = _listen(wave)
    assert notes == [
        f"nrstream: warning: audio 2.000-2.250 s: {count} NaN, infinite or out-of-range samples replaced by silence"
    ]
    assert result.unusable_s == pytest.approx(0.25)
    assert all(bool(torch.isfinite(s).all()) for s in [agent.model.gru.weight_hh_l0])
    assert result.resets == {"gru/test": []}


def test_ten_infinite_samples_are_counted():
    wave = _tone(3.0)
    wave[RATE + 100 : RATE + 110] = np.inf
    result, notes, _ = _listen(wave)
    assert notes == [
        "nrstream: warning: audio 1.006-1.007 s: 10 NaN, infinite or out-of-range samples replaced by silence"
    ]
    assert result.unusable_s == pytest.approx(10 / RATE)


def test_a_stretch_across_blocks_is_one_notice():
    wave = _tone(5.0)
    wave[int(1.5 * RATE) : int(3.5 * RATE)] = np.nan
    _, notes, _ = _listen(wave, block=0.25)
    assert len(notes) == 1 and "1.500-3.500 s: 32000 " in notes[0]


def test_many_stretches_are_capped_with_a_total():
    wave = _tone(8.0)
    for k in range(8):
        wave[k * RATE + 10 : k * RATE + 20] = np.nan
    result, notes, _ = _listen(wave)
    assert len(notes) == 6 and "further stretches are only counted" in notes[4]
    assert notes[5] == "nrstream: warning: 8 stretches of unusable audio in all"
    assert result.unusable_s == pytest.approx(80 / RATE)


def test_the_state_stays_finite_and_detections_equal_a_silent_block():
    """NaN replaced by silence gives exactly what a recording with real silence there gives."""
    nan, silent = _tone(4.0), _tone(4.0)
    nan[2 * RATE : int(2.25 * RATE)] = np.nan
    silent[2 * RATE : int(2.25 * RATE)] = 0.0
    a, _, agent_a = _listen(nan, record=True)
    b, notes_b, _ = _listen(silent, record=True)
    assert notes_b == [] and b.unusable_s == 0
    for x, y in zip(a.records["gru/test"].arrays(), b.records["gru/test"].arrays(), strict=True):
        assert np.array_equal(x, y)


def test_clean_audio_gives_no_notice():
    result, notes, _ = _listen(_tone(3.0))
    assert notes == [] and result.unusable_s == 0.0


def test_a_non_finite_state_is_reset_with_a_notice():
    from nrstream.deploy.detector import DetectorSettings

    agent = _agent(nan_at=150)
    wave = _tone(4.0)
    settings = DetectorSettings(threshold=0.0, max_entropy=1.0, refractory_s=0.2)
    result, notes, _ = _listen(wave, agent, settings=settings)
    assert len(notes) == 1 and "agent gru/test: its state became NaN or infinite" in notes[0]
    assert "reset it" in notes[0] and "after_reset" in notes[0]
    assert len(result.resets["gru/test"]) == 1
    later = [d for d in result.detections["gru/test"] if d.time_s > result.resets["gru/test"][0] + 1]
    assert later and all(d.after_reset for d in later)
    assert all(math.isfinite(d.confidence) for d in result.detections["gru/test"])


def test_streaming_frontend_counts_and_silences_bad_samples():
    from nrstream.data.streaming_frontend import StreamingFrontend

    fe = StreamingFrontend({})
    wave = _tone(1.0)
    wave[100:300] = np.nan
    wave[500] = 1e9
    feats = torch.cat([fe.push(torch.from_numpy(wave)), fe.flush()])
    assert bool(torch.isfinite(feats).all()) and feats.shape[0] > 0
    fe2 = StreamingFrontend({})
    fe2.push(torch.from_numpy(wave))
    assert fe2.unusable_samples == 201


# ---------------------------------------------------------------- end to end, the trained agent


@pytest.fixture(scope="module")
def nan_wav(trained, tmp_path_factory):  # noqa: F811
    """The trained fixture's recording as a float WAV, with 0.25 s of NaN at 2 s."""
    _, rec, _ = trained
    wave, rate = soundfile.read(str(rec), dtype="float32")
    wave[2 * rate : int(2.25 * rate)] = np.nan
    path = tmp_path_factory.mktemp("nan_wav") / "nan.wav"
    soundfile.write(str(path), wave, rate, subtype="FLOAT")
    return path


def test_listen_cli_survives_a_nan_block(trained, nan_wav, main_in_process):  # noqa: F811
    run, rec, truth = trained
    clean = main_in_process("listen", run, rec, "--agent", "gru/ce_kl", "--format", "jsonl")
    bad = main_in_process("listen", run, nan_wav, "--agent", "gru/ce_kl", "--format", "jsonl")
    assert bad.returncode == 0 and "Traceback" not in bad.stderr, str(bad)
    warned = [x for x in bad.stderr.splitlines() if "warning" in x]
    assert warned == [
        "nrstream: warning: audio 2.000-2.250 s: 4000 NaN, infinite or out-of-range samples replaced by silence"
    ]
    found = [json.loads(x) for x in bad.stdout.splitlines()]
    before = [json.loads(x) for x in clean.stdout.splitlines()]
    after = [x for x in found if x["time_s"] > 2.5]
    assert len(after) >= 10 and len(after) >= 0.8 * len([x for x in before if x["time_s"] > 2.5])


def test_the_score_notes_unusable_audio(trained, nan_wav, main_in_process, tmp_path):  # noqa: F811
    run, _, truth = trained
    det = tmp_path / "det.png"
    result = main_in_process(
        "listen", run, nan_wav, "--agent", "gru/ce_kl", "--truth", truth, "--det", det, "--format", "jsonl"
    )
    assert result.returncode == 0, str(result)
    score = next(json.loads(x) for x in result.stdout.splitlines() if "score" in x)
    assert score["unusable_s"] == 0.25 and score["state_resets"] == 0
    table = main_in_process("listen", run, nan_wav, "--agent", "gru/ce_kl", "--truth", truth, "--det", det)
    assert "unusable audio: 0.25 s of " in table.stdout


def test_jsonl_prints_null_not_nan(trained, tmp_path, main_in_process):  # noqa: F811
    """Nothing detected on silence: precision is undefined, and strict JSON says null."""
    run, _, truth = trained
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros(5 * RATE, np.float32), RATE)
    result = main_in_process(
        "listen",
        run,
        silence,
        "--agent",
        "gru/ce_kl",
        "--truth",
        truth,
        "--det",
        tmp_path / "d.png",
        "--format",
        "jsonl",
    )
    assert result.returncode == 0, str(result)
    for line in result.stdout.splitlines():
        json.loads(line, parse_constant=lambda token: pytest.fail(f"{token} in --format jsonl output"))
    score = next(json.loads(x) for x in result.stdout.splitlines() if "score" in x)["score"]
    assert score["precision"] is None


# ---------------------------------------------------------------- truth CSVs that cannot be scored

BAD_TRUTH = {
    "negative": ("-1.0,0.5,yes", "need 0 <= start_s < end_s"),
    "inverted": ("2.0,1.5,yes", "need 0 <= start_s < end_s"),
    "empty_interval": ("2.0,2.0,yes", "need 0 <= start_s < end_s"),
    "nan_start": ("nan,1.5,yes", "times must be finite"),
    "inf_end": ("1.0,inf,yes", "times must be finite"),
    "unknown_word": ("1.0,1.5,banana", "word 'banana' is not one the agents know"),
    "not_a_number": ("one,1.5,yes", "is not start_s,end_s,word with numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRUTH))
def test_a_bad_truth_csv_is_refused(trained, main_in_process, fault_home, case):  # noqa: F811
    run, rec, _ = trained
    row, message = BAD_TRUTH[case]
    truth = fault_home / "truth.csv"
    truth.write_text(f"start_s,end_s,word\n0.5,0.9,no\n{row}\n")
    before = snapshot(fault_home)
    result = main_in_process("listen", run, rec, "--agent", "gru/ce_kl", "--truth", truth, "--format", "jsonl")
    line = assert_one_line_error(result, str(truth), message)
    assert "line 3" in line or case == "not_a_number"
    assert result.stdout == ""
    assert_nothing_lost(before, fault_home, allow_new=False)


# ---------------------------------------------------------------- --det: the one output rule, checked up front


def test_det_onto_a_users_file_is_refused_before_listening(trained, main_in_process, fault_home):  # noqa: F811
    """The issue's case: ``listen --det my_thesis.tex`` replaced the thesis with a PNG."""
    run, rec, truth = trained
    thesis = fault_home / "my_thesis.tex"
    thesis.write_text("\\documentclass{article}\n")
    before = snapshot(fault_home)
    result = main_in_process("listen", run, rec, "--agent", "gru/ce_kl", "--truth", truth, "--det", thesis)
    assert_one_line_error(result, "--det", "my_thesis.tex", "nrstream did not write it")
    assert result.stdout == ""  # refused before any detection was printed
    assert_nothing_lost(before, fault_home, allow_new=False)


@pytest.mark.parametrize("target", ["audio", "truth"])
def test_det_onto_an_input_is_refused(trained, main_in_process, fault_home, target):  # noqa: F811
    run, rec, truth = trained
    audio, csv = fault_home / "rec.wav", fault_home / "rec.csv"
    audio.write_bytes(rec.read_bytes())
    csv.write_text(truth.read_text())
    before = snapshot(fault_home)
    det = audio if target == "audio" else csv
    result = main_in_process("listen", run, audio, "--agent", "gru/ce_kl", "--truth", csv, "--det", det)
    assert_one_line_error(result, "name the same file", det.name)
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_the_default_det_path_is_checked_too(trained, main_in_process, fault_home):  # noqa: F811
    run, rec, truth = trained
    audio = fault_home / "rec.wav"
    audio.write_bytes(rec.read_bytes())
    (fault_home / "rec.det.png").write_bytes(b"\x89PNG a figure I made myself")
    before = snapshot(fault_home)
    result = main_in_process("listen", run, audio, "--agent", "gru/ce_kl", "--truth", truth)
    assert_one_line_error(result, "--det", "rec.det.png")
    assert_nothing_lost(before, fault_home, allow_new=False)


def test_listen_replaces_its_own_det_figure(trained, main_in_process, fault_home):  # noqa: F811
    run, rec, truth = trained
    det = fault_home / "det.png"
    for _ in range(2):
        result = main_in_process("listen", run, rec, "--agent", "gru/ce_kl", "--truth", truth, "--det", det)
        assert result.returncode == 0, str(result)
    assert det.read_bytes()[:4] == b"\x89PNG"
