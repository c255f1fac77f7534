"""Spoken keywords synthesised with espeak-ng: the embedded default for speech.

Needs no download, only the ``espeak-ng`` program (``apt-get install espeak-ng``). Each
word of the vocabulary (default: the 35 words of Speech Commands v0.02) is rendered
``renderings_per_word`` times by ``espeak-ng -w out.wav -v <voice>+<variant> -s <speed>
-p <pitch> -a <amplitude> <word>``; voice (8 English accents), variant (25 speaker
variants), speed (120-220 words/min), pitch (20-80), amplitude (60-180) and the clip's
position inside its 1 s window are drawn from ``seed``, so the corpus is a pure function
of its options and the espeak-ng version.

**Acoustic variation** (``variation``, default ``"hard"``): clean close-talking espeak-ng
words are trivially separable (a GRU scores 100 %), so by default every rendering is put
in a room and under noise, with parameters drawn per rendering from its own generator
(``seed``, clip index): all in :mod:`nrstream_plugins.data._speech_variation`. The options
(``[low, high]`` ranges are uniform draws):

* ``snr_db`` (``[5, 25]``): speech-to-noise ratio over the word's span; the noise covers
  the whole 1 s window, so a clip has no digital silence.
* ``noise`` (``[white, pink, brown, babble]``): the noise kinds drawn from, equally likely;
  all synthetic — coloured Gaussian noise, or babble made of ``babble_talkers``
  (``[3, 6]``) time-reversed renderings of the same split (no speaker crosses splits). No
  recorded noise is used, so the corpus stays a pure function of its options.
* ``rt60`` (``[0.1, 0.8]`` s) and ``drr_db`` (``[0, 12]``): a synthetic room impulse
  response, direct path plus an exponentially decaying Gaussian tail (-60 dB after
  ``rt60``) at ``drr_db`` below it, convolved with the word (``scipy.signal``);
  ``rt60: [0, 0]`` means no room.
* ``gain_db`` (``[-6, 6]``): the level of the mix (scaled down together if it would clip).

Speaker, speed, pitch, amplitude and the time shift inside the 1 s window vary as above;
confusable words (e.g. "off"/"up", "no"/"go", "tree"/"three") stay in the vocabulary.
``variation: none`` gives the plain clips of earlier versions, byte for byte, under the
same cache key; any other value adds its normalised options to the key (a new folder).
Each varied corpus records the drawn parameters of every clip in ``variation.json``.

A *speaker* is one voice+variant pair. Speakers are split 80/10/10 between train,
validation and test, so no synthetic speaker is heard in two splits; each word gets
``max(1, round(0.1 * renderings_per_word))`` validation and test renderings.

The clips are resampled to 16 kHz, trimmed of leading and trailing silence, placed at a
random offset in 1 s, and written as 16-bit WAV in the Speech Commands layout (word
folders, ``validation_list.txt``, ``testing_list.txt``, and a ``_background_noise_``
folder of six 60 s synthetic noises: white, pink, brown, blue, violet noise and mains
hum) under ``~/.cache/nrstream/synth_speech/<key>`` (``$NRSTREAM_CACHE``). The folder
is built in a temporary sibling, gets its ``.complete`` marker last and is then renamed
into place, so an interrupted run leaves nothing that looks finished. The features are
then built by the ``speech_commands`` loader, unchanged, and cached the same way.

The clips are synthetic speech produced by espeak-ng (a GPL-3.0 program, used as a tool);
nrstream ships no audio.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from nrstream import DataNotFoundError, NrstreamError, hookimpl
from nrstream.atomic import atomic_folder
from nrstream.data.audio import read_wav
from nrstream.data.cache import cache_dir
from nrstream.log import progress_bar
from nrstream.plugin.contracts import DataSource
from nrstream.stream.bank import Dataset
from nrstream_plugins.data import _speech_variation as _variation
from nrstream_plugins.data.speech_commands import NOISE_FOLDER, WORDS_V2, build_dataset, split_audio

__all__ = [
    "load_synth_speech",
    "synthesize_corpus",
    "synthetic_noises",
    "write_synthetic_noises",
    "corpus_config",
    "corpus_key",
    "VOICES",
    "VARIANTS",
]

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
VARIANTS = (
    "m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 croak whisper grandma grandpa "
    "linda john steph max"
).split()
SAMPLE_RATE = 16000
NOISE_SECONDS = 60
_GENERATOR_VERSION = 1  # bump when the corpus a given config produces changes
_MARKER = ".complete"
_SPLITS = ("train", "validation", "test")


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataNotFoundError("synth_speech needs the espeak-ng program; install it with: apt-get install espeak-ng")
    return path


def _espeak_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.split("Data at")[0].strip()


def _plan(words: list[str], renderings: int, seed: int) -> list[dict]:
    """One entry per clip: word, split, speaker and prosody, all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    speakers = [(v, var) for v in VOICES for var in VARIANTS]
    order = rng.permutation(len(speakers))
    n_val = n_test = max(1, round(0.1 * len(speakers)))
    pools = {
        "validation": [speakers[i] for i in order[:n_val]],
        "test": [speakers[i] for i in order[n_val : n_val + n_test]],
        "train": [speakers[i] for i in order[n_val + n_test :]],
    }
    per_val = per_test = max(1, round(0.1 * renderings))
    plan = []
    for word in words:
        for r in range(renderings):
            split = "validation" if r < per_val else "test" if r < per_val + per_test else "train"
            voice, variant = pools[split][rng.integers(len(pools[split]))]
            speaker = hashlib.sha1(f"{voice}+{variant}".encode()).hexdigest()[:8]
            plan.append(
                {
                    "word": word,
                    "split": split,
                    "voice": f"{voice}+{variant}",
                    "speed": int(rng.integers(120, 221)),
                    "pitch": int(rng.integers(20, 81)),
                    "amplitude": int(rng.integers(60, 181)),
                    "offset": float(rng.random()),
                    "file": f"{word}/{speaker}_nohash_{r}.wav",
                }
            )
    return plan


def _speak(exe: str, item: dict, workdir: Path) -> np.ndarray:
    """The dry word: espeak-ng's rendering at 16 kHz, trimmed of silence, at most 1 s (``[L]`` float32)."""
    out = workdir / (item["file"].replace("/", "_") + ".raw.wav")
    cmd = [exe, "-w", str(out), "-v", item["voice"], "-s", str(item["speed"]), "-p", str(item["pitch"])]
    cmd += ["-a", str(item["amplitude"]), item["word"]]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        raise NrstreamError(f"espeak-ng failed on {item['word']!r} ({item['voice']}): {done.stderr.strip()}")
    wave = read_wav(out, SAMPLE_RATE).numpy()
    out.unlink()
    loud = np.flatnonzero(np.abs(wave) > 1e-3)
    if loud.size:
        wave = wave[loud[0] : loud[-1] + 1]
    if len(wave) > SAMPLE_RATE:
        start = (len(wave) - SAMPLE_RATE) // 2
        wave = wave[start : start + SAMPLE_RATE]
    return wave


def _place(wave: np.ndarray, offset: float) -> np.ndarray:
    """The plain clip (``variation: none``): ``[SAMPLE_RATE]`` float32, the word at ``offset`` of the slack."""
    clip = np.zeros(SAMPLE_RATE, dtype=np.float32)
    start = int(offset * (SAMPLE_RATE - len(wave)))
    clip[start : start + len(wave)] = wave
    return clip


def _vary(index: int, item: dict, dry: np.ndarray, pool: list[np.ndarray], options: dict, seed: int) -> tuple:
    """The varied clip of plan entry ``index`` and its drawn parameters (own generator: thread-order free)."""
    rng = np.random.default_rng([seed, index, 0x5EED])
    params = _variation.draw(options, rng)
    clip = _variation.mix(dry, item["offset"], params, pool, rng).clip.astype(np.float32)
    return clip, params


def _render(exe: str, item: dict, workdir: Path) -> np.ndarray:
    """One plain clip (``variation: none``): ``[SAMPLE_RATE]`` float32, written to ``workdir``."""
    import soundfile

    clip = _place(_speak(exe, item, workdir), item["offset"])
    soundfile.write(str(workdir / item["file"]), clip, SAMPLE_RATE, subtype="PCM_16")
    return clip


def synthetic_noises(seed: int) -> dict[str, np.ndarray]:
    """Six 60 s noise recordings at 16 kHz (``[960000]`` float32 each, RMS 0.05): coloured noises
    (power ~ f^k: white, pink, brown, blue, violet) and a 50 Hz hum; a pure function of ``seed``.

    The ``_background_noise_`` of every synthesised corpus, and the default background of
    sources that have no noise recordings of their own (``fsdd``).
    """
    rng = np.random.default_rng(seed + 7919)
    n = NOISE_SECONDS * SAMPLE_RATE
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    out = {}
    for name, exponent in (("white", 0), ("pink", -1), ("brown", -2), ("blue", 1), ("violet", 2)):
        spectrum = np.fft.rfft(rng.standard_normal(n)) * freqs ** (exponent / 2)
        wave = np.fft.irfft(spectrum, n)
        out[f"{name}_noise"] = wave / np.sqrt(np.mean(wave**2)) * 0.05
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    hum = hum + 0.3 * rng.standard_normal(n)
    out["mains_hum"] = hum / np.sqrt(np.mean(hum**2)) * 0.05
    return {k: v.astype(np.float32) for k, v in out.items()}


def write_synthetic_noises(folder: Path, seed: int) -> list[Path]:
    """Write :func:`synthetic_noises` into the existing ``folder`` as 16-bit WAV (``<name>.wav``); their paths."""
    import soundfile

    paths = []
    for name, wave in synthetic_noises(seed).items():
        paths.append(folder / f"{name}.wav")
        soundfile.write(str(paths[-1]), wave, SAMPLE_RATE, subtype="PCM_16")
    return paths


def corpus_config(words: list[str], renderings_per_word: int, seed: int, variation_options: dict | None) -> dict:
    """What the corpus is a function of; its hash is the cache key.

    ``variation_options=None`` (``variation: none``) gives exactly the fields of the corpora
    made before variation existed, so they keep their keys; any variation adds its
    normalised options under ``"variation"`` (a new key).
    """
    config = {
        "words": list(words),
        "renderings_per_word": renderings_per_word,
        "seed": seed,
        "espeak": _espeak_version(_espeak()),
        "generator": _GENERATOR_VERSION,
        "voices": VOICES,
        "variants": VARIANTS,
    }
    if variation_options is not None:
        config["variation"] = variation_options
    return config


def corpus_key(config: dict) -> str:
    """The cache folder name of a corpus: 16 hex digits of the SHA-256 of its config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def synthesize_corpus(
    words: list[str],
    renderings_per_word: int,
    seed: int = 0,
    *,
    variation: str | dict | None = "none",
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render the corpus once into the cache and return its folder (Speech Commands layout).

    ``variation``: ``"none"`` (plain clips, the corpus of earlier versions), ``"hard"`` or a
    mapping of :mod:`~nrstream_plugins.data._speech_variation` options.
    """
    import soundfile

    exe = _espeak()
    options = _variation.parse_variation(variation)
    config = corpus_config(words, renderings_per_word, seed, options)
    final = cache_dir() / "synth_speech" / corpus_key(config)
    if (final / _MARKER).is_file():
        return final
    with atomic_folder(final) as tmp:  # replaces an unfinished earlier attempt (no marker)
        plan = _plan(list(words), renderings_per_word, seed)
        for word in words:
            (tmp / word).mkdir()
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            if options is None:
                jobs = pool.map(lambda item: _render(exe, item, tmp), plan)
                for _ in progress_bar(jobs, enabled=progress, total=len(plan), desc="espeak-ng", unit="clip"):
                    pass
            else:
                jobs = pool.map(lambda item: _speak(exe, item, tmp), plan)
                dry = list(progress_bar(jobs, enabled=progress, total=len(plan), desc="espeak-ng", unit="clip"))
                # babble is made of other renderings of the same split: no speaker crosses splits
                pools = {
                    split: [w for w, it in zip(dry, plan, strict=True) if it["split"] == split] for split in _SPLITS
                }

                def vary(i: int) -> dict:
                    item = plan[i]
                    clip, params = _vary(i, item, dry[i], pools[item["split"]], options, seed)
                    soundfile.write(str(tmp / item["file"]), clip, SAMPLE_RATE, subtype="PCM_16")
                    return {"file": item["file"], **params}

                drawn = list(pool.map(vary, range(len(plan))))
                (tmp / "variation.json").write_text(json.dumps(drawn, indent=1))
        for split, list_name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
            lines = [item["file"] for item in plan if item["split"] == split]
            (tmp / list_name).write_text("".join(f"{line}\n" for line in lines))
        (tmp / NOISE_FOLDER).mkdir()
        write_synthetic_noises(tmp / NOISE_FOLDER, seed)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / _MARKER).write_text("")
    return final


def load_synth_speech(
    *,
    words: list[str] | None = None,
    renderings_per_word: int = 200,
    seed: int = 0,
    variation: str | dict | None = "hard",
    labels: str = "all",
    frontend: dict | None = None,
    silence_fraction: float = 0.1,
    normalize: bool = True,
    progress: bool = True,
    noise_dir: str | None = None,
) -> Dataset:
    """Synthesise (once) and load the keyword corpus.

    Args:
        words: the vocabulary; default the 35 Speech Commands v0.02 words.
        renderings_per_word: clips per word (at least 3: every split needs one).
        seed: seed of speakers, prosody, acoustic variation and noise.
        variation: ``"hard"`` (default: noise under every word, a room, a gain; see the
            module docstring), ``"none"`` (plain clips: the corpus and cache key of earlier
            versions) or a mapping overriding some of the hard options.
        labels, frontend, silence_fraction, normalize: as for ``speech_commands``.
        progress: show a progress bar while synthesising (on a terminal only: none in a log file).
        noise_dir: a folder of WAV noise recordings for scene backgrounds and gaps, instead of
            the corpus's six synthetic noises (the words' own baked-in noise is unchanged).

    Returns:
        A :class:`Dataset` like ``speech_commands`` gives, with ``info["source"] == "synth_speech"``.
    """
    words = list(WORDS_V2 if words is None else words)
    if any(isinstance(w, bool) for w in words):
        raise ValueError(
            f"words must be strings, got {words!r}: quote yes/no/on/off in YAML, which reads them as booleans"
        )
    if not words or len(set(words)) != len(words) or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError(f"words must be distinct non-empty strings, got {words!r}")
    if any(w.startswith(("_", ".", "-")) or "/" in w for w in words):
        raise ValueError(f"words may not start with '_', '.' or '-' or contain '/', got {words!r}")
    if not isinstance(renderings_per_word, int) or renderings_per_word < 3:
        raise ValueError(f"renderings_per_word must be an int >= 3, got {renderings_per_word!r}")
    options = _variation.parse_variation(variation)
    root = synthesize_corpus(words, renderings_per_word, seed, variation=options or "none", progress=progress)
    with torch.no_grad():
        dataset = build_dataset(
            root,
            source="synth_speech",
            version=f"synth-{_GENERATOR_VERSION}",
            labels=labels,
            frontend=frontend,
            silence_fraction=silence_fraction,
            normalize=normalize,
            seed=seed,
            noise_dir=noise_dir,
        )
    dataset.info.update(words=words, renderings_per_word=renderings_per_word, seed=seed, variation=options or "none")
    return dataset


@hookimpl
def nrstream_register_data_sources(register):
    # the clips are written in the Speech Commands layout: its split_audio lists them
    register("synth_speech", DataSource(load=load_synth_speech, split_audio=split_audio))
