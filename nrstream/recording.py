"""Long, realistic recordings for ``nrstream listen``: words spoken into a running background.

:func:`make_recording` builds a WAV file of any length from one split of an audio data
source (``speech_commands``, ``synth_speech``, or any source whose ``Dataset.info["root"]``
is a folder in the Speech Commands layout), and a ground-truth CSV beside it.

The signal is an acoustic scene with the definitions of the scene streams
(:mod:`nrstream.scene`, :class:`nrstream.stream_settings.StreamSettings` fields ``snr_db``,
``level_db``, ``trim_db``, ``tail``), made in the waveform domain; never digital silence:

* **Background**: the split's part of the ``_background_noise_`` recordings, cut as the
  loaders cut them (``noise_split``, default first 80 % train, next 10 % validation, last
  10 % test), at their recorded level, played continuously in segments of up to 20 s
  (the scene's ``SEGMENT`` of 2000 frames) from random recordings and offsets, joined by
  50 ms cross-fades. It runs between **and under** the words.
* **Words**: the split's clips without replacement (reshuffled when all were used), each
  cut to its voiced extent plus ``tail`` frames (10 ms each; 5 ms fades at the cuts). The
  voiced extent (:func:`voiced_extent`): from the first to the last 30 ms frame (10 ms hop,
  the front end's framing) whose energy is within ``trim_db`` (default 40 dB) of the clip's
  loudest frame.
* **SNR**: each word is scaled so that its mean power over its voiced extent is ``snr_db``
  (drawn per word, uniform, default ``[0, 20]`` dB) above the background's mean power over
  the same samples, as the scene scales a sample over the background.
* **Level**: ``level_db`` (uniform, default ``[-6, 6]`` dB) is drawn once per recording (a
  recording is one lane) and scales the whole mix.
* **Gaps**: the background alone for ``gap_s`` seconds (uniform, default ``[0.5, 2.0]``)
  before every word.

The WAV is 32-bit float by default (a scaled word may exceed full scale; ``subtype="PCM_16"``
clips such samples, and counts them). The truth CSV has one row per word: ``start_s, end_s``
(its voiced extent in the recording), ``word`` (the clip's folder name), ``snr_db``,
``level_db``, ``clip`` (the clip's path relative to the data root).

Determinism: the recording is a pure function of the source and its options, the split,
the length and the settings, and ``seed``. Memory: the recording is generated and written
event by event (gap + word, a few seconds each) with soundfile; only the split's noise
parts and one event are in memory, so a 60-minute recording needs no more than a 1-minute
one. Both files are written atomically (:mod:`nrstream.atomic`): an error leaves neither.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nrstream.atomic import atomic_file
from nrstream.errors import ConfigError, DataNotFoundError, NrstreamError
from nrstream.seeds import derive_seed

__all__ = ["make_recording", "events", "voiced_extent", "read_truth", "split_files", "SplitFiles", "RecordingSummary"]

TRIM_DB = 40.0  # StreamSettings.trim_db's default: voiced frames are within this of the loudest
TAIL = 10  # StreamSettings.tail's default: frames kept after the voiced part
_WINDOW_S, _HOP_S = 0.030, 0.010
_FADE_S, _CROSSFADE_S = 0.005, 0.050
_SEGMENT_S = 20.0
TRUTH_FIELDS = ("start_s", "end_s", "word", "snr_db", "level_db", "clip")


@dataclass
class SplitFiles:
    """The audio files of one split of a data source in the Speech Commands layout."""

    root: Path
    sample_rate: int
    clips: list[tuple[str, Path]]  # (word, path)
    noise: list[Path]
    noise_share: tuple[float, float]  # [lo, hi) fraction of each noise recording for this split
    split: str = "test"


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


def _read_list(path: Path) -> set[str]:
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def split_files(source: str, split: str, options: dict | None = None) -> SplitFiles:
    """Find the clip and noise files of ``split`` the way the speech data plugins do.

    Loads the data source once (its features are cached) for its ``info``: the data root,
    the front end's sample rate and the ``noise_split`` shares.

    Raises:
        ConfigError: unknown split or options; a source without audio clips.
        DataNotFoundError: the source found no data.
    """
    from nrstream.bank import SPLITS
    from nrstream.datasets import load_dataset

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    options = dict(options or {})
    try:
        dataset = load_dataset(source, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data source {source!r}: {exc}") from exc
    info = dataset.info
    root = Path(info.get("root", ""))
    if not info.get("root") or not (root / "validation_list.txt").is_file():
        raise ConfigError(
            f"data source {source!r} has no audio clips: make-recording needs a source whose data root is a folder "
            "of word/*.wav clips in the Speech Commands layout (speech_commands, synth_speech)"
        )
    validation, testing = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    clips = []
    for word in words:
        for path in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{path.name}"
            where = "validation" if rel in validation else "test" if rel in testing else "train"
            if where == split:
                clips.append((word, path))
    if not clips:
        raise DataNotFoundError(f"{root} has no clips in the {split} split")
    shares = tuple(float(x) for x in options.get("noise_split", (0.8, 0.1, 0.1)))
    bounds = np.cumsum((0.0, *shares))
    index = SPLITS.index(split)
    folder = root / "_background_noise_"
    noise = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    rate = int(info.get("frontend", {}).get("sample_rate", 16000))
    return SplitFiles(root, rate, clips, noise, (float(bounds[index]), float(bounds[index + 1])), split)


def voiced_extent(wave: np.ndarray, sample_rate: int, threshold_db: float = TRIM_DB) -> tuple[int, int]:
    """``(first, last + 1)`` sample of the voiced part of a clip (see the module docstring).

    A clip with no energy at all is voiced nowhere: ``(0, 0)``.
    """
    win, hop = round(_WINDOW_S * sample_rate), round(_HOP_S * sample_rate)
    if len(wave) < win:
        padded = np.zeros(win, dtype=np.float32)
        padded[: len(wave)] = wave
        wave_w = padded
    else:
        wave_w = wave
    frames = np.lib.stride_tricks.sliding_window_view(wave_w, win)[::hop]
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)
    if energy.max() <= 0:
        return 0, 0
    db = 10 * np.log10(energy + 1e-20)
    voiced = np.flatnonzero(db >= db.max() - threshold_db)
    return int(voiced[0] * hop), int(min(len(wave), voiced[-1] * hop + win))


class _Background:
    """Continuous background from noise parts at their recorded level: segments joined by cross-fades."""

    def __init__(self, parts: list[np.ndarray], rate: int, rng: np.random.Generator) -> None:
        self.parts = [p.astype(np.float32) for p in parts]
        self.rate, self.rng = rate, rng
        self.fade = round(_CROSSFADE_S * rate)
        self.buf = np.zeros(0, dtype=np.float32)  # the last `fade` samples still await the next segment

    def _segment(self) -> np.ndarray:
        part = self.parts[int(self.rng.integers(len(self.parts)))]
        want = round(_SEGMENT_S * self.rate)
        length = min(len(part), max(want, 3 * self.fade))
        start = int(self.rng.integers(len(part) - length + 1))
        seg = part[start : start + length].copy()
        ramp = np.sin(np.linspace(0, math.pi / 2, self.fade, dtype=np.float32)) ** 2  # equal-power-ish
        seg[: self.fade] *= ramp
        seg[-self.fade :] *= ramp[::-1]
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
    from nrstream.audio import read_wav

    lo, hi = files.noise_share
    parts = []
    for path in files.noise:
        wave = read_wav(path, files.sample_rate).numpy()
        part = wave[round(lo * len(wave)) : round(hi * len(wave))]
        if len(part) >= files.sample_rate // 2 and np.mean(part.astype(np.float64) ** 2) > 0:
            parts.append(part)
    return parts


def _check_range(name: str, value: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be two numbers LOW HIGH, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ConfigError(f"{name} must satisfy {lo:g} <= LOW <= HIGH <= {hi:g}, got {a:g} {b:g}")
    return a, b


def make_recording(
    source: str,
    *,
    minutes: float,
    out: str | Path,
    truth: str | Path,
    split: str = "test",
    snr_db: Sequence[float] = (0.0, 20.0),
    level_db: Sequence[float] = (-6.0, 6.0),
    trim_db: float = TRIM_DB,
    tail: int = TAIL,
    gap_s: Sequence[float] = (0.5, 2.0),
    seed: int = 0,
    options: dict | None = None,
    subtype: str = "FLOAT",
) -> RecordingSummary:
    """Write a ``minutes``-long mono WAV (``out``) and its truth CSV (``truth``).

    See the module docstring for what the recording is. ``subtype``: soundfile's WAV
    subtype, ``FLOAT`` (default) or ``PCM_16`` (samples beyond full scale are clipped and
    counted). Returns a summary (words, seconds, clipped samples).

    Raises:
        ConfigError: a bad length or range, a source without audio.
        DataNotFoundError: the source or split has no clips, or the split no noise recordings.
    """
    import soundfile

    if isinstance(minutes, bool) or not (isinstance(minutes, (int, float)) and 0 < minutes <= 24 * 60):
        raise ConfigError(f"--minutes must be a number in (0, 1440], got {minutes!r}")
    snr = _check_range("--snr-db", snr_db, -30, 60)
    level = _check_range("--level-db", level_db, -40, 20)
    gap = _check_range("--gap-s", gap_s, 0, 600)
    if not (isinstance(trim_db, (int, float)) and 0 < trim_db <= 120):
        raise ConfigError(f"--trim-db must be a number in (0, 120], got {trim_db!r}")
    if isinstance(tail, bool) or not isinstance(tail, int) or not 0 <= tail <= 1000:
        raise ConfigError(f"--tail must be an integer number of frames in [0, 1000], got {tail!r}")
    if subtype not in ("FLOAT", "PCM_16"):
        raise ConfigError(f"subtype must be FLOAT or PCM_16, got {subtype!r}")
    files = split_files(source, split, options)
    parts = _noise_parts(files)
    if not parts:
        raise DataNotFoundError(
            f"{files.root} has no background-noise recordings for the {split} split (_background_noise_/*.wav); "
            "make-recording needs them for the background"
        )
    rate = files.sample_rate
    total = round(minutes * 60 * rate)
    settings = {"snr_db": snr, "level_db": level, "trim_db": trim_db, "tail": tail, "gap_s": gap, "seed": seed}
    written, words, clipped = 0, 0, 0
    out, truth = Path(out), Path(truth)
    scene = events(files, parts, snr=snr, level=level, gap=gap, trim_db=float(trim_db), tail=tail, seed=seed)
    with atomic_file(out) as wav_tmp, atomic_file(truth) as csv_tmp:
        with (
            soundfile.SoundFile(str(wav_tmp), "w", rate, 1, subtype, format="WAV") as sink,
            open(csv_tmp, "w", newline="") as table,
        ):
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
    return RecordingSummary(out, truth, written / rate, words, clipped, split, source, settings)


def events(
    files: SplitFiles,
    parts: list[np.ndarray],
    *,
    snr: tuple[float, float],
    level: tuple[float, float],
    gap: tuple[float, float],
    trim_db: float = TRIM_DB,
    tail: int = TAIL,
    seed: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """The recording as endless events, each a gap then a word (see the module docstring).

    Yields ``(background [n], word [n], row)`` float32 parts whose sum is the event's
    audio, and ``row``: ``start``/``end`` (the voiced extent, samples from the event's
    start), ``word``, ``snr_db``, ``level_db``, ``clip``.
    """
    from nrstream.audio import read_wav

    rate = files.sample_rate
    rng = np.random.default_rng(derive_seed(seed, "recording", files.root.name, files.split))
    background = _Background(parts, rate, np.random.default_rng(derive_seed(seed, "recording-background", files.split)))
    level_db = float(rng.uniform(*level))  # one lane: one level for the whole recording
    level_gain = np.float32(10 ** (level_db / 20))
    after, fade = round(tail * _HOP_S * rate), max(1, round(_FADE_S * rate))
    order: list[int] = []
    while True:
        if not order:
            order = list(rng.permutation(len(files.clips)))
        word, path = files.clips[order.pop()]
        gap_n = round(rng.uniform(*gap) * rate)
        snr_i = float(rng.uniform(*snr))
        clip = read_wav(path, rate).numpy()
        v0, v1 = voiced_extent(clip, rate, trim_db)
        if v1 <= v0:
            continue  # a silent clip has no word in it
        piece = clip[v0 : min(len(clip), v1 + after)].astype(np.float32)
        f = min(fade, len(piece) // 2)
        if f:
            ramp = np.linspace(0, 1, f, dtype=np.float32)
            piece[:f] *= ramp
            piece[-f:] *= ramp[::-1]
        s0, s1 = gap_n, gap_n + (v1 - v0)
        noise = background.take(gap_n + len(piece))
        word_power = float(np.mean(piece[: v1 - v0].astype(np.float64) ** 2))
        noise_power = float(np.mean(noise[s0:s1].astype(np.float64) ** 2))
        gain = math.sqrt(noise_power / word_power * 10 ** (snr_i / 10)) if word_power > 0 else 0.0
        word_part = np.zeros(len(noise), dtype=np.float32)
        word_part[gap_n:] = piece * np.float32(gain)
        row = {"start": s0, "end": s1, "word": word, "snr_db": snr_i, "level_db": level_db}
        row["clip"] = path.relative_to(files.root).as_posix()
        yield noise * level_gain, word_part * level_gain, row


@dataclass
class TruthEvent:
    start_s: float
    end_s: float
    word: str


def read_truth(path: str | Path) -> list[TruthEvent]:
    """The rows of a truth CSV (``start_s, end_s, word`` and optional extra columns), by start time.

    Raises:
        DataFileError-like NrstreamError: the file is missing or lacks the columns; names it.
    """
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"start_s", "end_s", "word"} <= set(reader.fieldnames):
                raise NrstreamError(f"{path}: a truth CSV needs the columns start_s, end_s, word")
            events = [TruthEvent(float(r["start_s"]), float(r["end_s"]), r["word"]) for r in reader]
    except OSError as exc:
        raise NrstreamError(f"cannot read truth file {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError) as exc:
        raise NrstreamError(f"{path}: a truth row is not start_s,end_s,word with numbers: {exc}") from exc
    return sorted(events, key=lambda e: e.start_s)
