"""listen: the detector's rule and scores on known answers, audio input, and a trained agent end to end."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from nrstream.agent import Agent
from nrstream.artifacts.checkpoints import CheckpointError
from nrstream.artifacts.trained_agent import AgentError, TrainedAgent
from nrstream.cli import main
from nrstream.deploy.detector import Detection, Detector, DetectorSettings, det_curve, plot_det, score
from nrstream.deploy.listen import _Resampler, audio_blocks
from nrstream.deploy.recording import TruthEvent
from nrstream.errors import DataFileError
from nrstream.stream.settings import StreamSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["yes", "no", "_silence_"]
FRAME_S = 0.01


def logits_for(segments: list[tuple[int, int, int]], total: int, strength: float = 8.0) -> torch.Tensor:
    """``[total, 3]`` logits: class ``c`` dominant on frames ``[a, b)``; elsewhere uniform ("don't know")."""
    logits = torch.zeros(total, len(CLASSES))
    for a, b, c in segments:
        logits[a:b, c] = strength
    return logits


# ---------------------------------------------------------------------------- detector


def test_one_detection_per_event_after_smoothing():
    det = Detector(CLASSES, FRAME_S, DetectorSettings(threshold=0.7, smooth_frames=5, refractory_s=0.2))
    found = det.update(logits_for([(100, 150, 0), (300, 340, 1)], 500))
    assert [d.word for d in found] == ["yes", "no"]
    # the 5-frame moving average of a step first reaches 0.7 on the 4th frame of the run
    assert [d.frame for d in found] == [103, 303]
    assert found[0].time_s == pytest.approx(1.03) and 0.7 <= found[0].confidence < 1


def test_chunking_does_not_change_detections():
    logits = logits_for([(10, 60, 0), (61, 90, 1), (200, 230, 0), (235, 300, 0)], 400)
    settings = DetectorSettings(threshold=0.6, smooth_frames=3, refractory_s=0.1)
    whole = Detector(CLASSES, FRAME_S, settings).update(logits)
    det = Detector(CLASSES, FRAME_S, settings)
    pieces = [d for i in range(0, 400, 7) for d in det.update(logits[i : i + 7])]
    key = lambda ds: [(d.frame, d.word, round(d.confidence, 5)) for d in ds]  # noqa: E731
    assert key(pieces) == key(whole) and len(whole) >= 3


def test_refractory_and_ignored_classes_and_dont_know():
    settings = DetectorSettings(threshold=0.6, smooth_frames=1, refractory_s=0.5)
    # two runs of "yes" 0.3 s apart: the second falls in the refractory period
    found = Detector(CLASSES, FRAME_S, settings).update(logits_for([(0, 10, 0), (40, 50, 0), (200, 210, 2)], 300))
    assert [d.frame for d in found] == [0]  # _silence_ is ignored
    # a flat posterior (entropy 1) never fires, even at threshold 0
    flat = DetectorSettings(threshold=0.0, smooth_frames=1, max_entropy=0.5)
    assert Detector(CLASSES, FRAME_S, flat).update(torch.zeros(100, 3)) == []


def test_score_known_answer():
    truth = [TruthEvent(1.0, 1.5, "yes"), TruthEvent(3.0, 3.4, "no"), TruthEvent(5.0, 5.5, "cat")]
    dets = [
        Detection(1.9, "yes", 0.9, 190),  # hit (within 1.0 s after the end)
        Detection(2.0, "yes", 0.9, 200),  # second detection of the same word: false alarm
        Detection(3.2, "yes", 0.9, 320),  # wrong word during "no": false alarm; "no" is missed
        Detection(5.2, "no", 0.8, 520),  # during "cat", not in the vocabulary: false alarm
    ]
    s = score(dets, truth, seconds=360.0, class_names=CLASSES)
    assert (s.hits, s.misses, s.false_alarms, s.targets) == (1, 1, 3, 2)
    assert s.recall == 0.5 and s.precision == 0.25 and s.false_alarms_per_hour == pytest.approx(30.0)


def test_det_curve_moves_with_the_threshold(tmp_path):
    settings = DetectorSettings(smooth_frames=1)
    det = Detector(CLASSES, FRAME_S, settings, record=True)
    # a strong "yes" at 1 s, a weak false "no" at 5 s
    logits = logits_for([(100, 130, 0)], 800)
    logits[500:520, 1] = 2.5  # posterior ~0.86
    det.update(logits)
    truth = [TruthEvent(1.0, 1.3, "yes")]
    points = det_curve(det.record, CLASSES, FRAME_S, truth, settings, thresholds=[0.5, 0.9, 0.9999])
    assert [p["miss_rate"] for p in points] == [0.0, 0.0, 1.0]
    assert [p["false_alarms_per_hour"] for p in points] == [pytest.approx(450.0), 0.0, 0.0]
    png = plot_det({"gru/ce_kl": points}, tmp_path / "det.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_are_checked():
    for bad in ({"threshold": 1.5}, {"smooth_frames": 0}, {"max_entropy": -0.1}, {"refractory_s": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DetectorSettings(**bad)


# ---------------------------------------------------------------------------- audio in


def test_resampler_equals_whole_signal_resampling():
    import torchaudio

    x = np.random.default_rng(0).standard_normal(44100 * 2).astype(np.float32) * 0.1
    for orig in (44100, 8000):
        want = torchaudio.functional.resample(torch.from_numpy(x), orig, 16000).numpy()
        r = _Resampler(orig, 16000)
        got = np.concatenate([r.push(x[i : i + 5000]) for i in range(0, len(x), 5000)] + [r.flush()])
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_audio_input_variants(tmp_path):
    t = np.arange(16000 * 2) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(tmp_path / "mono.wav", tone, 16000, subtype="PCM_16")
    soundfile.write(tmp_path / "stereo24.wav", np.stack([tone, tone], 1), 16000, subtype="PCM_24")
    soundfile.write(tmp_path / "at8k.wav", tone[::2], 8000, subtype="PCM_16")
    notes = []
    mono = np.concatenate(list(audio_blocks(tmp_path / "mono.wav", 16000, notify=notes.append)))
    stereo = np.concatenate(list(audio_blocks(tmp_path / "stereo24.wav", 16000, notify=notes.append)))
    assert len(mono) == len(stereo) == 32000 and np.abs(mono - stereo).max() < 1e-4
    assert notes == [f"nrstream: notice: {tmp_path / 'stereo24.wav'} has 2 channels; mixing them down to mono"]
    up = np.concatenate(list(audio_blocks(tmp_path / "at8k.wav", 16000, notify=notes.append)))
    assert len(up) == 32000 and "resampling to 16000 Hz" in notes[-1]
    (tmp_path / "text.wav").write_text("not audio at all\n")
    with pytest.raises(DataFileError, match="cannot read audio file .*text.wav"):
        list(audio_blocks(tmp_path / "text.wav", 16000))


# ---------------------------------------------------------------------------- a trained agent, end to end

WORDS = ["yes", "no", "up", "down"]
CONFIG = """
run: {{name: toy_listen, seed: 0, device: cpu, out_dir: {out}, checkpoint_dir: {ckpt}}}
data:
  source: synth_speech
  options: {{words: ["yes", "no", "up", "down"], renderings_per_word: 30, variation: none, progress: false}}
  stream: {{gap_min: 20, gap_max: 100, noise: recorded, background: recorded, snr_db: [5, 25]}}
agents:
  archs:
    - {{name: gru, options: {{hidden_size: 48}}}}
  losses: [ce_kl]
train: {{steps: 400, lanes: 16, chunk_length: 128, lr: 0.005, validate: false, progress: false}}
evaluate: {{lengths: [1], min_decisions: 20, endless_lanes: 1, endless_samples: 5, metrics: [accuracy]}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A GRU-48 trained with ce_kl on scene streams of a 4-word synth corpus (400 TBPTT steps, ~30 s of CPU).

    ``variation: none``: the clean espeak-ng words; the recording puts them into the background.
    """
    root = tmp_path_factory.mktemp("listen")
    config = root / "toy.yaml"
    config.write_text(CONFIG.format(out=root / "runs", ckpt=root / "ckpt"))
    assert main(["evaluate", str(config)]) == 0
    rec, truth = root / "rec.wav", root / "rec.csv"
    opts = ["-o", 'words=["yes","no","up","down"]', "-o", "renderings_per_word=30", "-o", "variation=none"]
    args = ["data", "make-recording", "synth_speech", *opts, "--minutes", "1", "--snr-db", "10", "20"]
    args += ["--gap-min", "20", "--gap-max", "100"]  # the training streams' gaps
    assert main([*args, "--out", str(rec), "--truth", str(truth), "--seed", "5"]) == 0
    return root / "runs" / "toy_listen", rec, truth


def run_cli(*args, stdin=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "nrstream.cli", *map(str, args)], capture_output=True, text=True, env=env, stdin=stdin
    )


def test_listen_finds_the_words(trained, tmp_path, capsys):
    run, rec, truth = trained
    det = tmp_path / "det.png"
    args = ["listen", run, rec, "--agent", "gru/ce_kl", "--truth", truth, "--det", det, "--format", "jsonl"]
    assert main(list(map(str, args))) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    found = [x for x in lines if "word" in x]
    s = next(x for x in lines if "score" in x)["score"]
    assert all(x["word"] in WORDS and 0.7 <= x["confidence"] <= 1 for x in found)
    # measured here (same seeds): 39 of 52 words, recall 0.75, precision 1.0, no false alarm, at threshold 0.7;
    # an untrained or paper-style agent finds none or fires on the background (precision ~0.1)
    assert s["targets"] >= 20 and s["recall"] >= 0.6 and s["precision"] >= 0.8, s
    assert det.read_bytes()[:4] == b"\x89PNG"


def test_stdin_through_a_real_pipe(trained, tmp_path):
    """``cat raw.pcm | nrstream listen RUN -``: a real shell pipe, as from ``arecord -f S16_LE -r 16000 -c 1``."""
    run, rec, _ = trained
    wave, rate = soundfile.read(str(rec), dtype="float32")  # a float WAV: libsndfile would not scale to int16
    assert rate == 16000
    pcm = np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)
    raw = tmp_path / "rec.s16le"
    raw.write_bytes(pcm.astype("<i2").tobytes())
    listen = f"{shlex.quote(sys.executable)} -m nrstream.cli listen {shlex.quote(str(run))} - --agent gru/ce_kl"
    piped = subprocess.run(
        f"cat {shlex.quote(str(raw))} | {listen} --format jsonl", shell=True, capture_output=True, text=True
    )
    wav = tmp_path / "rec16.wav"  # the same 16-bit samples as a WAV file
    soundfile.write(str(wav), pcm, 16000, subtype="PCM_16")
    from_file = run_cli("listen", run, wav, "--agent", "gru/ce_kl", "--format", "jsonl")
    assert piped.returncode == 0 and from_file.returncode == 0, piped.stderr
    a = [json.loads(x) for x in piped.stdout.splitlines()]
    b = [json.loads(x) for x in from_file.stdout.splitlines()]
    assert len(a) >= 10 and a == b


# ---------------------------------------------------------------------------- a checkpoint folder alone


@pytest.fixture(scope="module")
def checkpoint(trained):
    """The toy run's checkpoint folder (``ckpt/gru-ce_kl-<hash>``), which training gave an ``agent.json``."""
    run, _, _ = trained
    (folder,) = (run.parent.parent / "ckpt").glob("gru-ce_kl-*")
    return folder


def test_training_writes_agent_json(trained, checkpoint):
    run, _, _ = trained
    record = json.loads((checkpoint / "agent.json").read_text())
    data = json.loads((run / "results.json").read_text())["data"]
    assert (record["arch"], record["loss"], record["arch_options"], record["seed"]) == (
        "gru",
        "ce_kl",
        {"hidden_size": 48},
        0,
    )
    # everything load_agent reads from the run folder, recorded once more beside the weights
    for key in ("source", "options", "frontend", "normalized", "normalization", "class_names", "feature_size"):
        assert record["data"][key] == data[key], key
    assert record["data"]["class_names"] == sorted(WORDS) and record["data"]["sample_rate"] == 16000
    assert len(record["data"]["normalization"]["mean"]) == record["data"]["feature_size"] == 40
    assert not list(checkpoint.glob(".*.tmp"))


def test_a_trained_agent_round_trips_from_each_path_form(trained, checkpoint):
    """TrainedAgent.load: a run folder, a checkpoint folder and a .pt give the same agent, stream and protocol."""
    run, _, _ = trained
    forms = [TrainedAgent.load(run), TrainedAgent.load(run / "results.json"), TrainedAgent.load(checkpoint),
             TrainedAgent.load(checkpoint / "best.pt")]  # fmt: skip
    want = StreamSettings(gap_min=20, gap_max=100, noise="recorded", background="recorded", snr_db=[5, 25])
    for agent in forms:
        assert (agent.label, agent.protocol, agent.source) == ("gru/ce_kl", "continual", "synth_speech")
        assert agent.stream == want
        assert agent.data["options"]["words"] == ["yes", "no", "up", "down"]
        state = agent.model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in forms[0].model.state_dict().items())
    assert isinstance(forms[0].agent(), Agent) and forms[0].agent().reset_policy == "never"


def test_make_recording_like_an_agent_takes_its_source_and_stream(trained, checkpoint, tmp_path, capsys):
    """--like-agent: the agent's source, options and training stream are the recording's defaults; flags win."""
    _, rec, truth = trained
    out = tmp_path / "like.wav"
    args = ["data", "make-recording", "--like-agent", str(checkpoint), "--minutes", "0.2", "--seed", "5"]
    assert main([*args, "--out", str(out), "--truth", str(tmp_path / "like.csv"), "--snr-db", "10", "20"]) == 0
    printed = capsys.readouterr().out
    assert "of synth_speech" in printed and "gap_min 20, gap_max 100, snr_db [10, 20]" in printed, printed


def listen_lines(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert main(["listen", *map(str, args), "--format", "jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_listen_on_a_checkpoint_equals_listen_on_the_run(trained, checkpoint, capsys):
    run, rec, _ = trained
    from_run = listen_lines(capsys, run, rec, "--agent", "gru/ce_kl")
    from_folder = listen_lines(capsys, checkpoint, rec)  # one agent: --agent may be left out
    from_file = listen_lines(capsys, checkpoint / "best.pt", rec, "--agent", "gru/ce_kl")
    assert len(from_run) >= 10 and from_folder == from_run and from_file == from_run
    a, b = TrainedAgent.load(run, "gru/ce_kl"), TrainedAgent.load(checkpoint)
    assert (a.label, a.class_names, a.frontend, a.arch_options) == (b.label, b.class_names, b.frontend, b.arch_options)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    # a file: exactly its weights (a folder: best.pt, else last.pt)
    last = TrainedAgent.load(checkpoint / "last.pt").model.state_dict()
    want = torch.load(checkpoint / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last[k], want[k]) for k in want) and last.keys() == want.keys()


def test_blocks_of_k_frames_give_the_frame_by_frame_detections(trained):
    """``frames_per_call = k``: the model called on k frames at a time gives what k = 1 gives, frame for frame."""
    from nrstream.deploy.listen import ListenError, listen

    run, rec, _ = trained
    agent = TrainedAgent.load(run, "gru/ce_kl")
    key = lambda r: [(d.frame, d.word, round(d.confidence, 4)) for d in r.detections["gru/ce_kl"]]  # noqa: E731
    results = {k: listen([agent], audio_blocks(rec, 16000), frames_per_call=k, record=True) for k in (1, 4, 10, None)}
    assert len(key(results[1])) >= 10
    for k in (4, 10, None):
        assert key(results[k]) == key(results[1]) and results[k].frames == results[1].frames, k
        a, b = results[k].records["gru/ce_kl"], results[1].records["gru/ce_kl"]
        assert np.allclose(a.arrays()[1], b.arrays()[1], atol=1e-5), k  # the top posterior of every frame
    with pytest.raises(ListenError, match="frames per call must be a positive integer, got 0"):
        listen([agent], audio_blocks(rec, 16000), frames_per_call=0)


def test_export_from_a_checkpoint_equals_export_from_the_run(trained, checkpoint, tmp_path):
    from nrstream.deploy.export import export_agent

    run, _, _ = trained
    formats = ["torchscript"] + (["onnx"] if _has_onnxruntime() else [])
    for fmt in formats:
        a = export_agent(run, "gru/ce_kl", fmt, tmp_path / f"run.{fmt}")
        b = export_agent(checkpoint, None, fmt, tmp_path / f"ckpt.{fmt}")
        assert json.loads(a.sidecar.read_text()) == json.loads(b.sidecar.read_text())
        x = torch.randn(2, 50, 40, generator=torch.Generator().manual_seed(3))
        state = [torch.randn(2, 1, 48, generator=torch.Generator().manual_seed(4))]
        outs = [_run_exported(fmt, path, x, state) for path in (a.path, b.path)]
        assert all(torch.equal(p, q) for p, q in zip(*outs, strict=True)), fmt


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _run_exported(fmt, path, x, state) -> list[torch.Tensor]:
    if fmt == "torchscript":
        with torch.no_grad():
            return list(torch.jit.load(str(path))(x, *state))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: t.numpy() for n, t in zip(names, [x, *state], strict=True)}
    return [torch.from_numpy(o) for o in session.run(None, feeds)]


def test_what_a_checkpoint_refuses(trained, checkpoint, tmp_path):
    run, _, _ = trained
    with pytest.raises(AgentError, match=f"agent 'lstm/ce' is not in {checkpoint}; it has gru/ce_kl"):
        TrainedAgent.load(checkpoint, "lstm/ce")
    old = tmp_path / "gru-ce_kl-old"  # a checkpoint folder trained before agent.json existed
    old.mkdir()
    (old / "last.pt").write_bytes((checkpoint / "last.pt").read_bytes())
    with pytest.raises(AgentError) as info:
        TrainedAgent.load(old)
    assert str(info.value).startswith(f"{old} is a checkpoint folder without agent.json")
    assert "pass the run folder that used it instead" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(AgentError, match="is neither a run folder .* nor a checkpoint folder"):
        TrainedAgent.load(tmp_path)
    failed = tmp_path / "all_failed"  # a run folder whose every job failed
    failed.mkdir()
    (failed / "results.json").write_text(json.dumps({"format": 2, "runs": [], "data": {}, "failed": [{}]}))
    with pytest.raises(AgentError, match="all_failed holds no trained agent"):
        TrainedAgent.load(failed)
    broken = tmp_path / "gru-ce_kl-broken"
    shutil.copytree(checkpoint, broken)
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="best.pt is not a valid nrstream checkpoint"):
        TrainedAgent.load(broken)
    (old / "agent.json").write_text('{"format": 99}')
    with pytest.raises(CheckpointError, match="agent.json is not an agent record this nrstream reads"):
        TrainedAgent.load(old / "last.pt")


def test_bad_input_is_one_line(trained, tmp_path):
    run, rec, _ = trained
    (tmp_path / "notes.wav").write_text("hello")
    cases = [
        (["listen", run, tmp_path / "notes.wav", "--agent", "gru/ce_kl"], "cannot read audio file"),
        (["listen", run, rec, "--agent", "lstm/ce"], "agent 'lstm/ce' is not in"),
        (
            ["listen", tmp_path, rec, "--agent", "gru/ce_kl"],
            "is neither a run folder (no results.json) nor a checkpoint",
        ),
        (["listen", run, rec, "--agent", "gru/ce_kl", "--threshold", "2"], "threshold"),
    ]
    for args, message in cases:
        done = run_cli(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    empty = run_cli("listen", run, "-", "--agent", "gru/ce_kl", stdin=subprocess.DEVNULL)
    assert empty.returncode == 2 and "no audio on stdin" in empty.stderr
    assert not list(tmp_path.glob("*.png"))  # nothing written


def test_export_cli(trained, tmp_path):
    run, _, _ = trained
    out = tmp_path / "gru.onnx"
    (tmp_path / "gru.onnx.json").write_text("my notes")  # not nrstream's: refused, left as it was
    refused = run_cli("export", run, "--agent", "gru/ce_kl", "--format", "onnx", "--out", out)
    assert refused.returncode == 2 and "nrstream did not write it" in refused.stderr
    assert (tmp_path / "gru.onnx.json").read_text() == "my notes" and not out.exists()
    (tmp_path / "gru.onnx.json").unlink()
    for _ in range(2):  # the second export replaces the first, nrstream's own files, atomically
        done = run_cli("export", run, "--agent", "gru/ce_kl", "--format", "onnx", "--out", out)
        if done.returncode != 0 and "onnxruntime" in done.stderr:
            pytest.skip("pip install 'nrstream[export]'")
        assert done.returncode == 0, done.stderr
    side = json.loads((tmp_path / "gru.onnx.json").read_text())
    assert side["class_names"] == sorted(WORDS) and side["frontend"]["n_mels"] == 40
    assert len(side["normalization"]["mean"]) == 40 and side["inputs"]["state_0"] == ["B", 1, 48]
    import onnx

    onnx.checker.check_model(onnx.load(str(out)))  # a whole ONNX model
    # no temporary files left; the manifest records what nrstream wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nrstream-outputs.json", "gru.onnx", "gru.onnx.json"]
    bad = run_cli("export", run, "--agent", "gru/ce_kl", "--format", "tflite", "--out", tmp_path / "x")
    assert bad.returncode == 2 and not (tmp_path / "x").exists()
