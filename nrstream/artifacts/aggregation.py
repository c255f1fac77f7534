"""The ``aggregate`` block of ``results.json``: per-seed runs grouped by agent, mean and across-seed interval.

Torch-free; :mod:`nrstream.lab.aggregate` renders it as tables, CSV and figures. What each field
means is documented there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from nrstream.stats import student_t_interval

__all__ = ["CI_METHOD", "aggregate_runs", "group_key", "scalar_keys"]

CI_METHOD = "student_t_across_seeds"


def _options_key(options: Any) -> str:
    return json.dumps(options or {}, sort_keys=True, default=str)


def group_key(run: dict) -> tuple[str, str, str, str, str]:
    """What makes two per-seed entries the same agent: arch, its options, loss, its options, reset."""
    return (
        run["arch"],
        _options_key(run.get("arch_options")),
        run["loss"],
        _options_key(run.get("loss_options")),
        run["reset"],
    )


def _interval(values: Sequence[float]) -> tuple[float, list[float] | None]:
    mean, lo, hi = student_t_interval(values)
    return mean, None if lo is None else [lo, hi]


def scalar_keys(runs: Sequence[dict], produces: dict | None = None) -> list[tuple[str, str]]:
    """``(metric, key)`` of every scalar: as ``produces`` declares, else every number found in ``runs``."""
    if produces is not None:
        return [(m, k) for m, keys in produces.items() for k, kind in keys.items() if kind == "scalar"]
    found: dict[tuple[str, str], None] = {}
    for run in runs:
        for metric, values in (run.get("metrics") or {}).items():
            if isinstance(values, dict):
                for key, value in values.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        found[(metric, key)] = None
    return list(found)


def _metric_value(run: dict, metric: str, key: str) -> float | None:
    values = (run.get("metrics") or {}).get(metric)
    value = values.get(key) if isinstance(values, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _aggregate_group(runs: list[dict], scalars: list[tuple[str, str]]) -> dict:
    first = runs[0]
    lengths = [n for n in first["accuracy_by_length"] if all(n in r["accuracy_by_length"] for r in runs)]
    entry: dict[str, Any] = {
        "arch": first["arch"],
        "loss": first["loss"],
        "reset": first["reset"],
        "arch_options": dict(first.get("arch_options") or {}),
        "loss_options": dict(first.get("loss_options") or {}),
        "seeds": [r.get("seed") for r in runs],
        "n_seeds": len(runs),
        "accuracy_by_length": {},
        "accuracy_ci95_by_length": {},
        "accuracy_by_seed": {},
    }
    for n in lengths:
        values = [float(r["accuracy_by_length"][n]) for r in runs]
        mean, ci = _interval(values)
        entry["accuracy_by_length"][n] = mean
        entry["accuracy_ci95_by_length"][n] = ci
        entry["accuracy_by_seed"][n] = values
    if len(lengths) >= 2:
        short, long = min(lengths, key=int), max(lengths, key=int)
        per_seed = [float(r["accuracy_by_length"][long]) - float(r["accuracy_by_length"][short]) for r in runs]
        mean, ci = _interval(per_seed)
        entry["flatness"] = {"from": short, "to": long, "mean": mean, "ci95": ci, "by_seed": per_seed}
    else:
        entry["flatness"] = None
    metrics: dict[str, dict[str, dict]] = {}
    for metric, key in scalars:
        by_seed = [_metric_value(r, metric, key) for r in runs]
        present = [v for v in by_seed if v is not None]
        mean, ci = _interval(present) if present else (None, None)
        metrics.setdefault(metric, {})[key] = {"mean": mean, "ci95": ci, "n": len(present), "by_seed": by_seed}
    entry["metrics"] = metrics
    return entry


def aggregate_runs(runs: Iterable[dict], produces: dict | None = None) -> list[dict]:
    """The ``aggregate`` block of ``results.json`` from its per-seed ``runs`` entries.

    Entries are grouped by :func:`group_key` in order of first appearance; within a group
    the per-seed entries keep their order (the ``seeds`` list says which is which). Only
    lengths that every seed of a group was scored on are aggregated. ``produces`` is the
    metrics' declaration (``results.json``'s ``produces``); without it every number in a
    run's ``metrics`` counts as a scalar. Raises ``ValueError`` (from
    :func:`~nrstream.stats.student_t_interval`) for a non-finite accuracy.
    """
    runs = list(runs)
    scalars = scalar_keys(runs, produces)
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    return [_aggregate_group(group, scalars) for group in groups.values()]
