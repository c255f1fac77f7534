"""Run trained agents over a recording of any length: audio blocks → features → agent → detections.

The pipeline, per block of samples (1 s by default):
:class:`~nrstream.streaming_frontend.StreamingFrontend` (the agent's front end and train
statistics) → the agent's model with its recurrent state carried forever (never reset,
the point of nrstream) → :class:`~nrstream.detector.Detector`. Nothing grows with the
length of the input except the detections and, when scoring, a 6-byte-per-frame record
for the DET curve (22 kB per hour), so memory stays flat and a long input never stops the run.

Audio in (:func:`audio_blocks`): a WAV (or any file soundfile reads) in blocks, mixed down to
mono and resampled to the agent's rate with a notice when needed; or ``-``: raw 16 kHz
signed 16-bit little-endian mono PCM on stdin (``arecord -f S16_LE -r 16000 -c 1``).

Loading a trained agent (:func:`load_agent`) is the one place that knows the layouts of
the run folder, the checkpoint folder (``agent.json`` beside the weights) and its files.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nrstream.detector import Detection, Detector, DetectorSettings, FrameRecord
from nrstream.errors import DataFileError, NrstreamError
from nrstream.log import line_logger
from nrstream.streaming_frontend import StreamingFrontend

__all__ = ["LoadedAgent", "load_agent", "audio_blocks", "listen", "ListenResult", "BLOCK_SECONDS"]

BLOCK_SECONDS = 1.0


class ListenError(NrstreamError):
    """A run, agent or audio input that ``listen``/``export`` cannot use (one line)."""


@dataclass
class LoadedAgent:
    """A trained agent and everything needed to feed it raw audio."""

    label: str  # "arch/loss"
    model: torch.nn.Module
    class_names: list[str]
    frontend: dict  # FeatureFrontend parameters
    mean: torch.Tensor | None  # [F] train statistics (None: features were not standardised)
    std: torch.Tensor | None
    arch: str
    arch_options: dict
    source: str

    @property
    def feature_size(self) -> int:
        return int(self.model.input_size) if hasattr(self.model, "input_size") else len(self.mean)


CHECKPOINT_FILES = ("best.pt", "last.pt")


def _weights(folder: Path, file: Path | None = None) -> dict:
    """The weights of ``file``, else of ``folder``'s ``best.pt``, else its ``last.pt``."""
    from nrstream.checkpoint import load_checkpoint  # one-line CheckpointError for a file that is not one

    for path in [file] if file is not None else [folder / name for name in CHECKPOINT_FILES]:
        if path.is_file():
            weights = load_checkpoint(path).get("model")
            if not isinstance(weights, dict):
                raise ListenError(f"{path} holds no model weights; give best.pt or last.pt of a checkpoint folder")
            return weights
    raise ListenError(f"{folder} holds no best.pt or last.pt; train the agent again (nrstream train)")


def _pick(run: Path, label: str | None, have: list[str]) -> str:
    """``label``, checked against the agents ``run`` holds; without one, the only agent there is."""
    if not have:
        raise ListenError(f"{run} holds no trained agent (its jobs failed?); give another run folder")
    if label is None:
        if len(have) == 1:
            return have[0]
        raise ListenError(f"{run} holds several agents ({', '.join(have)}); choose one with --agent ARCH/LOSS")
    if label not in have:
        raise ListenError(f"agent {label!r} is not in {run}; it has {', '.join(have)}")
    return label


def _from_run_folder(results_file: Path, label: str | None) -> tuple[str, dict, dict, Path, Path | None]:
    run = results_file.parent
    try:
        results = json.loads(results_file.read_text())
        runs, data = results["runs"], results["data"]
        have = sorted({f"{r['arch']}/{r['loss']}" for r in runs})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ListenError(f"{results_file} is not an nrstream results.json ({type(exc).__name__}: {exc})") from None
    label = _pick(run, label, have)
    arch, _, loss = label.partition("/")
    # several seeds (results.json format 2): the lowest seed's agent
    entry = min((r for r in runs if r["arch"] == arch and r["loss"] == loss), key=lambda r: r.get("seed", 0))
    try:
        folder = Path(entry["training"]["checkpoint"])
    except (KeyError, TypeError):
        raise ListenError(f"{results_file}: agent {label} names no checkpoint folder (training.checkpoint)") from None
    return label, data, dict(entry.get("arch_options") or {}), folder, None


def _from_checkpoint(folder: Path, file: Path | None, label: str | None) -> tuple[str, dict, dict, Path, Path | None]:
    from nrstream.checkpoint import AGENT_FILE, read_agent_file

    record = read_agent_file(folder)
    if record is None:
        raise ListenError(
            f"{folder} is a checkpoint folder without {AGENT_FILE} (trained before nrstream recorded its front end, "
            "statistics and classes there); pass the run folder that used it instead (runs/NAME, with results.json)"
        )
    label = _pick(folder, label, [f"{record['arch']}/{record['loss']}"])
    return label, record["data"], dict(record.get("arch_options") or {}), folder, file


def _locate(path: Path, label: str | None) -> tuple[str, dict, dict, Path, Path | None]:
    """(label, data description, arch options, checkpoint folder, weights file or None) for any accepted path."""
    if path.is_file() and path.name == "results.json":
        return _from_run_folder(path, label)
    if path.is_file() and path.name in CHECKPOINT_FILES:
        return _from_checkpoint(path.parent, path, label)
    if path.is_dir() and (path / "results.json").is_file():
        return _from_run_folder(path / "results.json", label)
    if path.is_dir() and any((path / name).is_file() for name in CHECKPOINT_FILES):
        return _from_checkpoint(path, None, label)
    what = (
        "is neither a run folder (no results.json) nor a checkpoint folder (no best.pt or last.pt)"
        if path.exists()
        else "does not exist"
    )
    raise ListenError(
        f"{path} {what}; give a run folder (runs/NAME, from `nrstream evaluate`), "
        "a checkpoint folder (runs/checkpoints/ARCH-LOSS-HASH) or its best.pt/last.pt"
    )


def load_agent(run: str | Path, label: str | None = None) -> LoadedAgent:
    """Load a trained agent onto the CPU from a run folder, a checkpoint folder, or a checkpoint file.

    ``run`` may be:

    * a run folder (``results.json``, or that file): ``label`` (``arch/loss``) picks the agent
      (the lowest seed's, when the run has several); the run records the architecture
      options, the data description and the checkpoint folder, whose ``best.pt`` (else
      ``last.pt``) gives the weights;
    * a checkpoint folder (``<checkpoint_dir>/<arch>-<loss>-<hash>``) with ``agent.json``
      (:data:`nrstream.checkpoint.AGENT_FILE`, written by training since issue 13): the same
      description, for its one agent; weights from ``best.pt``, else ``last.pt``;
    * a ``best.pt`` or ``last.pt`` file in such a folder: exactly those weights.

    ``label`` may be omitted when ``run`` holds one agent (a checkpoint always does); given,
    it must match. The data description gives the front end parameters, the train
    statistics the features were standardised with (``normalization``) and the classes. A
    description written before the sources recorded their statistics gets them recomputed
    from the data source's train split (its cached features, loaded with
    ``normalize: false``), the same computation the source made.

    Raises:
        ListenError: neither a run nor a checkpoint folder (or one without ``agent.json``),
            an agent not there, a source without an audio front end, weights that do not fit.
    """
    from nrstream.datasets import load_dataset
    from nrstream.plugins import get_registry

    where = Path(run)
    label, data, arch_options, folder, file = _locate(where, label)
    arch = label.partition("/")[0]
    frontend = data.get("frontend")
    if not isinstance(frontend, dict):
        raise ListenError(
            f"{where}: agent {label} was trained on {data.get('source')!r}, which has no audio front end "
            "(Dataset.info['frontend']); listen needs an audio data source such as speech_commands or synth_speech"
        )
    class_names = list(data.get("class_names") or [])
    options = dict(data.get("options") or {})
    source = data["source"]
    mean = std = None
    stats = data.get("normalization")
    if isinstance(stats, dict) and "mean" in stats:  # recorded by the speech sources since issue 16
        mean = torch.tensor(stats["mean"], dtype=torch.float32)
        std = torch.tensor(stats["std"], dtype=torch.float32)
    elif data.get("normalized", True):  # older run folders: recompute them as the source did
        raw = load_dataset(source, **{**options, "normalize": False})
        mean, std = raw.splits["train"].feature_stats()
        class_names = class_names or raw.class_names
    try:
        streaming = StreamingFrontend(frontend, mean=mean, std=std)
    except (TypeError, ValueError) as exc:
        raise ListenError(
            f"{where}: agent {label}'s feature front end {frontend} is not one this nrstream has ({exc})"
        ) from None
    size = int(data.get("feature_size") or streaming.feature_size)
    if size != streaming.feature_size:
        raise ListenError(
            f"{where}: agent {label} takes {size} features per frame but its recorded front end gives "
            f"{streaming.feature_size}; it does not match this nrstream's front end"
        )
    model = get_registry().create("architecture", arch, input_size=size, num_classes=len(class_names), **arch_options)
    try:
        model.load_state_dict(_weights(folder, file))
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ListenError(
            f"{file or folder}: the weights do not fit {label} as {where} describes it ({detail})"
        ) from None
    model.eval()
    return LoadedAgent(label, model, class_names, frontend, mean, std, arch, arch_options, source)


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
    notify = notify or line_logger(logging.getLogger("nrstream.listen"))  # issue 15 (J)
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


def listen(
    agents: list[LoadedAgent],
    blocks: Iterable[np.ndarray],
    settings: DetectorSettings | None = None,
    *,
    record: bool = False,
    on_detection: Callable[[str, Detection], None] | None = None,
) -> ListenResult:
    """Feed ``blocks`` (mono float32 at the agents' rate) through every agent; see the module docstring.

    ``on_detection(label, detection)`` is called as soon as a detection fires.
    """
    from nrstream.agent import Agent

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
    samples = 0

    def feed(a, agent, detector, feats):
        if feats.shape[0] == 0:
            return
        with torch.no_grad():
            logits = agent(feats[None])[0]
        for d in detector.update(logits):
            found[a.label].append(d)
            if on_detection is not None:
                on_detection(a.label, d)

    for block in blocks:
        block = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        samples += block.numel()
        for a, fe, agent, detector in lanes:
            feed(a, agent, detector, fe.push(block))
    frames = 0
    for a, fe, agent, detector in lanes:
        feed(a, agent, detector, fe.flush())
        frames = detector._state["offset"]
    rate = lanes[0][1].sample_rate if lanes else 16000
    records = {a.label: d.record for a, _, _, d in lanes if d.record is not None}
    frame_s = {a.label: d.frame_s for a, _, _, d in lanes}
    return ListenResult(found, samples / rate, frames, records, frame_s)
