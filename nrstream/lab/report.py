"""The run folder: ``results.json``, ``results.csv``, ``config.yaml``, figures, console table.

The whole folder is written into a hidden temporary folder beside it and renamed into
place at the end, so an error (or a kill) never leaves a half-written run folder.

The report knows no specific metric. Each metric declares what its ``compute()``
returns (``produces``: key -> ``"scalar"`` or ``"curve"``, recorded in ``results.json``)
and is rendered from that alone: every scalar becomes a ``results.csv`` column (and a
console column when the key is the metric's own name), every curve one figure,
``<metric>.png`` when the key is the metric's name, else ``<metric>_<key>.png``.

``results.json`` (strict JSON: a non-finite number is written as ``null``)::

    {
      "format": 2,
      "config": {...},                    # the resolved config (also config.yaml)
      "environment": {"python", "torch", "nrstream", "numpy", "platform", "device",
                      "device_name", "cpu_count", "torch_threads", "git_commit", "seed"},
      "data": {"source", "options", "fallback_used", "sizes", "num_classes", ..., "test_stream"},
      "produces": {metric: {key: "scalar" | "curve"}},   # what each metric's compute() returns
      "runs": [                           # one per (arch, loss, seed, reset policy)
        {"arch", "loss", "seed", "reset": "never" | "oracle", "protocol", "arch_options", "loss_options",
         "accuracy_by_length": {"1": 0.87, ...},          # keys: lengths n as strings
         "accuracy_ci95_by_length": {"1": [lo, hi], ...}, # Wilson score interval
         "decisions_by_length": {"1": 10000, ...},
         "lanes_by_length": {"1": 10000, ...},
         "metrics": {metric: {key: scalar (float | null) or curve {"x", "y", "x_label", "y_label"}}},
         "endless": {"lanes", "frames_per_lane"},
         "training": {"steps", "history", "reused", "checkpoint"},
         "timings": {"train_seconds", "evaluate_seconds", "length_seconds": {...}, "endless_seconds"}}
      ],
      "aggregate": {"ci95": "student_t_across_seeds",   # across seeds (nrstream.lab.aggregate)
                    "entries": [{"arch", "loss", "reset", "arch_options", "loss_options", "seeds", "n_seeds",
                                 "accuracy_by_length", "accuracy_ci95_by_length": {"1": [lo, hi] | null},
                                 "accuracy_by_seed", "flatness", "metrics": {metric: {key: {mean, ci95, n}}}}]},
      "failed": [{"arch", "loss", "seed", "arch_options", "loss_options", "error", "kind"}],  # jobs that raised
      "timings": {"total_seconds"}
    }

``aggregate.csv`` holds the aggregate (one row per agent, reset policy and length); with
several seeds the console table and ``accuracy_vs_length.png`` show it too.

Format 1 (before the metric-generic report) had no ``produces`` and no per-run ``seed``,
its metrics returned their own layouts, and each run repeated three of them at the top
level (``noise_entropy``, ``rolling_accuracy``, ``state_norm``).
:meth:`nrstream.artifacts.results.Results.load` reads both formats.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import yaml

import nrstream
from nrstream.artifacts.results import RESULTS_FORMAT, json_safe
from nrstream.artifacts.run_folder import write_manifest
from nrstream.atomic import atomic_folder
from nrstream.lab.aggregate import aggregate_console, aggregate_csv, save_accuracy_figure, several_seeds

__all__ = [
    "environment",
    "json_safe",
    "write_run_folder",
    "console_table",
    "markdown_table",
    "scalar_columns",
    "headline_scalars",
    "RESULTS_FORMAT",
]


#: the fixed columns of results.csv, named as in results.json (one row per length n: the value at n;
#: the interval is Wilson's, per seed); a metric column never takes one of these names. Before
#: issue 26 they were accuracy, ci95_low, ci95_high, decisions (and the accuracy metric's column
#: was accuracy.accuracy): nrstream.artifacts.results.read_csv reads both.
CSV_COLUMNS = (
    "arch",
    "loss",
    "seed",
    "reset",
    "length",
    "accuracy_by_length",
    "accuracy_by_length.ci95_low",
    "accuracy_by_length.ci95_high",
    "decisions_by_length",
)


def _git_commit() -> str | None:
    root = Path(nrstream.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{out}+dirty" if dirty else out or None


def environment(device, seed: int) -> dict:
    import numpy
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nrstream": nrstream.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
        "seed": seed,
    }


def _kinds(results: dict, kind: str) -> list[tuple[str, str]]:
    """``(metric, key)`` pairs of one kind, in metric then declaration order."""
    return [(m, k) for m, keys in results.get("produces", {}).items() for k, v in keys.items() if v == kind]


def _column(metric: str, key: str) -> str:
    name = metric if key == metric else f"{metric}.{key}"
    return f"{metric}.{key}" if name in CSV_COLUMNS else name


def scalar_columns(results: dict) -> dict[str, tuple[str, str]]:
    """``{results.csv column: (metric, key)}`` for every scalar a metric declares."""
    return {_column(m, k): (m, k) for m, k in _kinds(results, "scalar")}


def _scalar(run: dict, metric: str, key: str):
    value = (run.get("metrics") or {}).get(metric)
    return value.get(key) if isinstance(value, dict) else None


def _fmt_scalar(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.6f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def _csv(results: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = scalar_columns(results)
    writer.writerow([*CSV_COLUMNS, *columns])
    for run in results["runs"]:
        extra = [_fmt_scalar(_scalar(run, m, k)) for m, k in columns.values()]
        for n, acc in run["accuracy_by_length"].items():
            lo, hi = run["accuracy_ci95_by_length"][n]
            fixed = [run["arch"], run["loss"], run.get("seed", ""), run["reset"], n]
            writer.writerow([*fixed, f"{acc:.6f}", f"{lo:.6f}", f"{hi:.6f}", run["decisions_by_length"][n], *extra])
    return out.getvalue()


def _label(run: dict) -> str:
    return f"{run['arch']}/{run['loss']}/{run['reset']}"


def _figure_name(metric: str, key: str) -> str:
    return f"{metric}.png" if key == metric else f"{metric}_{key}.png"


def _accuracy_figure(plt, runs: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        lengths = [int(n) for n in run["accuracy_by_length"]]
        acc = [100 * a for a in run["accuracy_by_length"].values()]
        ci = list(run["accuracy_ci95_by_length"].values())
        err = [  # matplotlib refuses negative bars; a rounding error must not fail a run
            [max(0.0, a - 100 * c[0]) for a, c in zip(acc, ci, strict=True)],
            [max(0.0, 100 * c[1] - a) for a, c in zip(acc, ci, strict=True)],
        ]
        style = "--" if run["reset"] == "oracle" else "-"
        ax.errorbar(lengths, acc, yerr=err, linestyle=style, marker="o", markersize=3, capsize=2, label=_label(run))
    ax.set_xscale("log", base=2)
    all_lengths = sorted({int(n) for run in runs for n in run["accuracy_by_length"]})
    ax.set_xticks(all_lengths, [str(n) for n in all_lengths])
    ax.minorticks_off()
    ax.set_xlabel("stream length n (samples per lane, never reset unless oracle)")
    ax.set_ylabel("accuracy at decision frames (%)")
    ax.set_title("Accuracy vs stream length (95% Wilson CI)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curve_figure(plt, runs: list[dict], metric: str, key: str, path: Path) -> bool:
    """One line per run of curve ``metric.key``; ``False`` (no file) when no run has points."""
    curves = [(run, _scalar(run, metric, key)) for run in runs]
    curves = [(run, c) for run, c in curves if isinstance(c, dict) and c.get("x")]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run, c in curves:
        y = [math.nan if v is None else v for v in c["y"]]
        ax.plot(c["x"], y, linestyle="--" if run["reset"] == "oracle" else "-", label=_label(run))
    ax.set_xlabel(curves[0][1].get("x_label", "x"))
    ax.set_ylabel(curves[0][1].get("y_label", key))
    ax.set_title(f"{metric}: {key}, endless run" if key != metric else f"{metric}, endless run")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _figures(results: dict, folder: Path) -> list[str]:
    """``accuracy_vs_length.png``, then one figure per declared curve that has points."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    runs = results["runs"]
    if several_seeds(results):  # issue 10 (H): mean over seeds, across-seed band, thin per-seed lines
        save_accuracy_figure(plt, results, folder / "accuracy_vs_length.png")
    else:
        _accuracy_figure(plt, runs, folder / "accuracy_vs_length.png")
    written = ["accuracy_vs_length.png"]
    for metric, key in _kinds(results, "curve"):
        name = _figure_name(metric, key)
        if _curve_figure(plt, runs, metric, key, folder / name):
            written.append(name)
    return written


def write_run_folder(folder: Path, results: dict) -> list[str]:
    """Write every file of a run folder atomically; returns the file names."""
    results = json_safe(results)
    with atomic_folder(folder) as tmp:
        (tmp / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        (tmp / "results.csv").write_text(_csv(results))
        (tmp / "config.yaml").write_text(yaml.safe_dump(results["config"], sort_keys=False))
        extra = []
        if "aggregate" in results:  # issue 10 (H): the across-seed aggregate, one row per agent and length
            (tmp / "aggregate.csv").write_text(aggregate_csv(results["aggregate"]["entries"]))
            extra.append("aggregate.csv")
        names = ["results.json", "results.csv", "config.yaml", *extra, *_figures(results, tmp)]
        write_manifest(tmp, names)  # what nrstream wrote here: the only files a later run may replace
        return names


def _fmt_pct(value) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:5.1f}"


def headline_scalars(results: dict) -> list[str]:
    """Metrics whose own name is one of their scalar keys (``noise_entropy``): the tables show these."""
    return [m for m, k in _kinds(results, "scalar") if k == m]


def _row_keys(runs: list[dict]) -> list[str]:
    several_seeds = len({run.get("seed") for run in runs}) > 1
    return ["arch", "loss", *(["seed"] if several_seeds else []), "reset"]


def _fmt_headline(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def console_table(results: dict) -> str:
    """Accuracy (%) by stream length, one row per run, plus each metric's headline scalar."""
    runs = results["runs"]
    if not runs:
        return "(no runs)"
    lengths = list(runs[0]["accuracy_by_length"])
    keys, headline = _row_keys(runs), headline_scalars(results)
    head = [*keys, *[f"n={n}" for n in lengths], *headline]
    rows = []
    for run in runs:
        rows.append(
            [
                *[str(run.get(k)) for k in keys],
                *[_fmt_pct(run["accuracy_by_length"].get(n)) for n in lengths],
                *[_fmt_headline(_scalar(run, m, m)) for m in headline],
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            str(c).rjust(w) if i >= len(keys) else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    across = aggregate_console(results)  # issue 10 (H): "" with one seed per agent
    return "\n".join(lines) + (f"\n\n{across}" if across else "")


def markdown_table(results: dict) -> str:
    """The same table in Markdown, each accuracy with its 95% CI half-width (points)."""
    runs = results["runs"]
    lengths = list(runs[0]["accuracy_by_length"]) if runs else []
    keys, headline = _row_keys(runs), headline_scalars(results)
    lines = [
        "| " + " | ".join([*keys, *(f"n={n}" for n in lengths), *(m.replace("_", " ") for m in headline)]) + " |",
        "|" + "---|" * len(keys) + "---:|" * (len(lengths) + len(headline)),
    ]
    for run in runs:
        cells = [str(run.get(k)) for k in keys]
        for n in lengths:
            acc = run["accuracy_by_length"][n]
            lo, hi = run["accuracy_ci95_by_length"][n]
            cells.append(f"{100 * acc:.1f} ±{100 * (hi - lo) / 2:.1f}")
        cells += [_fmt_headline(_scalar(run, m, m)) for m in headline]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - `python -m nrstream.lab.report results.json` prints the Markdown table
    print(markdown_table(json.loads(Path(sys.argv[1]).read_text())))
