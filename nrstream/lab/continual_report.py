"""A prequential study: every agent x seed of a config run prequentially, written to one run folder.

:func:`run_prequential_experiment` is what ``nrstream prequential CONFIG`` calls. The run folder
(``<run.out_dir>/<run.name>/``, written atomically) holds:

* ``prequential.json``: ``config``, ``environment``, ``data``, ``schedule`` (phases, tasks) and
  ``runs``: one :meth:`PrequentialResult.to_json <nrstream.lab.prequential.PrequentialResult.to_json>`
  per (arch, loss, seed), plus ``summary``: per (arch, loss) the mean over seeds of prequential
  accuracy, average accuracy, backward transfer, forgetting, forward transfer and recovery time;
* ``prequential.csv``: the summary as a table;
* ``prequential_accuracy.png``: rolling prequential accuracy against frames, the switches drawn;
* ``accuracy_matrix.png``: ``R[i][j]`` as heat maps, one per agent (first seed).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from nrstream.artifacts.results import json_safe
from nrstream.artifacts.run_folder import MANIFEST, check_run_folder, run_folder_lock, write_manifest
from nrstream.atomic import atomic_folder
from nrstream.lab.config import Config, config_to_dict
from nrstream.lab.engine import resolve_device
from nrstream.lab.loading import load_data
from nrstream.lab.prequential import run_prequential
from nrstream.lab.report import environment

__all__ = ["run_prequential_experiment", "summarise", "SUMMARY_KEYS"]

#: ``(column, where in a run's JSON)``: what the summary averages over seeds
SUMMARY_KEYS = (
    ("prequential_accuracy", ("metrics", "accuracy")),
    ("average_accuracy", ("matrix", "average_accuracy")),
    ("backward_transfer", ("matrix", "backward_transfer")),
    ("forgetting", ("matrix", "forgetting")),
    ("forward_transfer", ("matrix", "forward_transfer")),
    ("mean_recovery_frames", ("metrics", "mean_recovery_frames")),
    ("unrecovered", ("metrics", "unrecovered")),
)


def summarise(runs: list[dict]) -> list[dict]:
    """Per (arch, loss): the mean over seeds of :data:`SUMMARY_KEYS` (``None`` where no seed has a value)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["arch"], run["loss"]), []).append(run)
    out = []
    for (arch, loss), members in groups.items():
        row: dict = {"arch": arch, "loss": loss, "reset": members[0]["reset"], "seeds": len(members)}
        for column, (section, key) in SUMMARY_KEYS:
            values = [m[section].get(key) for m in members]
            values = [v for v in values if v is not None and math.isfinite(v)]
            row[column] = sum(values) / len(values) if values else None
        out.append(row)
    return out


def _csv(summary: list[dict]) -> str:
    buffer = io.StringIO()
    columns = ["arch", "loss", "reset", "seeds", *(c for c, _ in SUMMARY_KEYS)]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(summary)
    return buffer.getvalue()


def _figures(runs: list[dict], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for run in runs:
        curve = run["metrics"]["rolling_accuracy"]
        ax.plot(curve["x"], curve["y"], label=f"{run['arch']}/{run['loss']} seed {run['seed']}", lw=1)
    switches = runs[0]["metrics"]["switches"]["x"] if runs else []
    for x in switches:
        ax.axvline(x, color="k", ls="--", lw=0.8)
    ax.set_xlabel("frames per lane (dashed: phase switches)")
    ax.set_ylabel("prequential accuracy (rolling)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "prequential_accuracy.png", dpi=120)
    plt.close(fig)

    firsts = {}
    for run in runs:
        firsts.setdefault((run["arch"], run["loss"]), run)
    fig, axes = plt.subplots(1, len(firsts), figsize=(3.2 * len(firsts), 3), squeeze=False)
    for ax, ((arch, loss), run) in zip(axes[0], firsts.items(), strict=True):
        matrix = run["matrix"]
        phases = 1 + max(int(k.split("_")[1]) for k in matrix if k.startswith("R_"))
        tasks = 1 + max(int(k.split("_")[2]) for k in matrix if k.startswith("R_"))
        grid = [[matrix[f"R_{i}_{j}"] if matrix[f"R_{i}_{j}"] is not None else math.nan for j in range(tasks)]
                for i in range(phases)]  # fmt: skip
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for i in range(phases):
            for j in range(tasks):
                ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", color="w", fontsize=7)
        ax.set_title(f"{arch}/{loss}", fontsize=8)
        ax.set_xlabel("test task j")
        ax.set_ylabel("after phase i")
    fig.tight_layout()
    fig.savefig(folder / "accuracy_matrix.png", dpi=120)
    plt.close(fig)
    return ["prequential_accuracy.png", "accuracy_matrix.png"]


def _ours(folder: Path) -> bool:
    """``folder`` is a prequential run folder nrstream wrote (its manifest lists ``prequential.json``)."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(files, dict) and "prequential.json" in files


def _check_folder(folder: Path, force: bool) -> None:
    """The output rule (:mod:`nrstream.artifacts.run_folder`): replace only what nrstream wrote here."""
    check_run_folder(folder, force=force or _ours(folder))


def run_prequential_experiment(
    config: Config,
    *,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = None,
    out: str | Path | None = None,
    force: bool = False,
) -> dict:
    """Every agent x seed of ``config`` run prequentially; the run folder written; its ``prequential.json`` returned.

    ``out`` replaces ``<run.out_dir>/<run.name>``. An existing folder is replaced only if nrstream wrote it (a
    prequential run folder, or with ``force`` any folder holding only nrstream's files); checked before any work.
    """
    folder = Path(out) if out is not None else config.run_dir
    _check_folder(folder, force)
    device = resolve_device(device or config.run.device)
    loaded = load_data(config)
    runs = []
    for seed in config.run.seeds:
        for agent in config.agents:
            result = run_prequential(config, agent, loaded, device, seed=seed, log=log)
            runs.append(result.to_json())
            if log is not None:
                m, r = result.metrics, result.matrix
                log(f"nrstream: {agent.label} seed {seed}: prequential accuracy {m['accuracy']}, "
                    f"average accuracy {r['average_accuracy']}, forgetting {r['forgetting']}")  # fmt: skip
    timeline = config.data.stream.timeline
    payload = {
        "config": config_to_dict(config),
        "environment": environment(device, config.run.seed),
        "data": loaded.describe(),
        "schedule": None
        if timeline is None
        else {"phases": timeline.to_config(), "task_of": timeline.task_of, "starts": timeline.starts},
        "runs": runs,
        "summary": summarise(runs),
    }
    payload = json_safe(payload)
    with run_folder_lock(folder):  # a second writer exits naming this one's pid
        _check_folder(folder, force)  # again: it may have changed while the agents ran
        with atomic_folder(folder) as tmp:
            (tmp / "prequential.json").write_text(json.dumps(payload, indent=1, default=str, allow_nan=False))
            (tmp / "prequential.csv").write_text(_csv(payload["summary"]))
            write_manifest(tmp, ["prequential.json", "prequential.csv", *_figures(runs, tmp)])
    return payload
