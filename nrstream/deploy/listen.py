"""Run trained agents over a recording of any length: audio blocks → features → agent → detections.

The pipeline, per block of samples (1 s by default):
:class:`~nrstream.data.streaming_frontend.StreamingFrontend` (the agent's front end and train
statistics) → the agent's model with its recurrent state carried forever (never reset,
the point of nrstream) → :class:`~nrstream.deploy.detector.Detector`. Nothing grows with the
length of the input except the detections and, when scoring, a 6-byte-per-frame record
for the DET curve (22 kB per hour), so memory stays flat and a long input never stops the run.

Audio in (:func:`audio_blocks`): a WAV (or any file soundfile reads) in blocks, mixed down to
mono and resampled to the agent's rate with a notice when needed; or ``-``: raw 16 kHz
signed 16-bit little-endian mono PCM on stdin (``arecord -f S16_LE -r 16000 -c 1``).

A trained agent comes in as an artifact (:class:`nrstream.artifacts.trained_agent.TrainedAgent`).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from nrstream.artifacts.trained_agent import TrainedAgent
from nrstream.data.streaming_frontend import MAX_ABS, StreamingFrontend
from nrstream.deploy.detector import Detection, Detector, DetectorSettings, FrameRecord, Score, det_curve, score
from nrstream.errors import DataFileError, NrstreamError
from nrstream.log import line_logger

__all__ = ["audio_blocks", "listen", "ListenResult", "ListenError", "AgentScore", "score_listening", "BLOCK_SECONDS"]

BLOCK_SECONDS = 1.0


class ListenError(NrstreamError):
    """An audio input that ``listen`` cannot use (one line)."""


# ---------------------------------------------------------------------------- audio in


def _stdin_blocks(samples: int, stream=None) -> Iterator[np.ndarray]:
    stream = stream if stream is not None else sys.stdin.buffer
    leftover = b""
    total = 0
    while True:
        chunk = stream.read(2 * samples)
        if not chunk:
            break
        chunk = leftover + chunk
        cut = len(chunk) - len(chunk) % 2
        leftover = chunk[cut:]
        if cut:
            total += cut // 2
            yield np.frombuffer(chunk[:cut], dtype="<i2").astype(np.float32) / 32768.0
    if total == 0:
        raise ListenError("no audio on stdin: '-' expects raw 16 kHz signed 16-bit little-endian mono PCM")


class _Resampler:
    """Block-wise band-limited resampling (torchaudio's sinc filter) with context on both sides.

    Each call resamples whole periods of ``orig / gcd`` input samples with ``context`` samples
    of real signal (zeros before the start and after the end) on each side, so the output
    is the whole-signal resampling up to the filter's negligible truncation; delay: ``context``.
    """

    def __init__(self, orig: int, new: int) -> None:
        g = math.gcd(orig, new)
        self.orig, self.new = orig, new
        self.in_unit, self.out_unit = orig // g, new // g
        self.context = self.in_unit * math.ceil(2048 / self.in_unit)
        self.buf = np.zeros(self.context, dtype=np.float32)  # left context + pending samples
        self.seen = self.emitted = 0

    def _middle(self, wave: np.ndarray, inner: int) -> np.ndarray:
        import torchaudio

        out = torchaudio.functional.resample(torch.from_numpy(wave), self.orig, self.new).numpy()
        lo = self.context // self.in_unit * self.out_unit
        return out[lo : lo + inner // self.in_unit * self.out_unit]

    def push(self, block: np.ndarray) -> np.ndarray:
        self.seen += len(block)
        self.buf = np.concatenate([self.buf, block.astype(np.float32)])
        inner = (len(self.buf) - 2 * self.context) // self.in_unit * self.in_unit
        if inner <= 0:
            return np.zeros(0, dtype=np.float32)
        out = self._middle(self.buf[: inner + 2 * self.context], inner)
        self.buf = self.buf[inner:]
        self.emitted += len(out)
        return out

    def flush(self) -> np.ndarray:
        pending = len(self.buf) - self.context
        inner = pending + (-pending) % self.in_unit
        wave = np.concatenate([self.buf, np.zeros(inner - pending + self.context, dtype=np.float32)])
        out = self._middle(wave, inner)
        total = math.ceil(self.seen * self.new / self.orig)
        return out[: max(0, total - self.emitted)]


def audio_blocks(
    path: str | Path,
    sample_rate: int,
    block_seconds: float = BLOCK_SECONDS,
    notify: Callable[[str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sample_rate`` from a sound file, or from stdin for ``"-"``.

    A file is opened and checked here, before any block is read (so a command can fail
    before printing anything); stdin is read lazily.

    Raises:
        DataFileError: not a readable sound file, or an empty one (names it); ListenError: empty stdin.
    """
    notify = notify or line_logger(logging.getLogger("nrstream.deploy.listen"))  # issue 15 (J)
    if str(path) == "-":
        return _stdin_blocks(max(1, round(block_seconds * sample_rate)))
    import soundfile

    path = Path(path)
    try:
        handle = soundfile.SoundFile(str(path))
    except Exception as exc:  # soundfile raises its own LibsndfileError, RuntimeError or OSError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"cannot read audio file {path}: {detail}") from None
    if handle.frames == 0:
        handle.close()
        raise DataFileError(f"audio file {path} holds no samples")
    if handle.channels > 1:
        notify(f"nrstream: notice: {path} has {handle.channels} channels; mixing them down to mono")
    resampler = None
    if handle.samplerate != sample_rate:
        notify(f"nrstream: notice: {path} is at {handle.samplerate} Hz; resampling to {sample_rate} Hz")
        resampler = _Resampler(handle.samplerate, sample_rate)
    return _file_blocks(handle, resampler, max(1, round(block_seconds * handle.samplerate)))


def _file_blocks(handle, resampler: _Resampler | None, samples: int) -> Iterator[np.ndarray]:
    with handle:
        while True:
            data = handle.read(samples, dtype="float32", always_2d=True)
            if len(data) == 0:
                break
            block = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            yield resampler.push(block) if resampler else np.ascontiguousarray(block)
        if resampler:
            yield resampler.flush()


# ---------------------------------------------------------------------------- the run


@dataclass
class ListenResult:
    detections: dict[str, list[Detection]]
    seconds: float
    frames: int
    records: dict[str, FrameRecord] = field(default_factory=dict)
    frame_s: dict[str, float] = field(default_factory=dict)  # seconds per frame, per agent
    #: seconds of input that were NaN, infinite or far beyond full scale, replaced by silence
    unusable_s: float = 0.0
    #: per agent, the times (s) at which its state became non-finite and was reset
    resets: dict[str, list[float]] = field(default_factory=dict)


#: at most this many "unusable audio" notices; further stretches are only counted
MAX_NOTICES = 5


class _Unusable:
    """Stretches of unusable samples (NaN, infinite, beyond ±MAX_ABS): one notice per stretch, a total.

    A stretch is reported when it ends (its time range and how many samples), so a long bad
    stretch spread over many blocks is one line, not one per block.
    """

    def __init__(self, rate: int, notify: Callable[[str], None]) -> None:
        self.rate, self.notify = rate, notify
        self.total = self.stretches = 0
        self.open: list[int] | None = None  # [first bad sample, last bad sample + 1, count]

    def block(self, block: np.ndarray, offset: int) -> np.ndarray:
        """``block`` with its unusable samples replaced by 0.0 (silence); ``offset``: its first sample."""
        usable = np.abs(block) <= MAX_ABS  # false for NaN and both infinities
        if usable.all():
            if self.open is not None and len(block):
                self.close()
            return block
        bad = np.flatnonzero(~usable)
        first, last, count = offset + int(bad[0]), offset + int(bad[-1]) + 1, len(bad)
        if self.open is not None and int(bad[0]) > 0 and usable[: bad[0]].all():
            self.close()  # good samples came between the open stretch and this one
        if self.open is None:
            self.open = [first, last, 0]
        self.open[1], self.open[2] = last, self.open[2] + count
        self.total += count
        if last < offset + len(block) and usable[int(bad[-1]) + 1 :].all():
            self.close()
        return np.where(usable, block, np.float32(0.0)).astype(np.float32)

    def close(self) -> None:
        if self.open is None:
            return
        first, last, count = self.open
        self.open = None
        self.stretches += 1
        if self.stretches <= MAX_NOTICES:
            more = " (further stretches are only counted)" if self.stretches == MAX_NOTICES else ""
            self.notify(
                f"nrstream: warning: audio {first / self.rate:.3f}-{last / self.rate:.3f} s: {count} NaN, infinite "
                f"or out-of-range samples replaced by silence{more}"
            )


def _finite_state(state) -> bool:
    if state is None:
        return True
    if isinstance(state, torch.Tensor):
        return bool(torch.isfinite(state).all())
    return all(_finite_state(s) for s in state)


def listen(
    agents: list[TrainedAgent],
    blocks: Iterable[np.ndarray],
    settings: DetectorSettings | None = None,
    *,
    record: bool = False,
    on_detection: Callable[[str, Detection], None] | None = None,
    notify: Callable[[str], None] | None = None,
    frames_per_call: int | None = None,
) -> ListenResult:
    """Feed ``blocks`` (mono float32 at the agents' rate) through every agent; see the module docstring.

    ``on_detection(label, detection)`` is called as soon as a detection fires.

    Bad input never poisons the carried state: NaN, infinite or out-of-range samples become
    silence (one ``notify`` line per stretch: time range and count; the total is
    :attr:`ListenResult.unusable_s`). Should an architecture still produce a non-finite logit or
    state (one ``isfinite`` reduction per block), its state is reset with a notice, the block's
    frames count as "don't know", and the detections after it carry ``after_reset=True``.

    ``frames_per_call``: the model is called on exactly ``k`` frames ``[1, k, F]`` at a time, the
    state carried from call to call (the remainder waits for the next audio block; the last
    call at the end of the input may be shorter), as a device that runs the model every ``k``
    hops does: the fixed cost of a call is paid once per ``k`` frames, and a decision waits up
    to ``k - 1`` hops (``(k - 1) x 10 ms``). The outputs, and so the detections, are those of
    frame-by-frame calls (up to float rounding). ``None`` (default): one call per audio block,
    whatever number of frames the front end gives for it.
    """
    from nrstream.agent import Agent

    if frames_per_call is not None and (
        not isinstance(frames_per_call, int) or isinstance(frames_per_call, bool) or frames_per_call < 1
    ):
        raise ListenError(f"frames per call must be a positive integer, got {frames_per_call!r}")
    notify = notify or line_logger(logging.getLogger("nrstream.deploy.listen"))

    settings = settings or DetectorSettings()
    lanes = []
    for a in agents:
        fe = StreamingFrontend(a.frontend, mean=a.mean, std=a.std)
        if fe.feature_size != a.feature_size:
            raise ListenError(
                f"agent {a.label} takes {a.feature_size} features per frame but its front end gives {fe.feature_size}"
            )
        detector = Detector(a.class_names, fe.hop / fe.sample_rate, settings, record=record)
        agent = Agent(a.model, "never")
        agent.reset(1, "cpu")
        lanes.append((a, fe, agent, detector))
    found: dict[str, list[Detection]] = {a.label: [] for a in agents}
    resets: dict[str, list[float]] = {a.label: [] for a in agents}
    pending: dict[str, torch.Tensor] = {}  # frames_per_call: [t < k, F] features waiting for a full call
    samples = 0
    rate = lanes[0][1].sample_rate if lanes else 16000
    unusable = _Unusable(rate, notify)

    def call(a, agent, detector, feats):
        with torch.no_grad():
            logits = agent(feats[None])[0]
        if not (bool(torch.isfinite(logits).all()) and _finite_state(agent.state)):
            at = detector._state["offset"] * detector.frame_s
            resets[a.label].append(at)
            notify(
                f"nrstream: warning: agent {a.label}: its state became NaN or infinite near {at:.2f} s; reset it "
                "(detections after this point say after_reset)"
            )
            agent.reset(1, "cpu")
            logits = torch.zeros_like(logits)  # uniform: "don't know" for this block
        for d in detector.update(logits):
            if resets[a.label]:
                d = replace(d, after_reset=True)
            found[a.label].append(d)
            if on_detection is not None:
                on_detection(a.label, d)

    def feed(a, agent, detector, feats, last: bool = False):
        if frames_per_call is None:
            if feats.shape[0]:
                call(a, agent, detector, feats)
            return
        if a.label in pending:
            feats = torch.cat([pending.pop(a.label), feats])
        whole = feats.shape[0] // frames_per_call * frames_per_call
        for begin in range(0, whole, frames_per_call):
            call(a, agent, detector, feats[begin : begin + frames_per_call])
        rest = feats[whole:]
        if rest.shape[0] and last:
            call(a, agent, detector, rest)
        elif rest.shape[0]:
            pending[a.label] = rest

    for block in blocks:
        block = unusable.block(np.ascontiguousarray(block, dtype=np.float32), samples)
        block = torch.from_numpy(block)
        samples += block.numel()
        for a, fe, agent, detector in lanes:
            feed(a, agent, detector, fe.push(block))
    unusable.close()
    frames = 0
    for a, fe, agent, detector in lanes:
        feed(a, agent, detector, fe.flush(), last=True)
        frames = detector._state["offset"]
    records = {a.label: d.record for a, _, _, d in lanes if d.record is not None}
    frame_s = {a.label: d.frame_s for a, _, _, d in lanes}
    if unusable.stretches > MAX_NOTICES:
        notify(f"nrstream: warning: {unusable.stretches} stretches of unusable audio in all")
    return ListenResult(found, samples / rate, frames, records, frame_s, unusable.total / rate, resets)


@dataclass
class AgentScore:
    """One agent's detections scored against the truth: the score at the detector's threshold and its DET curve."""

    label: str
    score: Score
    det: list[dict]


def score_listening(
    agents: list[TrainedAgent], result: ListenResult, truth: list, settings: DetectorSettings
) -> list[AgentScore]:
    """Score every agent's detections of a :func:`listen` run (made with ``record=True``) against ``truth``.

    ``truth`` as :func:`nrstream.deploy.recording.read_truth` reads it. Hits, misses and false
    alarms at ``settings.threshold`` (:func:`nrstream.deploy.detector.score`), and the DET curve
    over thresholds (:func:`nrstream.deploy.detector.det_curve`), one :class:`AgentScore` per agent.
    """
    return [
        AgentScore(
            a.label,
            score(result.detections[a.label], truth, result.seconds, a.class_names),
            det_curve(result.records[a.label], a.class_names, result.frame_s[a.label], truth, settings),
        )
        for a in agents
    ]
