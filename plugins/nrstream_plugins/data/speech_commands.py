"""Google Speech Commands (v0.01 and v0.02 folder layout) as keyword feature sequences.

Layout: one folder per word of 1 s 16 kHz WAV clips, ``_background_noise_/`` with long
noise recordings, and the official ``validation_list.txt`` / ``testing_list.txt``; a clip
in neither list is a training clip. The root is the first of these that has that layout:

1. the ``root`` option;
2. ``$NRSTREAM_DATA/speech_commands_v0.02``, ``$NRSTREAM_DATA/speech_commands_v0.01``;
3. ``~/.cache/nrstream/speech_commands_v0.02`` and ``..._v0.01`` (``$NRSTREAM_CACHE``;
   where ``nrstream data download speech_commands`` puts it when ``$NRSTREAM_DATA`` is unset).

Label sets:

- ``labels="all"``: every word folder (30 words in v0.01, 35 in v0.02), sorted.
- ``labels="12"``: ``yes no up down left right on off stop go``, then ``_silence_`` and
  ``_unknown_`` (every other word; all of its clips are kept). Each split gets
  ``ceil(silence_fraction * clips in that split)`` ``_silence_`` samples (10 % by
  default), 1 s windows cut at seeded random offsets from that split's part of the
  background-noise recordings (all-zero audio if the data set has none).

Every clip is padded with zeros at the end or centre-cropped to ``clip_seconds``, mixed
down to mono and resampled to 16 kHz, and goes through :class:`nrstream.data.audio.FeatureFrontend`
(``frontend`` option: its keyword arguments). Features are cached on disk
(:mod:`nrstream.data.cache`), keyed by every file's path, size and mtime and by the frontend
and loader parameters, so a second load reads one file.

Noise banks: each ``_background_noise_`` recording is cut into three disjoint parts
(``noise_split``, default first 80 % train, next 10 % validation, last 10 % test); each
part's feature sequence is one sample of ``Dataset.noise[split]`` (labels 0). ``noise_dir``
names another folder of WAV noise recordings to use instead (resampled to the front end's
rate); the scene background, the gaps and ``_silence_`` then all come from it.

Features are standardised per feature with the train split's mean and standard deviation
(``normalize``); the noise banks get the same transform.

Speech Commands is by Pete Warden / Google, CC BY 4.0.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from nrstream import DataNotFoundError, hookimpl
from nrstream.data.audio import FeatureFrontend, fix_length, read_wav
from nrstream.data.cache import cache_dir, cached, fingerprint
from nrstream.data.datafiles import (
    DataFileError,
    check_replaceable,
    data_root,
    download,
    download_root,
    missing_data_message,
    safe_extract_tar,
    written_by_download,
)
from nrstream.errors import DownloadError
from nrstream.log import progress_bar
from nrstream.plugin.contracts import DataSource, SplitAudio
from nrstream.stream.bank import SPLITS, Dataset, SampleBank

__all__ = [
    "load_speech_commands",
    "download_speech_commands",
    "build_dataset",
    "extract_features",
    "KEYWORDS_12",
    "SILENCE",
    "UNKNOWN",
]

WORDS_V1 = (
    "bed bird cat dog down eight five four go happy house left marvin nine no off on one right "
    "seven sheila six stop three tree two up wow yes zero"
).split()
WORDS_V2 = sorted([*WORDS_V1, "backward", "follow", "forward", "learn", "visual"])
KEYWORDS_12 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
SILENCE, UNKNOWN = "_silence_", "_unknown_"
NOISE_FOLDER = "_background_noise_"

#: version -> (URL, checksum) of the official tarballs
URLS = {
    "0.01": (
        "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        "sha256:743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    "0.02": (
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        "sha256:af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    ),
}

HOW_TO_GET = ["nrstream data download speech_commands", "set NRSTREAM_DATA to a folder holding speech_commands_v0.02"]

_BATCH = 512  # clips read and featurised at a time: bounds memory on the full data set


class SkippedClipsWarning(UserWarning):
    """Some clips could not be read and were skipped (``on_error="skip"``)."""


def candidate_roots(root: str | Path | None = None) -> list[Path]:
    """The folders searched: only ``root`` when it is given, else the default search path."""
    if root is not None:
        return [Path(root).expanduser()]
    bases = [b for b in (data_root(), cache_dir()) if b is not None]
    return list(dict.fromkeys(base / f"speech_commands_v{v}" for base in bases for v in ("0.02", "0.01")))


_LISTS = ("validation_list.txt", "testing_list.txt")


def _is_layout(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _LISTS)


def find_root(root: str | Path | None = None) -> Path:
    """The data set folder: ``root`` itself when given (never another place), else the first on the search path.

    Raises:
        DataNotFoundError: an explicit ``root`` that does not exist or misses the split lists
            (says which), or nothing on the search path.
    """
    searched = candidate_roots(root)
    if root is not None:
        folder = searched[0]
        if not folder.is_dir():
            raise DataNotFoundError(f"Speech Commands root {folder} does not exist (data option 'root')")
        missing = [name for name in _LISTS if not (folder / name).is_file()]
        if missing:
            raise DataNotFoundError(
                f"Speech Commands root {folder} misses {' and '.join(missing)}; point 'root' at the folder holding "
                "them and the word folders, or remove 'root' to search the default places"
            )
        return folder
    for folder in searched:
        if _is_layout(folder):
            return folder
    raise DataNotFoundError(missing_data_message("Speech Commands", searched, HOW_TO_GET))


def _detect_version(root: Path, words: list[str]) -> str:
    for v in ("0.01", "0.02"):
        if f"v{v}" in root.name:
            return v
    return "0.02" if set(words) & (set(WORDS_V2) - set(WORDS_V1)) else "0.01"


def _read_list(path: Path) -> set[str]:
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def extract_features(
    paths: list[Path], frontend: FeatureFrontend, samples: int, on_error: str = "raise"
) -> tuple[torch.Tensor, list[int], list[str]]:
    """Read, fix to ``samples`` and featurise clips.

    A clip that cannot be read, or whose samples or features are not all finite, raises a
    :class:`DataFileError` naming it (``on_error="raise"``) or is skipped (``"skip"``).

    Returns:
        ``(features [K, frames, F], kept indices into paths, skipped paths with reasons)``.
    """

    def read(path: Path) -> torch.Tensor | str:
        try:
            return fix_length(read_wav(path, frontend.sample_rate), samples)
        except DataFileError as exc:
            if on_error == "raise":
                raise
            return str(exc)

    feats, kept, skipped = [], [], []
    with ThreadPoolExecutor(max_workers=4) as pool, torch.no_grad():
        starts = range(0, len(paths), _BATCH)
        for start in progress_bar(starts, enabled=len(starts) >= 4, desc="features", unit="batch"):
            waves, index = [], []
            for i, wave in enumerate(pool.map(read, paths[start : start + _BATCH]), start):
                if isinstance(wave, str):
                    skipped.append(wave)
                else:
                    waves.append(wave)
                    index.append(i)
            if not waves:
                continue
            batch = frontend(torch.stack(waves))  # [B, frames, F]
            finite = torch.isfinite(batch).flatten(1).all(1)  # e.g. samples so large their power overflows
            for j in (~finite).nonzero().flatten().tolist():
                reason = f"audio file {paths[index[j]]} gives NaN or infinite features (samples far outside [-1, 1]?)"
                if on_error == "raise":
                    raise DataFileError(reason + "; repair or remove it (or set on_error: skip)")
                skipped.append(reason)
            feats.append(batch[finite])
            kept += [i for i, ok in zip(index, finite.tolist(), strict=True) if ok]
    empty = torch.zeros(0, frontend.num_frames(samples), frontend.feature_size)
    return (torch.cat(feats) if feats else empty), kept, skipped


def noise_recordings(noise_dir: str | Path) -> tuple[Path, list[Path]]:
    """``(folder, its .wav files)`` for the data option ``noise_dir``: one line naming the option when unusable.

    Any audio source may take its scene background from such a folder (``fsdd``, which has no
    noise of its own; ``speech_commands`` and ``synth_speech`` instead of ``_background_noise_``).
    """
    folder = Path(noise_dir).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"noise_dir {folder} is not a folder (data option 'noise_dir')")
    paths = sorted(folder.glob("*.wav"))
    if not paths:
        raise DataNotFoundError(f"noise_dir {folder} holds no .wav recordings (data option 'noise_dir')")
    return folder, paths


def _noise_parts(
    paths: list[Path],
    frontend: FeatureFrontend,
    noise_split: tuple[float, ...],
    on_error: str = "raise",
    skipped: list[str] | None = None,
):
    """``{split: [features [T, F] per recording]}`` from disjoint parts of each recording.

    An unreadable or non-finite recording raises, or (``on_error="skip"``) is left out and
    its reason appended to ``skipped``.
    """
    bounds = [0.0]
    for share in noise_split:
        bounds.append(bounds[-1] + share)
    parts: dict[str, list[torch.Tensor]] = {s: [] for s in SPLITS}
    with torch.no_grad():
        for path in paths:
            try:
                wave = read_wav(path, frontend.sample_rate)
                cuts = [round(b * len(wave)) for b in bounds]
                pieces = {
                    split: frontend(wave[lo:hi])
                    for split, lo, hi in zip(SPLITS, cuts[:-1], cuts[1:], strict=True)
                    if hi - lo >= frontend.hop_length
                }
                if not all(bool(torch.isfinite(p).all()) for p in pieces.values()):
                    raise DataFileError(
                        f"audio file {path} gives NaN or infinite features (samples far outside [-1, 1]?); "
                        "repair or remove it (or set on_error: skip)"
                    )
            except DataFileError as exc:
                if on_error == "raise" or skipped is None:
                    raise
                skipped.append(str(exc))
                continue
            for split, piece in pieces.items():
                parts[split].append(piece)
    return parts


def _valid_payload(payload: Any, frames: int, size: int) -> bool:
    """A cached payload has every part ``build`` writes, of consistent shapes."""
    feats = payload["features"]
    return (
        isinstance(payload["clips"], list)
        and isinstance(payload["skipped"], list)
        and isinstance(feats, torch.Tensor)
        and feats.shape == (len(payload["clips"]), frames, size)
        and bool(torch.isfinite(feats).all())
        and set(payload["noise"]) == set(SPLITS)
        and all(
            isinstance(p, torch.Tensor) and p.dim() == 2 and p.shape[1] == size
            for v in payload["noise"].values()
            for p in v
        )
    )


def noise_banks_and_normalization(
    banks: dict[str, SampleBank], noise_parts: dict[str, list[torch.Tensor]], class_names: list[str], normalize: bool
) -> tuple[dict[str, SampleBank], dict | None]:
    """The per-split noise banks from their parts and, with ``normalize``, every bank standardised in place by
    the train split's feature statistics; returns ``(noise, normalization)`` (``None`` when not normalised).

    Shared by the audio sources that cut background recordings into parts (this one, ``fsdd``).
    """
    noise = {
        split: SampleBank.from_sequences(parts, [0] * len(parts), list(class_names))
        for split, parts in noise_parts.items()
        if parts
    }
    if not normalize:
        return noise, None
    mean, std = banks["train"].feature_stats()
    for bank in (*banks.values(), *noise.values()):
        bank.features.sub_(mean).div_(std).mul_(bank.valid_mask()[..., None])
    # how to undo it: acoustic-scene streams mix in the linear power domain (nrstream.stream.scene)
    return noise, {"mean": mean.tolist(), "std": std.tolist()}


def split_share(noise_split: list[float] | tuple[float, ...], split: str) -> tuple[float, float]:
    """``[low, high)``: the fraction of each noise recording that ``split`` gets, from the ``noise_split`` shares."""
    index = SPLITS.index(split)
    low = float(sum(noise_split[:index]))
    return low, low + float(noise_split[index])


def build_dataset(
    root: Path,
    *,
    source: str,
    version: str,
    labels: str = "all",
    frontend: dict | None = None,
    clip_seconds: float = 1.0,
    on_error: str = "raise",
    noise_split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    silence_fraction: float = 0.1,
    normalize: bool = True,
    seed: int = 0,
    noise_dir: str | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from a folder in Speech Commands layout (shared with ``synth_speech``).

    ``noise_dir``: a folder of WAV noise recordings that replaces the layout's ``_background_noise_``.
    """
    labels = str(labels)
    if labels not in ("all", "12"):
        raise ValueError(f"labels must be 'all' or '12', got {labels!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    noise_split = tuple(float(x) for x in noise_split)
    if len(noise_split) != 3 or min(noise_split) <= 0 or sum(noise_split) > 1 + 1e-9:
        raise ValueError(f"noise_split must be three positive shares summing to at most 1, got {noise_split!r}")
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds!r}")
    fe = FeatureFrontend(**(frontend or {}))
    samples = round(clip_seconds * fe.sample_rate)

    words = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.wav"))
    )
    if not words:
        raise DataNotFoundError(f"{root} has the Speech Commands split lists but no word folders of .wav clips")
    clips = [f"{w}/{p.name}" for w in words for p in sorted((root / w).glob("*.wav"))]
    if noise_dir is not None:
        noise_folder, noise_paths = noise_recordings(noise_dir)
    else:
        noise_folder = root / NOISE_FOLDER
        noise_paths = sorted(noise_folder.glob("*.wav")) if noise_folder.is_dir() else []

    clip_paths = [root / c for c in clips]
    params = {
        "loader": 2,  # 2: non-finite clips and recordings are refused or skipped
        "frontend": fe.params(),
        "samples": samples,
        "on_error": on_error,
        "noise_split": noise_split,
    }
    key = fingerprint([*clip_paths, *noise_paths], params)

    def build() -> dict[str, Any]:
        feats, kept, skipped = extract_features(clip_paths, fe, samples, on_error)
        noise = _noise_parts(noise_paths, fe, noise_split, on_error, skipped)
        return {"clips": [clips[i] for i in kept], "features": feats, "skipped": skipped, "noise": noise}

    frames = fe.num_frames(samples)
    payload, hit = cached("speech_commands", key, build, check=lambda p: _valid_payload(p, frames, fe.feature_size))
    if payload["skipped"]:
        warnings.warn(
            f"skipped {len(payload['skipped'])} unreadable or non-finite audio files in {root}; "
            f"first: {payload['skipped'][0]}",
            SkippedClipsWarning,
            stacklevel=2,
        )

    validation, testing = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    split_of = ["validation" if c in validation else "test" if c in testing else "train" for c in payload["clips"]]
    if labels == "all":
        class_names = list(words)
        label_of = {w: i for i, w in enumerate(words)}
    else:
        class_names = [*KEYWORDS_12, SILENCE, UNKNOWN]
        label_of = {w: KEYWORDS_12.index(w) if w in KEYWORDS_12 else len(KEYWORDS_12) + 1 for w in words}
    clip_labels = torch.tensor([label_of[c.split("/")[0]] for c in payload["clips"]], dtype=torch.long)
    features: torch.Tensor = payload["features"]

    banks, silence_counts = {}, {}
    for s_index, split in enumerate(SPLITS):
        idx = torch.tensor([i for i, s in enumerate(split_of) if s == split], dtype=torch.long)
        x, y = features[idx], clip_labels[idx]
        if labels == "12":
            n_sil = math.ceil(silence_fraction * len(idx))
            gen = torch.Generator().manual_seed(seed * 1000 + s_index)
            sil = _cut_silence(payload["noise"][split], n_sil, frames, fe.feature_size, gen, fe)
            x = torch.cat([x, sil])
            y = torch.cat([y, torch.full((n_sil,), len(KEYWORDS_12), dtype=torch.long)])
            silence_counts[split] = n_sil
        if len(y) == 0:
            raise DataNotFoundError(
                f"{root} has no clips in the {split} split (check validation_list.txt and testing_list.txt)"
            )
        lengths = torch.full((len(y),), frames, dtype=torch.long)
        banks[split] = SampleBank(x.float().contiguous(), lengths, y, list(class_names))

    noise, normalization = noise_banks_and_normalization(banks, payload["noise"], class_names, normalize)

    info = {
        "source": source,
        "version": version,
        "root": str(root),
        "labels": labels,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "sizes": {s: len(b) for s, b in banks.items()},
        "silence": silence_counts,
        "noise_dir": str(noise_folder),
        "noise_recordings": [p.name for p in noise_paths],
        "noise_frames": {s: int(b.lengths.sum()) for s, b in noise.items()},
        "skipped": len(payload["skipped"]),
        "frontend": fe.params(),
        "clip_seconds": clip_seconds,
        "noise_split": list(noise_split),
        "normalized": normalize,
        "normalization": normalization,
        "cache": {"key": key, "hit": hit},
    }
    return Dataset(splits=banks, noise=noise, info=info)


def _cut_silence(parts, n, frames, size, gen, fe) -> torch.Tensor:
    """``n`` windows of ``frames`` frames from noise feature sequences (digital silence if none fit)."""
    usable = [p for p in parts if len(p) >= frames]
    if not usable:
        with torch.no_grad():
            zero = fe(torch.zeros((frames - 1) * fe.hop_length))
        return zero[None].expand(n, frames, size).clone()
    out = torch.empty(n, frames, size)
    for i in range(n):
        part = usable[int(torch.randint(len(usable), (1,), generator=gen))]
        start = int(torch.randint(len(part) - frames + 1, (1,), generator=gen))
        out[i] = part[start : start + frames]
    return out


def load_speech_commands(
    *,
    root: str | None = None,
    version: str | None = None,
    labels: str = "all",
    frontend: dict | None = None,
    clip_seconds: float = 1.0,
    on_error: str = "raise",
    noise_split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    silence_fraction: float = 0.1,
    normalize: bool = True,
    seed: int = 0,
    noise_dir: str | None = None,
) -> Dataset:
    """Load Speech Commands from the first root found (see the module docstring).

    Args:
        root: the data set folder, searched first.
        version: ``"0.01"`` or ``"0.02"``; default from the folder name or its words.
        labels: ``"all"`` (every word) or ``"12"`` (ten keywords, ``_silence_``, ``_unknown_``).
        frontend: keyword arguments of :class:`nrstream.data.audio.FeatureFrontend`.
        clip_seconds: every clip is padded or cropped to this length.
        on_error: ``"raise"`` on an unreadable clip, or ``"skip"`` it with a counted warning.
        noise_split: shares of each background recording given to train, validation, test.
        silence_fraction: ``_silence_`` samples per split, as a share of its clips (labels 12).
        normalize: standardise features with the train split's statistics.
        seed: seed of the ``_silence_`` window offsets.
        noise_dir: a folder of WAV noise recordings for the background and gaps, instead of
            the data set's own ``_background_noise_`` (resampled to the front end's rate).

    Returns:
        A :class:`Dataset` of ``[N, 101, F]`` banks (defaults: ``F = 40``) with noise banks.
    """
    found = find_root(root)
    words = [p.name for p in found.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    return build_dataset(
        found,
        source="speech_commands",
        version=version or _detect_version(found, words),
        labels=labels,
        frontend=frontend,
        clip_seconds=clip_seconds,
        on_error=on_error,
        noise_split=noise_split,
        silence_fraction=silence_fraction,
        normalize=normalize,
        seed=seed,
        noise_dir=noise_dir,
    )


def download_speech_commands(
    dest: str | Path | None = None, *, version: str = "0.02", keep_archive: bool = False, progress: bool = True
) -> Path:
    """Download, verify and safely extract the official tarball into ``dest/speech_commands_v<version>``.

    ``dest`` defaults to ``$NRSTREAM_DATA``, else ``~/.cache/nrstream``; either way the data
    lands in its own sub-folder, which is on the search path for the defaults. Nothing
    already in ``dest`` is deleted: the sub-folder is only (re)written if it is absent or
    an earlier download wrote it, and an archive that was already there is kept.

    Returns:
        The data set folder, ``dest/speech_commands_v<version>``.

    Raises:
        DownloadError: the sub-folder exists but was not written by a download, or the
            archive's checksum does not match.
    """
    if version not in URLS:
        raise ValueError(f"version must be one of {sorted(URLS)}, got {version!r}")
    url, checksum = URLS[version]
    parent = Path(dest).expanduser() if dest is not None else download_root()
    if parent.exists() and not parent.is_dir():
        raise DownloadError(f"--dest {parent} is a file, not a folder; pass a folder to download into")
    folder = parent / f"speech_commands_v{version}"
    previous = written_by_download(folder) if folder.is_dir() and not folder.is_symlink() else None
    if previous is not None and previous.get("checksum") == checksum and _is_layout(folder):
        return folder  # already downloaded and extracted
    archive = parent / f"speech_commands_v{version}.tar.gz"
    had_archive = archive.exists() or archive.is_symlink()
    check_replaceable(folder)  # before anything is downloaded
    download(url, archive, checksum, progress=progress)
    try:
        safe_extract_tar(archive, folder, provenance={"source": "speech_commands", "url": url, "checksum": checksum})
    finally:  # the archive is ours to remove (also when extraction failed); one the user had is kept
        if not keep_archive and not had_archive:
            archive.unlink(missing_ok=True)
    return folder


def split_audio(dataset: Dataset, split: str) -> SplitAudio:
    """The clip files of ``split`` and the background recordings, for a data set in this layout.

    What ``nrstream data make-recording`` mixes: clips by the official lists, the
    ``_background_noise_`` recordings with the split's share (``noise_split``) of each.
    Also serves ``synth_speech``, which writes the same layout.
    """
    info = dataset.info
    root = Path(info["root"])
    validation, testing = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    clips = []
    for word in words:
        for path in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{path.name}"
            if ("validation" if rel in validation else "test" if rel in testing else "train") == split:
                clips.append((word, path))
    folder = Path(info.get("noise_dir") or root / NOISE_FOLDER)  # the data option noise_dir, if given
    noise = [folder / name for name in info.get("noise_recordings", [])]
    frontend = dict(info["frontend"])
    share = split_share(info.get("noise_split") or (0.8, 0.1, 0.1), split)
    rate = int(frontend.get("sample_rate", 16000))
    return SplitAudio(split, rate, clips, noise, share, frontend, float(info.get("clip_seconds", 1.0)), root)


SOURCE = DataSource(load=load_speech_commands, download=download_speech_commands, split_audio=split_audio)


@hookimpl
def nrstream_register_data_sources(register):
    register("speech_commands", SOURCE)
