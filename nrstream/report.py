"""The run folder: ``results.json``, ``results.csv``, ``config.yaml``, figures, console table.

The whole folder is written into a hidden temporary folder beside it and renamed into
place at the end, so an error (or a kill) never leaves a half-written run folder.

``results.json``::

    {
      "format": 1,
      "config": {...},                    # the resolved config (also config.yaml)
      "environment": {"python", "torch", "nrstream", "numpy", "platform", "device",
                      "device_name", "cpu_count", "torch_threads", "git_commit", "seed"},
      "data": {"source", "options", "fallback_used", "sizes", "num_classes", ...},
      "runs": [                           # one per (arch, loss, reset policy)
        {"arch", "loss", "reset": "never" | "oracle", "protocol", "arch_options", "loss_options",
         "accuracy_by_length": {"1": 0.87, ...},          # keys: lengths n as strings
         "accuracy_ci95_by_length": {"1": [lo, hi], ...}, # Wilson score interval
         "decisions_by_length": {"1": 10000, ...},
         "lanes_by_length": {"1": 10000, ...},
         "noise_entropy": float | null,   # endless run, normalised (1 = uniform)
         "rolling_accuracy": {"x", "y", "window", ...} | null,
         "state_norm": {"x", "y", "mean", ...} | null,
         "metrics": {name: compute() of every configured metric on the endless run},
         "endless": {"lanes", "frames_per_lane"},
         "training": {"steps", "history", "reused", "checkpoint"},
         "timings": {"train_seconds", "evaluate_seconds", "length_seconds": {...}, "endless_seconds"}}
      ],
      "timings": {"total_seconds"}
    }
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
from nrstream.atomic import atomic_folder

__all__ = ["environment", "run_entry", "write_run_folder", "console_table", "markdown_table", "RESULTS_FORMAT"]

RESULTS_FORMAT = 1


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


def _metric_value(metrics: dict, name: str, key: str | None = None):
    value = metrics.get(name)
    if value is None or key is None:
        return value
    return value.get(key) if isinstance(value, dict) else value


def run_entry(agent, reset: str, trained, evaluated: dict, evaluate_seconds: float) -> dict:
    """One ``runs`` entry of ``results.json`` from a trained agent and its evaluation."""
    by_length = evaluated["by_length"]
    metrics = evaluated["metrics"]
    return {
        "arch": agent.arch,
        "loss": agent.loss,
        "reset": reset,
        "protocol": trained.protocol,
        "arch_options": dict(agent.arch_options),
        "loss_options": dict(agent.loss_options),
        "accuracy_by_length": {n: r.accuracy for n, r in by_length.items()},
        "accuracy_ci95_by_length": {n: list(r.ci95) for n, r in by_length.items()},
        "decisions_by_length": {n: r.total for n, r in by_length.items()},
        "lanes_by_length": {n: r.total // int(n) for n, r in by_length.items()},
        "noise_entropy": _metric_value(metrics, "noise_entropy", "noise_entropy"),
        "rolling_accuracy": _metric_value(metrics, "rolling_accuracy"),
        "state_norm": _metric_value(metrics, "state_norm"),
        "metrics": metrics,
        "endless": {k: v for k, v in evaluated["endless"].items() if k != "seconds"},
        "training": {
            "steps": trained.steps,
            "history": trained.history,
            "reused": trained.reused,
            "checkpoint": str(trained.folder),
        },
        "timings": {
            "train_seconds": trained.seconds,
            "evaluate_seconds": evaluate_seconds,
            "length_seconds": {n: r.seconds for n, r in by_length.items()},
            "endless_seconds": evaluated["endless"]["seconds"],
        },
    }


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _csv(results: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["arch", "loss", "reset", "length", "accuracy", "ci95_low", "ci95_high", "decisions", "noise_entropy"]
    )
    for run in results["runs"]:
        for n, acc in run["accuracy_by_length"].items():
            lo, hi = run["accuracy_ci95_by_length"][n]
            entropy = run["noise_entropy"]
            writer.writerow(
                [
                    run["arch"],
                    run["loss"],
                    run["reset"],
                    n,
                    f"{acc:.6f}",
                    f"{lo:.6f}",
                    f"{hi:.6f}",
                    run["decisions_by_length"][n],
                    "" if entropy is None else f"{entropy:.6f}",
                ]
            )
    return out.getvalue()


def _label(run: dict) -> str:
    return f"{run['arch']}/{run['loss']}/{run['reset']}"


def _figures(results: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    written = []
    runs = results["runs"]

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
    fig.savefig(folder / "accuracy_vs_length.png", dpi=120)
    plt.close(fig)
    written.append("accuracy_vs_length.png")

    for key, name, xlabel, ylabel, title in [
        (
            "rolling_accuracy",
            "rolling_accuracy.png",
            "decisions",
            "rolling accuracy (%)",
            "Rolling accuracy, endless run",
        ),
        ("state_norm", "state_norm.png", "frame", "mean hidden-state L2 norm", "Hidden-state norm, endless run"),
    ]:
        curves = [(run, run.get(key)) for run in runs if isinstance(run.get(key), dict) and run[key].get("x")]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run, curve in curves:
            y = [100 * v if key == "rolling_accuracy" and v is not None else v for v in curve["y"]]
            ax.plot(curve["x"], y, linestyle="--" if run["reset"] == "oracle" else "-", label=_label(run))
        if key == "rolling_accuracy" and curves:
            title += f" (window {curves[0][1].get('window')})"
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)
        written.append(name)
    return written


def write_run_folder(folder: Path, results: dict) -> list[str]:
    """Write every file of a run folder atomically; returns the file names."""
    with atomic_folder(folder) as tmp:
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
        (tmp / "results.csv").write_text(_csv(results))
        (tmp / "config.yaml").write_text(yaml.safe_dump(results["config"], sort_keys=False))
        return ["results.json", "results.csv", "config.yaml", *_figures(results, tmp)]


def _fmt_pct(value) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:5.1f}"


def console_table(results: dict) -> str:
    """Accuracy (%) by stream length, one row per (arch, loss, reset), plus noise entropy."""
    runs = results["runs"]
    if not runs:
        return "(no runs)"
    lengths = list(runs[0]["accuracy_by_length"])
    head = ["arch", "loss", "reset", *[f"n={n}" for n in lengths], "H_noise"]
    rows = []
    for run in runs:
        entropy = run["noise_entropy"]
        rows.append(
            [
                run["arch"],
                run["loss"],
                run["reset"],
                *[_fmt_pct(run["accuracy_by_length"].get(n)) for n in lengths],
                "-" if entropy is None else f"{entropy:.3f}",
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            str(c).rjust(w) if i >= 3 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(results: dict) -> str:
    """The same table in Markdown, each accuracy with its 95% CI half-width (points)."""
    runs = results["runs"]
    lengths = list(runs[0]["accuracy_by_length"]) if runs else []
    lines = [
        "| arch | loss | reset | " + " | ".join(f"n={n}" for n in lengths) + " | noise entropy |",
        "|---|---|---|" + "---:|" * len(lengths) + "---:|",
    ]
    for run in runs:
        cells = []
        for n in lengths:
            acc = run["accuracy_by_length"][n]
            lo, hi = run["accuracy_ci95_by_length"][n]
            cells.append(f"{100 * acc:.1f} ±{100 * (hi - lo) / 2:.1f}")
        entropy = run["noise_entropy"]
        ent = "-" if entropy is None else f"{entropy:.3f}"
        lines.append(f"| {run['arch']} | {run['loss']} | {run['reset']} | " + " | ".join(cells) + f" | {ent} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - `python -m nrstream.report results.json` prints the Markdown table
    print(markdown_table(json.loads(Path(sys.argv[1]).read_text())))
