"""Across-seed aggregates (nrstream.lab.aggregate): exact values against a hand computation."""

from __future__ import annotations

import json
import math

import pytest

from nrstream.lab.aggregate import (
    AGGREGATE_CSV_HEADER,
    CI_METHOD,
    aggregate_csv_header,
    aggregate_csv_rows,
    aggregate_runs,
    aggregate_table,
    draw_accuracy_vs_length,
)

# Student t 0.975 quantiles (tables): 1 and 2 degrees of freedom
T1 = 12.706204736174698
T2 = 4.302652729749464


def entry(arch, loss, reset, seed, acc, entropy=None, **extra):
    return {
        "arch": arch,
        "loss": loss,
        "reset": reset,
        "seed": seed,
        "arch_options": extra.get("arch_options", {"hidden_size": 8}),
        "loss_options": {},
        "accuracy_by_length": {str(n): a for n, a in acc.items()},
        "metrics": {"noise_entropy": {"noise_entropy": entropy}, "state_norm": {"curve": {"x": [0], "y": [1.0]}}},
    }


PRODUCES = {"noise_entropy": {"noise_entropy": "scalar"}, "state_norm": {"curve": "curve"}}


def test_three_seeds_mean_interval_and_flatness_by_hand():
    runs = [
        entry("gru", "ce", "never", 0, {1: 0.5, 4: 0.40}, 0.90),
        entry("gru", "ce", "never", 1, {1: 0.6, 4: 0.45}, 0.80),
        entry("gru", "ce", "never", 2, {1: 0.7, 4: 0.65}, 0.70),
    ]
    (agg,) = aggregate_runs(runs, PRODUCES)
    assert agg["seeds"] == [0, 1, 2] and agg["n_seeds"] == 3
    # n=1: mean 0.6, s = sqrt((0.01 + 0 + 0.01) / 2) = 0.1, half = t(0.975, 2) * 0.1 / sqrt(3)
    half = T2 * 0.1 / math.sqrt(3)
    assert agg["accuracy_by_length"]["1"] == pytest.approx(0.6, abs=1e-15)
    assert agg["accuracy_ci95_by_length"]["1"] == pytest.approx([0.6 - half, 0.6 + half], abs=1e-12)
    # n=4: mean 0.5, deviations -0.1, -0.05, 0.15 -> s = sqrt(0.035 / 2)
    s4 = math.sqrt((0.01 + 0.0025 + 0.0225) / 2)
    half4 = T2 * s4 / math.sqrt(3)
    assert agg["accuracy_by_length"]["4"] == pytest.approx(0.5, abs=1e-15)
    assert agg["accuracy_ci95_by_length"]["4"] == pytest.approx([0.5 - half4, 0.5 + half4], abs=1e-12)
    assert agg["accuracy_by_seed"] == {"1": [0.5, 0.6, 0.7], "4": [0.40, 0.45, 0.65]}
    # noise entropy 0.9, 0.8, 0.7: same spread as n=1
    entropy = agg["metrics"]["noise_entropy"]["noise_entropy"]
    assert entropy["mean"] == pytest.approx(0.8, abs=1e-15) and entropy["n"] == 3
    assert entropy["ci95"] == pytest.approx([0.8 - half, 0.8 + half], abs=1e-12)
    assert entropy["by_seed"] == [0.90, 0.80, 0.70]
    assert list(agg["metrics"]) == ["noise_entropy"]  # curves are not aggregated
    # flatness per seed: -0.1, -0.15, -0.05 -> mean -0.1, s = 0.05
    flat = agg["flatness"]
    assert (flat["from"], flat["to"]) == ("1", "4")
    assert flat["by_seed"] == pytest.approx([-0.1, -0.15, -0.05], abs=1e-15)
    halff = T2 * 0.05 / math.sqrt(3)
    assert flat["mean"] == pytest.approx(-0.1, abs=1e-15)
    assert flat["ci95"] == pytest.approx([-0.1 - halff, -0.1 + halff], abs=1e-12)


def test_two_seeds_use_t_with_one_degree_of_freedom():
    runs = [entry("gru", "ce_kl", "never", 0, {1: 0.8}), entry("gru", "ce_kl", "never", 7, {1: 0.9})]
    (agg,) = aggregate_runs(runs, PRODUCES)
    # s = sqrt(2 * 0.05**2) = 0.0707..., half = 12.706 * s / sqrt(2) = 12.706 * 0.05
    assert agg["accuracy_ci95_by_length"]["1"] == pytest.approx([0.85 - T1 * 0.05, 0.85 + T1 * 0.05], abs=1e-12)
    assert agg["seeds"] == [0, 7]
    assert agg["flatness"] is None  # one length: nothing to compare
    assert agg["metrics"]["noise_entropy"]["noise_entropy"] == {
        "mean": None,
        "ci95": None,
        "n": 0,
        "by_seed": [None, None],
    }


def test_one_seed_has_no_interval_and_json_says_null():
    (agg,) = aggregate_runs([entry("lstm", "reset", "oracle", 0, {1: 0.7, 2: 0.6}, 0.5)], PRODUCES)
    assert agg["n_seeds"] == 1
    assert agg["accuracy_by_length"] == {"1": 0.7, "2": 0.6}
    assert agg["accuracy_ci95_by_length"] == {"1": None, "2": None}
    assert agg["metrics"]["noise_entropy"]["noise_entropy"] == {"mean": 0.5, "ci95": None, "n": 1, "by_seed": [0.5]}
    assert agg["flatness"]["ci95"] is None
    text = json.dumps(agg)
    assert '"accuracy_ci95_by_length": {"1": null, "2": null}' in text
    assert "NaN" not in text
    # the table shows the mean without a made-up "±"
    table = aggregate_table([agg])
    assert "70.0" in table and "±" not in table and "0.500" in table
    rows = aggregate_csv_rows([agg])
    assert rows[0][AGGREGATE_CSV_HEADER.index("accuracy_by_length.ci95_low")] == ""
    assert rows[0][-3:] == ["0.500000", "", ""]


def test_groups_by_agent_and_policy_in_order_of_first_appearance():
    runs = [
        entry("gru", "reset", "never", 0, {1: 0.1}),
        entry("gru", "reset", "oracle", 0, {1: 0.2}),
        entry("gru", "reset", "never", 1, {1: 0.3}),
        entry("gru", "reset", "oracle", 1, {1: 0.4}),
        entry("gru", "reset", "never", 0, {1: 0.9}, arch_options={"hidden_size": 64}),
    ]
    aggs = aggregate_runs(runs)
    assert [(a["reset"], a["arch_options"]["hidden_size"], a["n_seeds"]) for a in aggs] == [
        ("never", 8, 2),
        ("oracle", 8, 2),
        ("never", 64, 1),
    ]
    assert aggs[0]["accuracy_by_length"]["1"] == pytest.approx(0.2)
    assert aggs[1]["accuracy_by_length"]["1"] == pytest.approx(0.3)


def test_only_lengths_every_seed_has_and_entropy_of_those_that_have_it():
    runs = [entry("gru", "ce", "never", 0, {1: 0.5, 2: 0.4}, 0.6), entry("gru", "ce", "never", 1, {1: 0.7}, None)]
    (agg,) = aggregate_runs(runs, PRODUCES)
    assert list(agg["accuracy_by_length"]) == ["1"]
    assert agg["metrics"]["noise_entropy"]["noise_entropy"] == {
        "mean": 0.6,
        "ci95": None,
        "n": 1,
        "by_seed": [0.6, None],
    }


def test_without_produces_every_number_in_metrics_is_a_scalar():
    runs = [entry("gru", "ce", "never", s, {1: 0.5}, e) for s, e in [(0, 0.2), (1, 0.4)]]
    for run, extra in zip(runs, [3, 5], strict=True):
        run["metrics"]["accuracy"] = {"accuracy": 0.5, "decisions": extra, "flag": True}
    (agg,) = aggregate_runs(runs)
    assert sorted((m, k) for m, keys in agg["metrics"].items() for k in keys) == [
        ("accuracy", "accuracy"),
        ("accuracy", "decisions"),
        ("noise_entropy", "noise_entropy"),
    ]
    assert agg["metrics"]["accuracy"]["decisions"]["mean"] == 4.0


def test_non_finite_accuracy_is_refused():
    with pytest.raises(ValueError, match="finite"):
        aggregate_runs([entry("gru", "ce", "never", 0, {1: float("nan")}), entry("gru", "ce", "never", 1, {1: 0.5})])


def test_table_and_csv_show_mean_and_half_width():
    runs = [entry("gru", "ce", "never", s, {1: a, 2: a - 0.1}, 0.5) for s, a in [(0, 0.8), (1, 0.9)]]
    aggs = aggregate_runs(runs, PRODUCES)
    table = aggregate_table(aggs)
    half = 100 * T1 * 0.05
    assert f"85.0 ±{half:.1f}" in table and "n=2" in table and table.splitlines()[0].startswith("arch")
    assert table.splitlines()[0].split()[-2:] == ["flatness", "noise_entropy"]
    assert "0.500 ±0.000" in table  # both seeds 0.5: a zero-width interval, not "n/a"
    md = aggregate_table(aggs, markdown=True)
    assert md.splitlines()[0].startswith("| arch | loss | reset | seeds |") and f"±{half:.1f}" in md
    assert md.splitlines()[0].endswith("| flatness | noise entropy |")
    header = aggregate_csv_header(aggs)
    assert header == [*AGGREGATE_CSV_HEADER, "noise_entropy.mean", "noise_entropy.ci95_low", "noise_entropy.ci95_high"]
    rows = aggregate_csv_rows(aggs)
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)
    assert rows[0][:6] == ["gru", "ce", "never", "1", "2", "0.850000"]
    assert float(rows[0][6]) == pytest.approx(0.85 - T1 * 0.05, abs=1e-6)
    assert CI_METHOD == "student_t_across_seeds"


def test_figure_draws_mean_band_and_thin_seed_lines():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    runs = [entry("gru", "ce", "never", s, {1: a, 2: a - 0.1}) for s, a in [(0, 0.8), (1, 0.9), (2, 0.7)]]
    runs.append(entry("gru", "reset", "oracle", 0, {1: 0.9, 2: 0.9}))
    fig, ax = plt.subplots()
    draw_accuracy_vs_length(ax, aggregate_runs(runs))
    lines = ax.get_lines()
    # ce: 1 mean + 3 thin seed lines; reset (one seed): 1 mean line, no band, no seed lines
    assert len(lines) == 5
    assert [round(w, 1) for w in sorted(line.get_linewidth() for line in lines)] == [0.6, 0.6, 0.6, 2.0, 2.0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    assert list(lines[0].get_ydata()) == pytest.approx([80.0, 70.0])
    plt.close(fig)
