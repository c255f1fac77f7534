"""Statistics, seeds and stream settings: exact values on small cases."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import pytest

from nrstream.seeds import derive_seed
from nrstream.stats import Z95, student_t_interval, t_quantile, wilson_interval
from nrstream.stream.settings import MAX_GAP, SettingError, StreamSettings


def test_z95_is_the_normal_quantile():
    from scipy.stats import norm

    assert Z95 == pytest.approx(float(norm.ppf(0.975)), abs=1e-15)


def test_wilson_interval_exact_values():
    low, high = wilson_interval(7, 10)
    # hand computation: p=0.7, n=10, z=Z95
    z2 = Z95 * Z95
    centre = (0.7 + z2 / 20) / (1 + z2 / 10)
    half = Z95 * math.sqrt(0.21 / 10 + z2 / 400) / (1 + z2 / 10)
    assert (low, high) == (centre - half, centre + half)
    assert low == pytest.approx(0.39677814746114537, abs=1e-15)
    assert high == pytest.approx(0.8922087325936989, abs=1e-15)


def test_wilson_interval_holds_the_estimate_at_the_ends():
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_student_t_interval_exact_values():
    mean, low, high = student_t_interval([1.0, 2.0, 3.0])
    # s = 1, n = 3: half = t_{0.975,2} / sqrt(3), t_{0.975,2} = 4.302652729749464
    assert mean == 2.0
    assert t_quantile(0.975, 2) == pytest.approx(4.302652729749464, abs=1e-12)
    assert high - mean == pytest.approx(4.302652729749464 / math.sqrt(3), abs=1e-12)
    assert mean - low == pytest.approx(high - mean, abs=1e-15)
    mean, low, high = student_t_interval([0.5, 0.7])
    # s = 0.1414.., n = 2: half = 12.706204736174698 * 0.1
    assert mean == pytest.approx(0.6)
    assert (low, high) == pytest.approx((0.6 - 1.2706204736174698, 0.6 + 1.2706204736174698), abs=1e-12)


def test_student_t_interval_of_one_seed_is_not_invented():
    assert student_t_interval([0.83]) == (0.83, None, None)


def test_student_t_interval_narrows_with_confidence_and_is_zero_for_equal_values():
    wide = student_t_interval([1.0, 2.0, 4.0], confidence=0.99)
    narrow = student_t_interval([1.0, 2.0, 4.0], confidence=0.9)
    assert wide[1] < narrow[1] < narrow[2] < wide[2]
    assert student_t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("values", "confidence", "message"),
    [
        ([], 0.95, "at least one value"),
        ([1.0, math.nan], 0.95, "finite values, got nan"),
        ([1.0, 2.0], 1.0, "confidence must be between 0 and 1"),
    ],
)
def test_student_t_interval_rejects_bad_input(values, confidence, message):
    with pytest.raises(ValueError, match=message):
        student_t_interval(values, confidence)


def test_derive_seed_is_the_documented_hash():
    expected = int.from_bytes(hashlib.sha256(b"0:test:16").digest()[:4], "little") & 0x7FFFFFFF
    assert derive_seed(0, "test", 16) == expected == 1299938200
    assert derive_seed(0, "test", 16) != derive_seed(1, "test", 16)
    assert 0 <= derive_seed(123, "train", "gru/ce") < 2**31


def test_stats_seeds_and_stream_settings_import_no_torch():
    code = "import sys, nrstream.stats, nrstream.seeds, nrstream.stream.settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_stream_settings_defaults_and_mean_event_length():
    s = StreamSettings()
    assert (s.gap_min, s.gap_max, s.noise, s.noise_scale) == (5, 30, "gaussian", 1.0)
    assert s.mean_event_length(28.0) == 28.0 + 17.5
    assert StreamSettings(gap_min=0, gap_max=0).mean_event_length(10) == 10.0
    assert s.identity() == {"gap_min": 5, "gap_max": 30, "noise": "gaussian", "noise_scale": 1.0}
    assert set(s.stream_options()) == set(StreamSettings.field_names())
    with pytest.raises(dataclasses_frozen()):
        s.gap_min = 3  # type: ignore[misc]


def dataclasses_frozen():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gap_min": 9, "gap_max": 3}, "stream setting gap_max: must be >= gap_min (9), got 3"),
        ({"gap_max": 10**12}, f"stream setting gap_max: must be <= {MAX_GAP} frames, got 1000000000000"),
        ({"gap_min": -1}, "stream setting gap_min: must be >= 0, got -1"),
        ({"gap_min": True}, "stream setting gap_min: expected an integer, got True"),
        ({"gap_max": 1e12}, "stream setting gap_max: expected an integer, got 1000000000000.0"),
        ({"noise_scale": math.inf}, "stream setting noise_scale: must be a finite number, got inf"),
        ({"noise_scale": -0.5}, "stream setting noise_scale: must be between 0 and 1000, got -0.5"),
        ({"noise": "pink"}, "stream setting noise: expected one of gaussian, silence, recorded, got 'pink'"),
    ],
)
def test_stream_settings_reject_bad_values_in_one_line(changes, message):
    with pytest.raises(SettingError) as info:
        StreamSettings(**changes)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_stream_settings_quote_at_most_80_characters_of_a_bad_value():
    with pytest.raises(SettingError) as info:
        StreamSettings(noise="x" * 10_000)
    assert len(str(info.value)) < 200 and str(info.value).endswith("...")
