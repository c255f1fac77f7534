"""How often is a clip's voiced extent the whole clip, per source, and how close is it to the word? (issue 24 item 4)

The scene stream's decision frame and ``make-recording``'s truth spans both come from
:func:`nrstream.stream.scene.voiced_extent`. Two figures:

1. **Whole-clip share, per source**: the fraction of clips (all splits) whose voiced extent
   runs from the clip's first to its last frame (``trim_db`` 40, the default), the mean
   voiced length in frames, and the mean decision frame (the clip frame a scene stream
   scores: the last voiced frame + ``tail`` 10, cut at the clip's end). Sources:
   ``synth_speech`` with ``variation: hard`` and ``none`` (10 words x ``--renderings``), the
   shared Speech Commands sample, the shared FSDD subset.
2. **Distance to the clean word** (``synth_speech`` hard clips made here with the corpus's own
   functions: espeak-ng dry word, :func:`_speech_variation.mix` with hard parameters): start
   and end of the voiced extent of the noisy clip vs the dry word's span, in 10 ms frames.

    python benchmarks/voiced_extent.py [--renderings 30] [--clips 200] [--no-floor]

``--renderings 100`` is the corpus of ``configs/speech_quick.yaml`` (10 words x 100, hard);
``--no-floor``: the rule before issue 24 (``trim_db`` alone), for comparison.

Needs espeak-ng for the synth_speech rows; the shared data at ``$NRSTREAM_TEST_DATA``
(default ``../shared/data``) for the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from nrstream.data.audio import FeatureFrontend
from nrstream.stream.bank import SampleBank
from nrstream.stream.scene import LinearView, linear_view, voiced_extent


def whole_clip_share(dataset) -> dict:
    """Share of samples whose voiced extent is the whole sample, and their mean voiced length (frames)."""
    view = linear_view(dataset)
    whole, voiced_frames, decision, n = 0, 0.0, 0.0, 0
    for bank in dataset.splits.values():
        first, kept, voiced = voiced_extent(bank, view, 40.0, 10)  # tail 10: StreamSettings' default
        whole += int(((first == 0) & (voiced == bank.lengths)).sum())
        voiced_frames += float(voiced.float().sum())
        decision += float((first + kept - 1).float().sum())  # the clip frame the scene scores
        n += len(bank)
    return {
        "clips": n,
        "whole_clip": round(whole / n, 4),
        "mean_voiced_frames": round(voiced_frames / n, 1),
        "mean_decision_frame": round(decision / n, 1),
    }


def clean_word_distance(clips: int, seed: int = 0) -> dict:
    """Frames between the voiced extent of hard clips and their dry word's span (median, 90th pct, max)."""
    from nrstream_plugins.data import _speech_variation as variation
    from nrstream_plugins.data.synth_speech import _espeak, _plan, _speak

    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    plan = _plan(words, max(3, clips // len(words)), seed)[:clips]
    exe = _espeak()
    with tempfile.TemporaryDirectory() as tmp:
        dry = [_speak(exe, item, Path(tmp)) for item in plan]
    fe = FeatureFrontend()
    view = LinearView(True, torch.zeros(fe.feature_size), torch.ones(fe.feature_size), fe.log_offset)
    errors = {"start": [], "end": []}
    by_kind: dict[str, list[float]] = {}
    for i, (item, wave) in enumerate(zip(plan, dry, strict=True)):
        rng = np.random.default_rng([seed, i, 0x5EED])
        params = variation.draw(variation.HARD, rng)
        mixed = variation.mix(wave, item["offset"], params, dry, rng)
        with torch.no_grad():
            feats = fe(torch.from_numpy(mixed.clip.astype(np.float32)))
        bank = SampleBank(feats[None], torch.tensor([len(feats)]), torch.zeros(1, dtype=torch.long), ["w"])
        first, _, voiced = (int(v[0]) for v in voiced_extent(bank, view, 40.0, 0))
        word_first, word_last = round(mixed.start / fe.hop_length), round((mixed.stop - 1) / fe.hop_length)
        errors["start"].append(first - word_first)
        errors["end"].append(first + voiced - 1 - word_last)
        by_kind.setdefault(params["noise"], []).append(abs(first - word_first) + abs(first + voiced - 1 - word_last))

    def stats(values) -> dict:
        a = np.abs(np.array(values))
        return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "max": int(a.max())}

    out = {k: stats(v) for k, v in errors.items()}
    out["mean_signed"] = {k: round(float(np.mean(v)), 1) for k, v in errors.items()}
    out["by_noise_sum_abs_median"] = {k: float(np.median(v)) for k, v in sorted(by_kind.items())}
    out["clips"] = len(plan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renderings", type=int, default=30, help="synth_speech renderings per word (10 words)")
    parser.add_argument("--clips", type=int, default=200, help="hard clips for the clean-word distance")
    parser.add_argument("--no-floor", action="store_true", help="trim_db alone (the rule before issue 24)")
    args = parser.parse_args()
    if args.no_floor:
        import nrstream.stream.scene

        nrstream.stream.scene.FLOOR_DB = -math.inf  # smoothed power >= floor * 0: always true
    torch.set_num_threads(1)
    from nrstream_plugins.data.fsdd import load_fsdd
    from nrstream_plugins.data.speech_commands import load_speech_commands
    from nrstream_plugins.data.synth_speech import load_synth_speech

    shared = Path(os.environ.get("NRSTREAM_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    rows = {}
    for variation in ("hard", "none"):
        data = load_synth_speech(words=words, renderings_per_word=args.renderings, variation=variation, progress=False)
        rows[f"synth_speech {variation}"] = whole_clip_share(data)
    rows["speech_commands sample"] = whole_clip_share(
        load_speech_commands(root=str(shared / "speech_commands_v0.01_sample"))
    )
    rows["fsdd sample"] = whole_clip_share(load_fsdd(root=str(shared / "fsdd_v1.0.10_sample")))
    for name, row in rows.items():
        print(json.dumps({"source": name, **row}), flush=True)
    print(json.dumps({"synth_speech hard vs clean word (frames)": clean_word_distance(args.clips)}), flush=True)


if __name__ == "__main__":
    main()
