"""Long, realistic recordings for ``nrstream listen``: words spoken into a running background.

:func:`make_recording` builds a WAV file of any length from one split of an audio data
source (``speech_commands``, ``synth_speech``, or any source whose ``Dataset.info["root"]``
is a folder in the Speech Commands layout), and a ground-truth CSV beside it.

The recording is the same kind of signal as a scene stream (:mod:`nrstream.stream.scene`) at the
same :class:`~nrstream.stream.settings.StreamSettings` (``gap_min``, ``gap_max``, ``snr_db``,
``level_db``, ``trim_db``, ``tail``; defaults: StreamSettings' own), made in the waveform
domain, with the scene's definitions computed by the source's own front end
(``info["frontend"]``; a log-mel front end with the same framing when the source uses
MFCC or deltas). Never digital silence:

* **Background**: always the split's part of the ``_background_noise_`` recordings (the
  scene's ``background: recorded``, whatever ``background`` the settings name), cut as the
  loaders cut them (``noise_split``, default first 80 % train, next 10 % validation, last
  10 % test), at their recorded level, played continuously in segments of up to 20 s
  (the scene's ``SEGMENT`` of 2000 frames) from random recordings and offsets, joined by
  50 ms cross-fades. It runs between **and under** the words.
* **Words**: the split's clips without replacement (reshuffled when all were used), each
  zero-padded or cut to ``clip_seconds`` as the loader does. Its **voiced frames** are the
  scene's (:func:`nrstream.stream.scene.voiced_extent` on the clip's features): from the first to
  the last frame whose mel power (summed over bands) is within ``trim_db`` of the loudest;
  the word spans them plus ``tail`` frames, cut at the clip's length. The audio cut from the
  clip covers those frames' analysis windows and a few ms more, with 5 ms fades outside
  the windows, and is placed so that its frames fall on the recording's 10 ms frame grid.
* **SNR**: each word is scaled so that its mean frame power (mel power summed over bands)
  over its voiced frames is ``snr`` dB above the background's mean frame power over the
  same frames (the background under the word), ``snr`` drawn per word, uniform on
  ``snr_db`` — the scene's definition, computed by the front end on the two parts.
* **Level**: ``level_db`` (uniform) is drawn once per recording (a recording is one lane)
  and scales the whole mix, as the scene's level per lane.
* **Gaps**: ``gap`` frames of background (uniform integer on ``[gap_min, gap_max]``, 10 ms
  each) before every word's audio, which itself starts with the background alone under its
  fade and the first half window.

The WAV is 32-bit float by default (a scaled word may exceed full scale; ``subtype="PCM_16"``
clips such samples, and counts them). The truth CSV has one row per word: ``start_s, end_s``
(its voiced frames in the recording: the first's centre to the last's centre plus a hop),
``word`` (the clip's folder name), ``snr_db``, ``level_db``, ``clip`` (the clip's path
relative to the data root).

Determinism: the recording is a pure function of the source and its options, the split,
the length and the settings, and ``seed``, byte for byte (the float WAV's time-stamped PEAK
chunk is left out). Memory: the recording is generated and written
event by event (gap + word, a few seconds each) with soundfile; only the split's noise
parts and one event are in memory, so a 60-minute recording needs no more than a 1-minute
one. Both files are written atomically (:mod:`nrstream.atomic`): an error leaves neither.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nrstream.artifacts.run_folder import check_output_files, output_file
from nrstream.errors import ConfigError, DataNotFoundError, NrstreamError
from nrstream.plugin.contracts import SplitAudio
from nrstream.seeds import derive_seed
from nrstream.stream.settings import SettingError, StreamSettings

__all__ = [
    "make_recording",
    "recording_settings",
    "events",
    "WordFraming",
    "read_truth",
    "split_files",
    "SplitFiles",
    "RecordingSummary",
]

_FADE_S, _CROSSFADE_S = 0.005, 0.050
_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sndfile.h
_SEGMENT_S = 20.0
TRUTH_FIELDS = ("start_s", "end_s", "word", "snr_db", "level_db", "clip")
#: the settings a recording takes from StreamSettings
SETTING_NAMES = ("gap_min", "gap_max", "snr_db", "level_db", "trim_db", "tail")


#: the audio files of one split (declared by the data source: :class:`nrstream.plugin.contracts.SplitAudio`)
SplitFiles = SplitAudio


@dataclass
class RecordingSummary:
    wav: Path
    truth: Path
    seconds: float
    words: int
    clipped_samples: int
    split: str
    source: str
    settings: dict = field(default_factory=dict)

    def describe_settings(self) -> str:
        """The scene settings used, as one line (``background recorded, snr_db [0, 20], ...``)."""
        s = self.settings

        def show(v):
            return f"[{v[0]:g}, {v[1]:g}]" if isinstance(v, (list, tuple)) else "null" if v is None else f"{v:g}"

        return "background recorded, " + ", ".join(f"{k} {show(s[k])}" for k in SETTING_NAMES)


def split_files(source: str, split: str, options: dict | None = None, dataset=None) -> SplitAudio:
    """The clip and noise files of ``split``, as the data source declares them (its ``split_audio``).

    Loads the data source once (its features are cached), unless its ``dataset`` is given.

    Raises:
        ConfigError: unknown split or options; a source that declares no audio files.
        DataNotFoundError: the source found no data, or no clips in the split.
    """
    from nrstream.data.datasets import load_dataset
    from nrstream.plugin.registry import get_registry
    from nrstream.stream.bank import SPLITS

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    declared = get_registry().data_source(source)
    if declared.split_audio is None:
        raise ConfigError(
            f"data source {source!r} declares no audio files (DataSource.split_audio): make-recording needs an "
            "audio source that does, such as speech_commands or synth_speech"
        )
    if dataset is None:
        try:
            dataset = load_dataset(source, **dict(options or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"data source {source!r}: {exc}") from exc
    files = declared.split_audio(dataset, split)
    if not files.clips:
        raise DataNotFoundError(f"data source {source!r} has no clips in the {split} split")
    return files


class WordFraming:
    """The front end's frames of a word and of what lies under it: the scene's definitions in waveforms.

    ``frontend``: the source's ``FeatureFrontend`` parameters (a log-mel front end with the
    same framing stands in for MFCC or deltas: powers need mel power). Frame ``t`` of a
    signal is centred on sample ``t * hop`` (the front end's centred frames).
    """

    def __init__(self, frontend: dict, clip_seconds: float = 1.0) -> None:
        from nrstream.data.audio import FeatureFrontend

        keep = ("sample_rate", "window_ms", "hop_ms", "n_mels", "n_fft", "f_min", "f_max", "log_offset")
        self.frontend = FeatureFrontend(kind="log_mel", **{k: frontend[k] for k in keep if k in frontend})
        self.rate, self.hop = self.frontend.sample_rate, self.frontend.hop_length
        self.half = self.frontend.n_fft // 2
        self.clip_samples = round(clip_seconds * self.rate)
        fade = max(1, round(_FADE_S * self.rate))
        #: audio kept before the first (after the last) kept frame's centre: its half window and a fade, whole hops
        self.margin = self.hop * math.ceil((self.half + fade) / self.hop)
        self.fade = fade

    def frame_power(self, wave: np.ndarray) -> np.ndarray:
        """``[samples]`` → ``[frames]`` float64 frame power: the front end's mel power summed over bands."""
        import torch

        with torch.no_grad():
            feats = self.frontend(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
        power = torch.exp(feats.double()) - self.frontend.log_offset
        return power.clamp_min(0.0).sum(-1).numpy()

    def voiced(self, clip: np.ndarray, trim_db: float | None, tail: int) -> tuple[np.ndarray, int, int, int]:
        """The clip as the loader holds it (``[clip_samples]``) and its first, kept and voiced frames.

        The frames are :func:`nrstream.stream.scene.voiced_extent`'s on the clip's features: the
        scene's rule, on the scene's numbers.
        """
        import torch

        from nrstream.data.audio import fix_length
        from nrstream.stream.bank import SampleBank
        from nrstream.stream.scene import LinearView, voiced_extent

        padded = fix_length(torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)), self.clip_samples)
        with torch.no_grad():
            feats = self.frontend(padded)  # [T, M]
        bank = SampleBank(feats[None], torch.tensor([feats.shape[0]]), torch.zeros(1, dtype=torch.long), ["word"])
        size = feats.shape[1]
        view = LinearView(True, torch.zeros(size), torch.ones(size), self.frontend.log_offset)
        first, kept, voiced = (int(v[0]) for v in voiced_extent(bank, view, trim_db, tail))
        return padded.numpy(), first, kept, voiced


def _clip_piece(framing: WordFraming, padded: np.ndarray, first: int, kept: int) -> np.ndarray:
    """The audio of frames ``[first, first + kept)`` with ``margin`` samples either side (zeros beyond the clip)."""
    hop, margin = framing.hop, framing.margin
    a, b = first * hop - margin, (first + kept - 1) * hop + margin
    piece = np.zeros(b - a, dtype=np.float32)
    lo, hi = max(a, 0), min(b, len(padded))
    piece[lo - a : hi - a] = padded[lo:hi]
    ramp = np.linspace(0, 1, framing.fade, dtype=np.float32)  # outside every kept frame's window
    piece[: framing.fade] *= ramp
    piece[len(piece) - framing.fade :] *= ramp[::-1]
    return piece


class _Background:
    """Continuous background from noise parts at their recorded level: segments joined by cross-fades."""

    def __init__(self, parts: list[np.ndarray], rate: int, rng: np.random.Generator) -> None:
        self.parts = [p.astype(np.float32) for p in parts]
        self.rate, self.rng = rate, rng
        self.fade = round(_CROSSFADE_S * rate)
        self.buf = np.zeros(0, dtype=np.float32)  # the last `fade` samples still await the next segment
        # equal-power-ish; scalar libm, not numpy's SIMD sin, whose last bit may depend on the array's alignment
        steps = np.linspace(0, math.pi / 2, self.fade).tolist()
        self.ramp = np.array([math.sin(x) ** 2 for x in steps], dtype=np.float32)

    def _segment(self) -> np.ndarray:
        part = self.parts[int(self.rng.integers(len(self.parts)))]
        want = round(_SEGMENT_S * self.rate)
        length = min(len(part), max(want, 3 * self.fade))
        start = int(self.rng.integers(len(part) - length + 1))
        seg = part[start : start + length].copy()
        seg[: self.fade] *= self.ramp
        seg[-self.fade :] *= self.ramp[::-1]
        return seg

    def take(self, n: int) -> np.ndarray:
        while len(self.buf) - self.fade < n:
            seg = self._segment()
            if len(self.buf) == 0:
                self.buf = seg
            else:
                self.buf[-self.fade :] += seg[: self.fade]
                self.buf = np.concatenate([self.buf, seg[self.fade :]])
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _noise_parts(files: SplitFiles) -> list[np.ndarray]:
    from nrstream.data.audio import read_wav

    lo, hi = files.noise_share
    parts = []
    for path in files.noise:
        wave = read_wav(path, files.sample_rate).numpy()
        part = wave[round(lo * len(wave)) : round(hi * len(wave))]
        if len(part) >= files.sample_rate // 2 and np.mean(part.astype(np.float64) ** 2) > 0:
            parts.append(part)
    return parts


def recording_settings(
    settings: StreamSettings | None = None,
    *,
    gap_min: int | None = None,
    gap_max: int | None = None,
    snr_db: Sequence[float] | None = None,
    level_db: Sequence[float] | None = None,
    trim_db: float | None | str = "keep",
    tail: int | None = None,
) -> StreamSettings:
    """``settings`` (a config's ``data.stream``; default ``StreamSettings(background="recorded")``) with the given
    values replacing its own.

    ``None`` (``"keep"`` for ``trim_db``, which may be ``None``) keeps the setting. The
    result is checked by :class:`StreamSettings`; a bad value is a one-line
    :class:`ConfigError` naming the option (``--snr-db``, ...).
    """
    base = settings if settings is not None else StreamSettings(background="recorded")
    changes = {"gap_min": gap_min, "gap_max": gap_max, "snr_db": snr_db, "level_db": level_db, "tail": tail}
    changes = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changes.items() if v is not None}
    if trim_db != "keep":
        changes["trim_db"] = trim_db
    try:
        return base.replace(**changes)
    except SettingError as exc:
        raise ConfigError(f"make-recording --{exc.field.replace('_', '-')}: {exc.reason}") from None


def make_recording(
    source: str,
    *,
    minutes: float,
    out: str | Path,
    truth: str | Path,
    split: str = "test",
    settings: StreamSettings | None = None,
    seed: int = 0,
    options: dict | None = None,
    subtype: str = "FLOAT",
    dataset=None,
    notify: Callable[[str], None] | None = None,
) -> RecordingSummary:
    """Write a ``minutes``-long mono WAV (``out``) and its truth CSV (``truth``).

    See the module docstring for what the recording is. ``settings``: the stream settings
    to match (a config's ``data.stream``, changed by :func:`recording_settings`; default
    StreamSettings' scene). ``dataset``: the loaded source,
    if the caller has it. ``subtype``: soundfile's WAV subtype, ``FLOAT`` (default) or
    ``PCM_16`` (samples beyond full scale are clipped and counted). Returns a summary
    (words, seconds, clipped samples, the settings used). ``notify`` gets one notice line
    when the settings name a background other than ``recorded``.

    Raises:
        ConfigError: a bad length or setting, a source without audio.
        DataNotFoundError: the source or split has no clips, or the split no noise recordings.
    """
    import soundfile

    if isinstance(minutes, bool) or not (isinstance(minutes, (int, float)) and 0 < minutes <= 24 * 60):
        raise ConfigError(f"--minutes must be a number in (0, 1440], got {minutes!r}")
    chosen = settings if settings is not None else recording_settings()
    if subtype not in ("FLOAT", "PCM_16"):
        raise ConfigError(f"subtype must be FLOAT or PCM_16, got {subtype!r}")
    check_output_files({"--out": out, "--truth": truth})  # never a user's file, never one path for both
    files = split_files(source, split, options, dataset)
    parts = _noise_parts(files)
    if not parts:
        raise DataNotFoundError(
            f"{files.root} has no background-noise recordings for the {split} split (_background_noise_/*.wav); "
            "make-recording needs them for the background"
        )
    if chosen.background != "recorded" and notify is not None:
        notify(
            f"nrstream: notice: make-recording always makes an acoustic scene; the settings say background: "
            f"{chosen.background}, the recording's background is the split's recorded _background_noise_"
        )
    rate = files.sample_rate
    total = round(minutes * 60 * rate)
    used = {name: getattr(chosen, name) for name in SETTING_NAMES}
    written, words, clipped = 0, 0, 0
    out, truth = Path(out), Path(truth)
    scene = events(files, parts, chosen, seed=seed)
    with output_file(out) as wav_tmp, output_file(truth) as csv_tmp:
        with (
            soundfile.SoundFile(str(wav_tmp), "w", rate, 1, subtype, format="WAV") as sink,
            open(csv_tmp, "w", newline="") as table,
        ):
            _no_peak_chunk(sink)
            rows = csv.writer(table)
            rows.writerow(TRUTH_FIELDS)
            for background, word, row in scene:
                event = (background + word)[: total - written]
                if subtype == "PCM_16":
                    clipped += int(np.count_nonzero(np.abs(event) > 1))
                    event = np.clip(event, -1, 1)
                sink.write(event)
                start, end = written + row["start"], written + row["end"]
                written += len(event)
                if end <= written:  # the word is complete in the recording
                    rows.writerow(
                        [f"{start / rate:.3f}", f"{end / rate:.3f}", row["word"], f"{row['snr_db']:.2f}"]
                        + [f"{row['level_db']:.2f}", row["clip"]]
                    )
                    words += 1
                if written >= total:
                    break
    return RecordingSummary(out, truth, written / rate, words, clipped, split, source, {**used, "seed": seed})


def _no_peak_chunk(sink) -> None:
    """Ask libsndfile not to write a float WAV's PEAK chunk, which holds the time of writing.

    Without it, the same recording written a second later differs in four header bytes.
    soundfile has no option for it; its libsndfile handle takes the command
    (``SFC_SET_ADD_PEAK_CHUNK``), before any sample is written. If a soundfile version
    lacks the handle, the chunk stays (the samples are the same either way).
    """
    import soundfile

    try:
        soundfile._snd.sf_command(sink._file, _SFC_SET_ADD_PEAK_CHUNK, soundfile._ffi.NULL, 0)
    except AttributeError:
        pass


def events(
    files: SplitFiles, parts: list[np.ndarray], settings: StreamSettings, *, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """The recording as endless events, each a gap then a word (see the module docstring).

    Yields ``(background [n], word [n], row)`` float32 parts whose sum is the event's
    audio, and ``row``: ``start``/``end`` (the voiced frames, samples from the event's
    start; ``start`` and ``end`` are whole hops, so the event's frame ``start // hop + j``
    is the word's voiced frame ``j``), ``word``, ``snr_db``, ``level_db``, ``clip``.
    """
    from nrstream.data.audio import read_wav

    framing = WordFraming(files.frontend, files.clip_seconds)
    rate, hop = files.sample_rate, framing.hop
    rng = np.random.default_rng(derive_seed(seed, "recording", files.root.name, files.split))
    background = _Background(parts, rate, np.random.default_rng(derive_seed(seed, "recording-background", files.split)))
    level_db = float(rng.uniform(*settings.level_db))  # one lane: one level for the whole recording
    level_gain = np.float32(10 ** (level_db / 20))
    order: list[int] = []
    silent = 0  # clips in a row with no power at all
    while True:
        if not order:
            order = list(rng.permutation(len(files.clips)))
        if silent > len(files.clips):
            raise DataNotFoundError(f"every clip of the {files.split} split of {files.root} is digital silence")
        word, path = files.clips[order.pop()]
        gap = int(rng.integers(settings.gap_min, settings.gap_max + 1))
        snr = float(rng.uniform(*settings.snr_db))
        padded, first, kept, voiced = framing.voiced(read_wav(path, rate).numpy(), settings.trim_db, settings.tail)
        piece = _clip_piece(framing, padded, first, kept)
        begin = gap * hop  # the piece's first sample in the event
        start = begin + framing.margin  # centre of the first voiced frame
        end = start + voiced * hop
        noise = background.take(begin + len(piece))
        word_part = np.zeros(len(noise), dtype=np.float32)
        word_part[begin:] = piece
        # the voiced frames' windows lie inside the piece: frame k of the piece is frame begin // hop + k
        frames = slice(framing.margin // hop, framing.margin // hop + voiced)
        word_power = float(framing.frame_power(piece)[frames].mean())
        if not word_power > 0:
            silent += 1
            continue  # a silent clip has no word in it
        silent = 0
        noise_power = float(framing.frame_power(noise[begin:])[frames].mean())
        word_part *= np.float32(math.sqrt(noise_power / word_power * 10 ** (snr / 10)))
        row = {"start": start, "end": end, "word": word, "snr_db": snr, "level_db": level_db}
        row["clip"] = path.relative_to(files.root).as_posix()
        yield noise * level_gain, word_part * level_gain, row


@dataclass
class TruthEvent:
    start_s: float
    end_s: float
    word: str


def read_truth(path: str | Path, words: Sequence[str] | None = None) -> list[TruthEvent]:
    """The rows of a truth CSV (``start_s, end_s, word`` and optional extra columns), by start time.

    Every row must have finite times with ``0 <= start_s < end_s`` and, when ``words`` is given
    (the agents' classes), a word among them: a truth file that cannot be scored is refused, not
    silently miscounted.

    Raises:
        DataFileError-like NrstreamError: the file is missing or lacks the columns, or a row is bad
        (names the file and the row's line).
    """
    path = Path(path)
    known = set(words) if words is not None else None
    events = []
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"start_s", "end_s", "word"} <= set(reader.fieldnames):
                raise NrstreamError(f"{path}: a truth CSV needs the columns start_s, end_s, word")
            for row in reader:
                line = reader.line_num
                event = TruthEvent(float(row["start_s"]), float(row["end_s"]), row["word"])
                if not (math.isfinite(event.start_s) and math.isfinite(event.end_s)):
                    raise NrstreamError(
                        f"{path}: line {line}: times must be finite numbers, got {event.start_s}, {event.end_s}"
                    )
                if event.start_s < 0 or event.end_s <= event.start_s:
                    raise NrstreamError(
                        f"{path}: line {line}: need 0 <= start_s < end_s, got start_s={event.start_s}, "
                        f"end_s={event.end_s}"
                    )
                if known is not None and event.word not in known:
                    raise NrstreamError(
                        f"{path}: line {line}: word {event.word!r} is not one the agents know "
                        f"({', '.join(sorted(known)[:12])})"
                    )
                events.append(event)
    except OSError as exc:
        raise NrstreamError(f"cannot read truth file {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise NrstreamError(f"{path}: a truth row is not start_s,end_s,word with numbers: {exc}") from exc
    return sorted(events, key=lambda e: e.start_s)
