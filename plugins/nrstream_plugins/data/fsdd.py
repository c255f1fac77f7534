"""The Free Spoken Digit Dataset (FSDD, v1.0.10): real spoken digits "zero" ... "nine".

Layout (the release's own): ``recordings/{digit}_{speaker}_{index}.wav``, 8 kHz mono 16-bit
PCM, trimmed to near-minimal silence, 50 takes (``index`` 0-49) of every digit by every
speaker (six in the full release: george, jackson, lucas, nicolas, theo, yweweler). Any
subset of speakers may be present. The root is the first of these with a ``recordings``
folder (or whose ``free-spoken-digit-dataset-1.0.10`` sub-folder, as the release archive
unpacks, has one):

1. the ``root`` option (only that folder);
2. ``$NRSTREAM_DATA/fsdd_v1.0.10``;
3. ``~/.cache/nrstream/fsdd_v1.0.10`` (``$NRSTREAM_CACHE``; where ``nrstream data download
   fsdd`` puts it when ``$NRSTREAM_DATA`` is unset).

**Checksums.** Every recording is checked against the release's SHA-256 list, shipped in
this package (``fsdd_SHA256SUMS``, all 3,000 files of v1.0.10) — 2,000 files take well under
a second. A file that differs or is not in the release is a one-line error naming it
(``on_error: skip`` skips it with a counted warning; ``verify: false`` loads your own
recordings in the same layout).

**Splits** (``split``):

* ``official`` (default): the data set's documented split — takes 0-4 of every speaker and
  digit are the test set. Validation rule (ours; FSDD defines none): takes 5-9 are the
  validation set, takes 10-49 the training set (80/10/10, every speaker in every split).
* ``speakers``: speaker-disjoint — the question a spotter faces on a new voice.
  ``test_speakers`` (required) are the test set, all their takes. ``validation_speakers``
  (optional) are the validation set; without them validation is takes 5-9 of the training
  speakers (the rule above), so the model is still chosen without hearing a test voice.
  Every other speaker present is a training speaker.

Every sample records its speaker and take: ``info["speakers"]`` (the speaker names, sorted),
``info["sample_speaker"][split]`` (an index into it per sample, in bank order) and
``info["sample_take"][split]`` (the take index per sample), so results can be broken down by
speaker. Class ``d`` is the digit's English name (``class_names[d]``), the Speech Commands word.

**Front end: native 8 kHz** (default ``frontend.sample_rate: 8000``). The recordings hold
nothing above 4 kHz: resampled to 16 kHz, a quarter of the 40 mel bands (those above
4 kHz) would be empty for every word and filled only by the scene background — bands that
say "no word here" by their emptiness. At 8 kHz, ``FeatureFrontend``'s defaults (30 ms Hann
window = 240 samples, n_fft 256, 10 ms hop, 40 mels from 20 Hz to 4 kHz) give the same
frame rate (``[101, 40]`` per 1 s clip) and the same 31.25 Hz FFT-bin spacing as the 16 kHz
front end, with every band over the speech. ``frontend: {sample_rate: 16000}`` resamples
instead (as Speech Commands). Clips are zero-padded at the end (or centre-cropped) to
``clip_seconds`` (default 1.0; every v1.0.10 recording here is shorter).

**Background for scenes.** FSDD has no noise recordings. ``noise_dir`` names a folder of WAV
noise recordings (e.g. Speech Commands' ``_background_noise_``), resampled to the front
end's rate. Default: the six synthetic 60 s noises ``synth_speech`` puts in every corpus
(:func:`nrstream_plugins.data.synth_speech.synthetic_noises`, seed ``noise_seed``), written
once into ``~/.cache/nrstream/synthetic_noise/seed<noise_seed>``: no download. Either way
each recording is cut into three disjoint parts (``noise_split``, default first 80 % train,
next 10 % validation, last 10 % test), one sample of ``Dataset.noise[split]`` each.

Features are cached (:mod:`nrstream.cache`) keyed by every file's path, size and mtime and
the loader parameters; they are standardised per feature with the train split's statistics
(``normalize``), noise banks too. Bad files (missing, unreadable, not audio, NaN samples)
are one-line errors naming the file, as for Speech Commands (``on_error``).

FSDD is by Zohar Jackson and contributors, CC BY-SA 4.0
(https://github.com/Jakobovski/free-spoken-digit-dataset).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from nrstream import DataNotFoundError, hookimpl
from nrstream.atomic import atomic_folder
from nrstream.data.audio import FeatureFrontend
from nrstream.data.cache import cache_dir, cached, fingerprint
from nrstream.data.datafiles import (
    DOWNLOAD_MARKER,
    DataFileError,
    check_replaceable,
    data_root,
    download,
    download_root,
    file_checksum,
    missing_data_message,
    safe_extract_tar,
    written_by_download,
)
from nrstream.errors import DownloadError
from nrstream.plugin.contracts import DataSource, SplitAudio
from nrstream.stream.bank import SPLITS, Dataset, SampleBank
from nrstream_plugins.data.speech_commands import (
    SkippedClipsWarning,
    _noise_parts,
    extract_features,
    noise_banks_and_normalization,
    noise_recordings,
    split_share,
)

__all__ = ["SOURCE", "load_fsdd", "download_fsdd", "fsdd_split_audio", "read_checksums", "DIGITS", "URL", "VERSION"]

VERSION = "1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{VERSION}.tar.gz"
FOLDER = f"fsdd_v{VERSION}"  # where a download lands, under $NRSTREAM_DATA or the cache
ARCHIVE_TOP = f"free-spoken-digit-dataset-{VERSION}"  # the release archive's top folder
CHECKSUMS = Path(__file__).with_name("fsdd_SHA256SUMS")
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
HOW_TO_GET = ["nrstream data download fsdd", f"set NRSTREAM_DATA to a folder holding {FOLDER}"]
_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")
_NOISE_MARKER = ".complete"


# ------------------------------------------------------------------ files


def read_checksums(path: str | Path = CHECKSUMS) -> dict[str, str]:
    """A ``sha256sum``-style list as ``{"recordings/0_george_0.wav": hex, ...}``; default the shipped 3,000 files."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip()] = digest.lower()
    return out


def _has_layout(folder: Path) -> Path | None:
    for candidate in (folder, folder / ARCHIVE_TOP):
        if (candidate / "recordings").is_dir():
            return candidate
    return None


def candidate_roots(root: str | Path | None = None) -> list[Path]:
    """The folders searched: only ``root`` when given, else ``$NRSTREAM_DATA`` and the cache."""
    if root is not None:
        return [Path(root).expanduser()]
    return list(dict.fromkeys(base / FOLDER for base in (data_root(), cache_dir()) if base is not None))


def find_root(root: str | Path | None = None) -> Path:
    """The folder holding ``recordings/``: ``root`` (or its release sub-folder) when given, else the search path.

    Raises:
        DataNotFoundError: an explicit ``root`` that does not exist or has no ``recordings``
            folder, or nothing on the search path.
    """
    searched = candidate_roots(root)
    if root is not None:
        folder = searched[0]
        if not folder.is_dir():
            raise DataNotFoundError(f"FSDD root {folder} does not exist (data option 'root')")
        found = _has_layout(folder)
        if found is None:
            raise DataNotFoundError(
                f"FSDD root {folder} has no recordings/ folder; point 'root' at the folder holding recordings/, "
                "or remove 'root' to search the default places"
            )
        return found
    for folder in searched:
        found = _has_layout(folder)
        if found is not None:
            return found
    raise DataNotFoundError(missing_data_message("FSDD", searched, HOW_TO_GET))


def _scan(root: Path, verify: bool, on_error: str) -> tuple[list[tuple[int, str, int, Path]], list[str]]:
    """``([(digit, speaker, take, path)], skipped reasons)`` of ``root/recordings``, sorted by name.

    A ``.wav`` not named ``{digit}_{speaker}_{index}.wav``, or (``verify``) not byte for byte
    a file of the release, raises a :class:`DataFileError` naming it, or is skipped.
    """
    sums = read_checksums() if verify else {}
    found, skipped = [], []
    for path in sorted((root / "recordings").glob("*.wav")):
        match = _NAME.match(path.name)
        reason = None
        if match is None:
            reason = f"audio file {path} is not named {{digit}}_{{speaker}}_{{index}}.wav (the FSDD layout)"
        elif verify:
            expected = sums.get(f"recordings/{path.name}")
            if expected is None:
                reason = f"audio file {path} is not a recording of FSDD v{VERSION} (set verify: false for your own)"
            elif path.is_file() and file_checksum(path) != expected:
                reason = (
                    f"audio file {path} does not match its FSDD v{VERSION} SHA-256 (damaged or changed); "
                    "download it again (nrstream data download fsdd) or set verify: false"
                )
            # a missing or irregular file is named by the reader, as for Speech Commands
        if reason is not None:
            if on_error == "raise":
                raise DataFileError(reason)
            skipped.append(reason)
            continue
        assert match is not None
        found.append((int(match[1]), match[2], int(match[3]), path))
    return found, skipped


def default_noise_dir(seed: int = 0) -> Path:
    """The synthetic background folder (six 60 s noises of ``synth_speech``), written once into the cache."""
    from nrstream_plugins.data.synth_speech import write_synthetic_noises

    folder = cache_dir() / "synthetic_noise" / f"seed{int(seed)}"
    if not (folder / _NOISE_MARKER).is_file():
        with atomic_folder(folder) as tmp:
            write_synthetic_noises(tmp, int(seed))
            (tmp / _NOISE_MARKER).write_text("")
    return folder


def _noise_files(noise_dir: str | Path | None, noise_seed: int) -> tuple[Path, list[Path]]:
    return noise_recordings(default_noise_dir(noise_seed) if noise_dir is None else noise_dir)


# ------------------------------------------------------------------ splits


def _speaker_list(value: Any, name: str, present: list[str]) -> list[str]:
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    unknown = [s for s in names if s not in present]
    if unknown or not all(isinstance(s, str) for s in names):
        raise ValueError(f"{name}: unknown speaker(s) {unknown or names}; the root has {', '.join(present)}")
    return names


def assign_splits(
    clips: list[tuple[int, str, int, Path]],
    split: str,
    test_speakers: Any = None,
    validation_speakers: Any = None,
) -> list[str]:
    """The split of each clip under the ``split`` protocol (see the module docstring)."""
    present = sorted({c[1] for c in clips})
    if split == "official":
        if test_speakers is not None or validation_speakers is not None:
            raise ValueError("test_speakers and validation_speakers need split: speakers")
        return ["test" if take < 5 else "validation" if take < 10 else "train" for _, _, take, _ in clips]
    if split != "speakers":
        raise ValueError(f"split must be 'official' or 'speakers', got {split!r}")
    test = _speaker_list(test_speakers, "test_speakers", present)
    validation = _speaker_list(validation_speakers, "validation_speakers", present)
    if not test:
        raise ValueError(f"split: speakers needs test_speakers (some of {', '.join(present)})")
    if set(test) & set(validation):
        raise ValueError(
            f"a speaker cannot be in test_speakers and validation_speakers: {sorted(set(test) & set(validation))}"
        )
    if not set(present) - set(test) - set(validation):
        raise ValueError(f"split: speakers leaves no training speaker (the root has {', '.join(present)})")
    out = []
    for _, speaker, take, _ in clips:
        if speaker in test:
            out.append("test")
        elif speaker in validation:
            out.append("validation")
        else:
            out.append("validation" if not validation and 5 <= take < 10 else "train")
    return out


# ------------------------------------------------------------------ loading


def _valid_payload(payload: Any, frames: int, size: int) -> bool:
    feats = payload["features"]
    return (
        isinstance(payload["clips"], list)
        and isinstance(feats, torch.Tensor)
        and feats.shape == (len(payload["clips"]), frames, size)
        and bool(torch.isfinite(feats).all())
        and set(payload["noise"]) == set(SPLITS)
    )


def load_fsdd(
    *,
    root: str | None = None,
    split: str = "official",
    test_speakers: list[str] | str | None = None,
    validation_speakers: list[str] | str | None = None,
    frontend: dict | None = None,
    clip_seconds: float = 1.0,
    noise_dir: str | None = None,
    noise_seed: int = 0,
    noise_split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    verify: bool = True,
    on_error: str = "raise",
    normalize: bool = True,
) -> Dataset:
    """Load FSDD from the first root found (see the module docstring).

    Args:
        root: the data set folder (holding ``recordings/``, or the unpacked release).
        split: ``"official"`` (takes 0-4 test, 5-9 validation) or ``"speakers"``.
        test_speakers, validation_speakers: the speaker-disjoint protocol's held-out speakers.
        frontend: :class:`nrstream.audio.FeatureFrontend` keyword arguments (default 8 kHz).
        clip_seconds: every clip is zero-padded or centre-cropped to this length.
        noise_dir: a folder of WAV noise recordings for scene backgrounds (default synthetic).
        noise_seed: seed of the default synthetic noises.
        noise_split: shares of each noise recording given to train, validation, test.
        verify: check every recording against the shipped SHA-256 list.
        on_error: ``"raise"`` on a bad file, or ``"skip"`` it with a counted warning.
        normalize: standardise features with the train split's statistics.

    Returns:
        A :class:`Dataset` of ``[N, 101, 40]`` banks (defaults), 10 classes, with noise banks.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not isinstance(verify, bool):
        raise ValueError(f"verify must be true or false, got {verify!r}")
    if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, (int, float)) or not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be a positive number, got {clip_seconds!r}")
    noise_split = tuple(float(x) for x in noise_split)
    if len(noise_split) != 3 or min(noise_split) <= 0 or sum(noise_split) > 1 + 1e-9:
        raise ValueError(f"noise_split must be three positive shares summing to at most 1, got {noise_split!r}")
    fe = FeatureFrontend(**{"sample_rate": 8000, **(frontend or {})})
    samples = round(clip_seconds * fe.sample_rate)
    frames = fe.num_frames(samples)

    found = find_root(root)
    clips, skipped_files = _scan(found, verify, on_error)
    if not clips:
        raise DataNotFoundError(
            f"{found / 'recordings'} holds no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)"
        )
    split_of = assign_splits(clips, split, test_speakers, validation_speakers)
    noise_folder, noise_paths = _noise_files(noise_dir, noise_seed)

    clip_paths = [c[3] for c in clips]
    params = {
        "loader": 1,
        "frontend": fe.params(),
        "samples": samples,
        "on_error": on_error,
        "noise_split": noise_split,
    }
    key = fingerprint([*clip_paths, *noise_paths], params)

    def build() -> dict[str, Any]:
        feats, kept, skipped = extract_features(clip_paths, fe, samples, on_error)
        noise = _noise_parts(noise_paths, fe, noise_split, on_error, skipped)
        return {"clips": [clip_paths[i].name for i in kept], "features": feats, "skipped": skipped, "noise": noise}

    payload, hit = cached("fsdd", key, build, check=lambda p: _valid_payload(p, frames, fe.feature_size))
    skipped = [*skipped_files, *payload["skipped"]]
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable, non-finite or unverified audio files in {found}; first: {skipped[0]}",
            SkippedClipsWarning,
            stacklevel=2,
        )
    index = {c[3].name: i for i, c in enumerate(clips)}
    kept = [index[name] for name in payload["clips"]]
    speakers = sorted({c[1] for c in clips})
    features: torch.Tensor = payload["features"]

    banks, sample_speaker, sample_take = {}, {}, {}
    for split_name in SPLITS:
        rows = [j for j, i in enumerate(kept) if split_of[i] == split_name]
        if not rows:
            raise DataNotFoundError(f"{found} has no recordings in the {split_name} split (split: {split})")
        idx = torch.tensor(rows, dtype=torch.long)
        labels = torch.tensor([clips[kept[j]][0] for j in rows], dtype=torch.long)
        lengths = torch.full((len(rows),), frames, dtype=torch.long)
        banks[split_name] = SampleBank(features[idx].float().contiguous(), lengths, labels, list(DIGITS))
        sample_speaker[split_name] = [speakers.index(clips[kept[j]][1]) for j in rows]
        sample_take[split_name] = [clips[kept[j]][2] for j in rows]

    noise, normalization = noise_banks_and_normalization(banks, payload["noise"], list(DIGITS), normalize)

    def speakers_of(name: str) -> list[str]:
        return sorted({speakers[i] for i in sample_speaker[name]})

    info = {
        "source": "fsdd",
        "version": VERSION,
        "root": str(found),
        "split": split,
        "split_speakers": {s: speakers_of(s) for s in SPLITS},
        "class_names": list(DIGITS),
        "num_classes": len(DIGITS),
        "sizes": {s: len(b) for s, b in banks.items()},
        "speakers": speakers,
        "sample_speaker": sample_speaker,
        "sample_take": sample_take,
        "noise_dir": str(noise_folder),
        "noise_recordings": [p.name for p in noise_paths],
        "noise_split": list(noise_split),
        "noise_frames": {s: int(b.lengths.sum()) for s, b in noise.items()},
        "verified": verify,
        "skipped": len(skipped),
        "frontend": fe.params(),
        "clip_seconds": float(clip_seconds),
        "normalized": normalize,
        "normalization": normalization,
        "cache": {"key": key, "hit": hit},
    }
    return Dataset(splits=banks, noise=noise, info=info)


def fsdd_split_audio(dataset: Dataset, split: str) -> SplitAudio:
    """The audio files behind one split of a loaded ``fsdd`` data set (what ``make-recording`` mixes).

    Returns:
        :class:`~nrstream.plugin.contracts.SplitAudio`: ``clips`` as ``[(word, path)]`` in bank
        order (word = the digit's class name), the noise recordings and this split's
        ``[lo, hi)`` share of each, the front end's rate and parameters, ``clip_seconds``.
    """
    info = dataset.info
    if info.get("source") != "fsdd":
        raise ValueError(f"fsdd_split_audio needs an fsdd data set, got source {info.get('source')!r}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(info["root"])
    bank = dataset.splits[split]
    speakers = info["speakers"]
    numbers = zip(bank.labels.tolist(), info["sample_speaker"][split], info["sample_take"][split], strict=True)
    clips = [(DIGITS[d], root / "recordings" / f"{d}_{speakers[s]}_{take}.wav") for d, s, take in numbers]
    frontend = dict(info["frontend"])
    return SplitAudio(
        split=split,
        sample_rate=int(frontend["sample_rate"]),
        clips=clips,
        noise=[Path(info["noise_dir"]) / name for name in info["noise_recordings"]],
        noise_share=split_share(info["noise_split"], split),
        frontend=frontend,
        clip_seconds=float(info["clip_seconds"]),
        root=root,
    )


# ------------------------------------------------------------------ download


def verify_recordings(root: Path, checksums: str | Path = CHECKSUMS) -> int:
    """Check that ``root/recordings`` holds exactly the files of ``checksums``, byte for byte; their number.

    Raises:
        DownloadError: a file missing, extra or different (names the first such file).
    """
    sums = read_checksums(checksums)
    on_disk = (
        {f"recordings/{p.name}" for p in (root / "recordings").iterdir()} if (root / "recordings").is_dir() else set()
    )
    missing = sorted(set(sums) - on_disk)
    if missing:
        raise DownloadError(
            f"the FSDD archive lacks {len(missing)} of its {len(sums)} recordings, e.g. {root / missing[0]}"
        )
    extra = sorted(on_disk - set(sums))
    if extra:
        raise DownloadError(f"the FSDD archive holds a file that is not in FSDD v{VERSION}: {root / extra[0]}")
    for name in sorted(sums):
        if file_checksum(root / name) != sums[name]:
            raise DownloadError(f"checksum mismatch for {root / name}: not the FSDD v{VERSION} file; nothing was kept")
    return len(sums)


def download_fsdd(
    dest: str | Path | None = None,
    *,
    url: str = URL,
    checksums: str | Path = CHECKSUMS,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Download the v1.0.10 release archive, safely extract it, and verify every recording.

    The data lands in ``dest/fsdd_v1.0.10`` (``dest`` defaults to ``$NRSTREAM_DATA``, else
    ``~/.cache/nrstream``), on the default search path. GitHub's archive of a tag has no
    published checksum of its own, so the archive is trusted for nothing: after a safe
    extraction (:func:`nrstream.datafiles.safe_extract_tar`: no absolute paths, ``..``,
    links or devices) every one of the 3,000 recordings is checked against the shipped
    SHA-256 list, and a download with a missing, extra or different recording is removed
    again (``url`` and ``checksums``: another copy of the release, e.g. a local mirror of
    some speakers, and the list its recordings must match). Nothing of the user's is
    replaced: the sub-folder is only (re)written if it is absent or an earlier download
    wrote it; an archive already at ``dest`` is used and kept.

    Returns:
        The data set folder (holding ``recordings/``).

    Raises:
        DownloadError: the folder exists but was not written by a download; the download
            failed; a recording is missing, extra or differs (named).
    """
    parent = Path(dest).expanduser() if dest is not None else download_root()
    if parent.exists() and not parent.is_dir():
        raise DownloadError(f"--dest {parent} is a file, not a folder; pass a folder to download into")
    folder = parent / FOLDER
    previous = written_by_download(folder) if folder.is_dir() and not folder.is_symlink() else None
    found = _has_layout(folder) if previous is not None else None
    if previous is not None and previous.get("verified") == VERSION and found is not None:
        return found  # already downloaded, extracted and verified
    check_replaceable(folder)  # before anything is downloaded
    archive = parent / f"{FOLDER}.tar.gz"
    had_archive = archive.exists() or archive.is_symlink()
    if not had_archive:
        download(url, archive, None, progress=progress)
    # extract and verify beside the final folder; only a verified set is moved into place
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=parent))
    try:
        unpacked = safe_extract_tar(archive, staging / "x", provenance={"source": "fsdd", "url": url})
        inner = _has_layout(unpacked)
        if inner is None:
            raise DownloadError(f"the FSDD archive {archive} has no recordings/ folder")
        verify_recordings(inner, checksums)
        marker = unpacked / DOWNLOAD_MARKER  # what the next download checks: this set was verified
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "verified": VERSION}, indent=1) + "\n")
        with atomic_folder(folder) as tmp:
            tmp.rmdir()
            unpacked.rename(tmp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not keep_archive and not had_archive:
            archive.unlink(missing_ok=True)
    return _has_layout(folder) or folder


SOURCE = DataSource(load=load_fsdd, download=download_fsdd, split_audio=fsdd_split_audio)


@hookimpl
def nrstream_register_data_sources(register):
    register("fsdd", SOURCE)
