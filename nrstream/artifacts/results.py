"""``results.json`` as types: :class:`Results` (a whole experiment) and :class:`RunResult` (one entry of ``runs``).

One home for the results format: its version (:data:`RESULTS_FORMAT`), strict-JSON safety
(:func:`json_safe`: non-finite floats become ``null``), reading formats 1 and 2 (:meth:`Results.load`)
and writing (:meth:`Results.to_json`, with the across-seed ``aggregate`` block of
:mod:`nrstream.artifacts.aggregation`). The experiment builds a :class:`Results`; the report, the
aggregate tables and ``listen`` read one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrstream.artifacts.aggregation import CI_METHOD, aggregate_runs

__all__ = ["read_csv", "FORMER_CSV_COLUMNS", "RESULTS_FORMAT", "json_safe", "Results", "RunResult"]

#: the version of ``results.json`` this nrstream writes (1: one seed, no ``produces``; 2: seeds, ``aggregate``)
RESULTS_FORMAT = 2


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON data: non-finite floats become ``None``, paths and tensors plain values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return json_safe(_json_default(value))


@dataclass
class RunResult:
    """One ``runs`` entry of ``results.json``: one job evaluated under one reset policy."""

    arch: str
    loss: str
    seed: int
    reset: str
    protocol: str
    arch_options: dict
    loss_options: dict
    accuracy_by_length: dict[str, float]
    accuracy_ci95_by_length: dict[str, list[float]]
    decisions_by_length: dict[str, int]
    lanes_by_length: dict[str, int]
    metrics: dict[str, dict]
    endless: dict
    training: dict
    timings: dict

    def to_json(self) -> dict:
        return json_safe({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_json(cls, entry: dict, seed: int = 0) -> RunResult:
        """A ``runs`` entry of format 2, or of format 1 (``seed`` fills the missing field)."""
        values = {f.name: entry.get(f.name) for f in dataclasses.fields(cls)}
        if values["seed"] is None:
            values["seed"] = seed
        return cls(**values)


@dataclass
class Results:
    """A whole experiment, as ``results.json`` holds it (the format: :mod:`nrstream.lab.report`)."""

    config: dict
    environment: dict
    data: dict
    runs: list[RunResult]
    produces: dict[str, dict[str, str]] = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    format: int = RESULTS_FORMAT
    folder: Path | None = None
    # issue 10 (H): jobs that raised ({arch, loss, seed, arch_options, loss_options, error, kind})
    failed: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        runs = [r.to_json() for r in self.runs]
        return json_safe(
            {
                "format": self.format,
                "config": self.config,
                "environment": self.environment,
                "data": self.data,
                "produces": self.produces,
                "runs": runs,
                "aggregate": {"ci95": CI_METHOD, "entries": aggregate_runs(runs, self.produces)},
                "failed": self.failed,
                "timings": self.timings,
            }
        )

    @classmethod
    def from_json(cls, raw: dict) -> Results:
        """Read a parsed ``results.json`` of format 1 or 2 (format 1: no seeds, no ``produces``)."""
        seed = int(raw.get("environment", {}).get("seed", 0) or 0)
        runs = [RunResult.from_json(entry, seed) for entry in raw.get("runs", [])]
        fmt = int(raw.get("format", 1))
        results = cls(
            raw["config"], raw["environment"], raw["data"], runs, raw.get("produces", {}), raw["timings"], fmt
        )
        results.failed = list(raw.get("failed", []))
        return results

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """Read ``results.json`` (a run folder or the file itself)."""
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        results = cls.from_json(json.loads(file.read_text()))
        results.folder = file.parent
        return results


#: results.csv and aggregate.csv column names before issue 26 -> now (one name per quantity)
FORMER_CSV_COLUMNS = {
    "results.csv": {
        "accuracy": "accuracy_by_length",
        "ci95_low": "accuracy_by_length.ci95_low",
        "ci95_high": "accuracy_by_length.ci95_high",
        "decisions": "decisions_by_length",
    },
    "aggregate.csv": {
        "accuracy_mean": "accuracy_by_length.mean",
        "ci95_low": "accuracy_by_length.ci95_low",
        "ci95_high": "accuracy_by_length.ci95_high",
    },
}


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a run folder's ``results.csv`` or ``aggregate.csv``, old or new, in today's column names.

    Files written before issue 26 are recognised by their old fixed columns (``decisions`` in
    results.csv, ``accuracy_mean`` in aggregate.csv) and renamed by :data:`FORMER_CSV_COLUMNS`; a
    metric column that the old collision rule had prefixed (``accuracy.accuracy``) gets its plain
    name (``accuracy``). Values stay strings, as ``csv.DictReader`` gives them.
    """
    import csv

    path = Path(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
        header = list(rows[0]) if rows else []
    old = "decisions" in header or "accuracy_mean" in header
    if not old:
        return rows
    renames = dict(FORMER_CSV_COLUMNS["results.csv" if "decisions" in header else "aggregate.csv"])
    for column in header:
        metric, _, key = column.partition(".")
        if key == metric and metric in renames:  # accuracy.accuracy: the accuracy metric's own scalar
            renames[column] = metric
    return [{renames.get(k, k): v for k, v in row.items()} for row in rows]
