"""Mixing a word into background: waveforms then the front end, or mel power (what scene streams do).

Scene streams (:mod:`nrstream.stream.scene`) mix in the linear mel-power domain,
``log(g * P_word + P_background + offset)``, because the banks hold features, not
waveforms. The exact signal is ``frontend(sqrt(g) * word + background)``; the two differ by
the cross term ``2 sqrt(g) Re(W conj(N))`` summed over each mel band, which averages out
over the band's FFT bins but not exactly. This script measures the difference on real
clips: Speech Commands words and its ``_background_noise_`` recordings, the default
front end (40 log-mel bands, 30 ms windows, 10 ms hop: the data sources' default), the SNR set
per clip exactly as scene streams set it (mean power of the voiced frames, ``trim_db`` 40).

Printed per SNR: the absolute difference of the two log-mel features in dB (10 log10 of
power), median / mean / 95th percentile over all frames and bands and over voiced frames,
and for scale the same statistic between two different 1 s background segments mixed
under the same word (how much the background alone moves a frame). Also the time of each
way per second of audio.

    python benchmarks/scene_mixing.py --root ../shared/data/speech_commands_v0.01_sample
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nrstream.data.audio import FeatureFrontend, fix_length, read_wav

DB = 10.0 / math.log(10.0)  # natural-log units of power -> dB


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="a folder in Speech Commands layout")
    parser.add_argument("--clips", type=int, default=100, help="words to mix (default %(default)s)")
    parser.add_argument("--snr", type=float, nargs="+", default=[0.0, 10.0, 20.0], help="SNRs in dB")
    parser.add_argument("--trim-db", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    return parser.parse_args(argv)


def stats(diff: torch.Tensor) -> dict:
    d = diff.abs().flatten().double()
    return {"median": float(d.median()), "mean": float(d.mean()), "p95": float(torch.quantile(d, 0.95))}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    frontend = FeatureFrontend()
    mel = frontend.transform  # mel power, [N, bands, frames]
    rate = frontend.sample_rate
    clips = sorted(p for p in args.root.glob("*/*.wav") if not p.parent.name.startswith("_"))
    noises = [read_wav(p, rate) for p in sorted((args.root / "_background_noise_").glob("*.wav"))]
    if not clips or not noises:
        sys.exit(f"error: {args.root} has no word clips or no _background_noise_ recordings")
    chosen = [clips[i] for i in rng.choice(len(clips), size=min(args.clips, len(clips)), replace=False)]
    words = torch.stack([fix_length(read_wav(p, rate), rate) for p in chosen])  # [N, samples]

    def segment() -> torch.Tensor:
        noise = noises[int(rng.integers(len(noises)))]
        start = int(rng.integers(len(noise) - rate))
        return noise[start : start + rate]

    background = torch.stack([segment() for _ in chosen])
    other = torch.stack([segment() for _ in chosen])
    with torch.no_grad():
        p_word, p_bg, p_other = (mel(w).transpose(1, 2).double() for w in (words, background, other))  # [N, T, B]
    frame_power = p_word.sum(-1)
    loud = frame_power >= frame_power.amax(1, keepdim=True) * 10 ** (-args.trim_db / 10)
    steps = torch.arange(loud.shape[1])
    first = torch.where(loud, steps, loud.shape[1]).amin(1, keepdim=True)
    last = torch.where(loud, steps, -1).amax(1, keepdim=True)
    voiced = (steps >= first) & (steps <= last)
    offset = frontend.log_offset

    results = {}
    print(
        f"{len(chosen)} words of {args.root.name}, {len(noises)} background recordings, "
        f"log-mel {frontend.n_mels} bands, hop {frontend.hop_ms:g} ms"
    )
    print(
        f"{'SNR dB':>7s}  {'frames':>8s}  {'|waveform - mel-power| dB: median / mean / p95':>48s}  "
        f"{'voiced frames':>24s}  {'other background':>24s}"
    )
    for snr in args.snr:
        ratio = (frame_power * voiced).sum(1) / voiced.sum(1)
        bg_ratio = (p_bg.sum(-1) * voiced).sum(1) / voiced.sum(1)
        g = (10 ** (snr / 10) * bg_ratio / ratio)[:, None]  # power gain per word, [N, 1]
        with torch.no_grad():
            exact = torch.log(mel(words * g.sqrt().float() + background).transpose(1, 2).double() + offset)
        approx = torch.log(g[..., None] * p_word + p_bg + offset)
        moved = torch.log(g[..., None] * p_word + p_other + offset)
        diff, between = (exact - approx) * DB, (moved - approx) * DB
        row = {"all": stats(diff), "voiced": stats(diff[voiced]), "other_background": stats(between)}
        results[f"{snr:g}"] = row
        fmt = "{median:5.2f} / {mean:5.2f} / {p95:5.2f}".format
        print(
            f"{snr:7g}  {diff.shape[0] * diff.shape[1]:8d}  {fmt(**row['all']):>48s}  "
            f"{fmt(**row['voiced']):>24s}  {fmt(**row['other_background']):>24s}"
        )

    # speed: the front end per second of audio against a power-domain mix per second of frames
    with torch.no_grad():
        begin = time.perf_counter()
        for _ in range(5):
            mel(words * 0.5 + background)
        front = (time.perf_counter() - begin) / (5 * len(chosen))
        p_word32, p_bg32 = p_word.float(), p_bg.float()
        begin = time.perf_counter()
        for _ in range(5):
            torch.log(p_word32 * 0.5 + p_bg32 + offset)
        power = (time.perf_counter() - begin) / (5 * len(chosen))
    print(
        f"time per second of audio: waveform mix + front end {front * 1e3:.3f} ms, mel-power mix {power * 1e3:.3f} ms "
        f"({front / power:.0f}x)"
    )
    payload = {
        "benchmark": "scene_mixing",
        "clips": len(chosen),
        "snr": results,
        "seconds_per_audio_second": {"waveform_frontend": front, "mel_power": power},
    }
    if args.json is not None:
        from _common import write_json

        write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
