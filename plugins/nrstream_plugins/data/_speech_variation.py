"""Acoustic variation of one synthesised keyword: noise under the word, a room, a gain.

``synth_speech`` renders clean, close-talking speech; a real keyword spotter hears words
in rooms, under noise, at unknown levels. This module turns one dry rendering (a trimmed
espeak-ng waveform, ``[L]`` float at 16 kHz) into a ``[SAMPLE_RATE]`` clip with the word
at a given position and returns the two parts (speech, noise) as well as their sum, so the
SNR can be checked from the parts. Everything is numpy and drawn from a caller's
``numpy.random.Generator``: the same draws give the same clip, on any machine.

The steps, in order:

1. **Placement**: the dry word at ``start = int(offset * (SAMPLE_RATE - L))`` in a 1 s
   window (as the plain corpus does).
2. **Room**: convolution (``scipy.signal.fftconvolve``) with a synthetic impulse response
   — a unit direct path, then after 1 ms an exponentially decaying Gaussian tail whose
   amplitude falls by 60 dB in ``rt60`` seconds, scaled so the direct-to-reverberant energy
   ratio is ``drr_db``. The reverberant tail runs on to the end of the window and is cut
   there (the clip keeps its length).
3. **Noise under the word**: a 1 s noise — ``white``, ``pink`` (power ~ 1/f), ``brown``
   (~ 1/f²) or ``babble`` (``babble_talkers`` dry renderings of the same split (the corpus's own words),
   time-reversed so no keyword is intelligible, each at unit RMS, at random circular
   offsets, summed) — scaled so that the speech power over the word's span
   ``[start, start + L)`` is ``snr_db`` above the noise power over the same span. The noise
   covers the whole window: the clip has no digital silence.
4. **Gain**: the mix is scaled by ``gain_db``; if its peak then exceeds 0.99 both parts
   are scaled down together (the SNR is unchanged) so the 16-bit file does not clip.

Recorded noise is deliberately not used: the corpus must be a pure function of its
options (no files that may or may not be on a machine), and the Speech Commands
``_background_noise_`` recordings are not part of an offline install.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["HARD", "NOISE_KINDS", "Mix", "draw", "mix", "parse_variation", "room_impulse", "snr_db"]

SAMPLE_RATE = 16000
NOISE_KINDS = ("white", "pink", "brown", "babble")
_EXPONENT = {"white": 0.0, "pink": -1.0, "brown": -2.0}  # noise power ~ f ** exponent

#: the default (``variation: hard``), calibrated so a GRU-128 as in configs/speech_quick.yaml with
#: oracle resets scores in the 80-92 % band (README "Data sources", synth_speech)
HARD: dict = {
    "snr_db": [5.0, 25.0],
    "noise": list(NOISE_KINDS),
    "babble_talkers": [3, 6],
    "rt60": [0.1, 0.8],
    "drr_db": [0.0, 12.0],
    "gain_db": [-6.0, 6.0],
}
_RANGES = ("snr_db", "babble_talkers", "rt60", "drr_db", "gain_db")


def parse_variation(value: str | dict | None) -> dict | None:
    """The normalised variation options: ``None`` for ``"none"``, else a full dict (hard defaults filled in)."""
    if value is None or value == "none":
        return None
    if value == "hard":
        value = {}
    if not isinstance(value, dict):
        raise ValueError(f"variation must be 'none', 'hard' or a mapping of options, got {value!r}")
    unknown = sorted(set(value) - set(HARD))
    if unknown:
        raise ValueError(f"variation: unknown option(s) {unknown}; known: {sorted(HARD)}")
    out = {**HARD, **value}
    for name in _RANGES:
        pair = out[name]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(x, (int, float)) for x in pair):
            raise ValueError(f"variation.{name} must be [low, high], got {pair!r}")
        if pair[0] > pair[1]:
            raise ValueError(f"variation.{name} must be [low, high] with low <= high, got {list(pair)!r}")
        out[name] = [int(x) for x in pair] if name == "babble_talkers" else [float(x) for x in pair]
    if out["babble_talkers"][0] < 1:
        raise ValueError(f"variation.babble_talkers must be >= 1, got {out['babble_talkers']!r}")
    if out["rt60"][0] < 0:
        raise ValueError(f"variation.rt60 must be >= 0 seconds (0: no room), got {out['rt60']!r}")
    kinds = out["noise"]
    if isinstance(kinds, str):
        kinds = [kinds]
    if not kinds or not all(k in NOISE_KINDS for k in kinds):
        raise ValueError(f"variation.noise must be a non-empty list of {list(NOISE_KINDS)}, got {out['noise']!r}")
    out["noise"] = list(kinds)
    return out


def draw(options: dict, rng: np.random.Generator) -> dict:
    """One rendering's acoustic parameters (JSON-able), drawn from ``rng`` in a fixed order."""
    lo, hi = options["babble_talkers"]
    return {
        "noise": options["noise"][int(rng.integers(len(options["noise"])))],
        "snr_db": float(rng.uniform(*options["snr_db"])),
        "babble_talkers": int(rng.integers(lo, hi + 1)),
        "rt60": float(rng.uniform(*options["rt60"])),
        "drr_db": float(rng.uniform(*options["drr_db"])),
        "gain_db": float(rng.uniform(*options["gain_db"])),
    }


def room_impulse(rt60: float, drr_db: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``[N]`` impulse response: direct path 1, then a decaying tail (-60 dB at ``rt60`` s) at ``drr_db`` below it."""
    n = max(1, int(round(rt60 * sr)))
    h = np.zeros(n + 1)
    h[0] = 1.0
    delay = sr // 1000  # 1 ms before the first reflection
    if n > delay and rt60 > 0:
        t = np.arange(n - delay) / sr
        tail = rng.standard_normal(n - delay) * np.exp(-3 * math.log(10) * t / rt60)
        h[delay + 1 :] = tail / math.sqrt(np.sum(tail**2)) * 10 ** (-drr_db / 20)
    return h


def _coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * freqs ** (exponent / 2), n)


def _babble(n: int, pool: list[np.ndarray], talkers: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(talkers):
        voice = pool[int(rng.integers(len(pool)))][::-1].astype(np.float64)
        voice = voice / max(math.sqrt(np.mean(voice**2)), 1e-12)
        out += np.roll(np.resize(voice, n), int(rng.integers(n)))
    return out


@dataclass
class Mix:
    """One varied clip: ``clip == speech + noise`` (``[SAMPLE_RATE]`` float64) and the word's span."""

    speech: np.ndarray
    noise: np.ndarray
    start: int
    stop: int

    @property
    def clip(self) -> np.ndarray:
        return self.speech + self.noise


def snr_db(speech: np.ndarray, noise: np.ndarray, start: int, stop: int) -> float:
    """Speech-to-noise power ratio in dB over samples ``[start, stop)``."""
    return 10 * math.log10(np.mean(speech[start:stop] ** 2) / np.mean(noise[start:stop] ** 2))


def mix(dry: np.ndarray, offset: float, params: dict, pool: list[np.ndarray], rng: np.random.Generator) -> Mix:
    """Place ``dry`` (``[L]``, L <= SAMPLE_RATE) at ``offset`` in 1 s, reverberate, add noise at ``params``."""
    n = SAMPLE_RATE
    length = len(dry)
    start = int(offset * (n - length))
    speech = np.zeros(n)
    speech[start : start + length] = dry
    if params["rt60"] > 0:
        from scipy.signal import fftconvolve

        speech = fftconvolve(speech, room_impulse(params["rt60"], params["drr_db"], rng))[:n]
    if params["noise"] == "babble":
        noise = _babble(n, pool, params["babble_talkers"], rng)
    else:
        noise = _coloured(n, _EXPONENT[params["noise"]], rng)
    stop = start + max(length, 1)
    p_speech = np.mean(speech[start:stop] ** 2)
    p_noise = max(np.mean(noise[start:stop] ** 2), 1e-20)
    noise *= math.sqrt(p_speech / (p_noise * 10 ** (params["snr_db"] / 10)))
    scale = 10 ** (params["gain_db"] / 20)
    peak = np.max(np.abs(speech + noise)) * scale
    if peak > 0.99:
        scale *= 0.99 / peak
    return Mix(speech * scale, noise * scale, start, stop)
