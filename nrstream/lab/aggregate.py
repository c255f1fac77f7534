"""Across-seed aggregates: what a result is worth when the network is trained again.

A run trains every (architecture, loss) once per seed of ``run.seeds``; ``results.json``
keeps each per-seed entry in ``runs`` and this module adds the ``aggregate`` block: one
entry per (arch, arch options, loss, loss options, reset policy) with

* ``accuracy_by_length`` — the mean over seeds of each per-seed accuracy (keys: stream
  lengths as strings, values in [0, 1]);
* ``accuracy_ci95_by_length`` — the across-seed 95 % Student-t interval of that mean,
  ``m ± t_{0.975, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation of the
  ``n`` per-seed accuracies (:func:`nrstream.stats.student_t_interval`); ``null`` with one
  seed — one training run says nothing about the spread, so no interval is invented;
* ``accuracy_by_seed`` — the per-seed accuracies behind each mean, in ``seeds`` order;
* ``metrics`` — the same for every scalar a metric declares (``produces``:
  ``{metric: {key: "scalar"}}``, e.g. the noise entropy of the endless run):
  ``{metric: {key: {"mean", "ci95", "n", "by_seed"}}}`` over the seeds whose value is
  finite (``mean`` ``null`` when none is);
* ``flatness`` — ``acc(longest) - acc(shortest)`` computed per seed, then its mean and
  interval: how much accuracy a never-reset agent loses over long streams, with the
  seed-to-seed spread the comparison needs;
* ``seeds`` and ``n_seeds`` — the seeds that produced an entry (a failed job has none).

The per-seed Wilson intervals in ``runs`` stay: they measure how well the test split pins
down *one* trained network; the interval here measures how much training again moves it.

The module knows no specific metric: it reads what metrics declare. Torch-free;
``matplotlib`` is imported only by :func:`draw_accuracy_vs_length`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nrstream.artifacts.aggregation import CI_METHOD, aggregate_runs, group_key, scalar_keys

__all__ = [
    "CI_METHOD",
    "aggregate_runs",
    "group_key",
    "scalar_keys",
    "headline_metrics",
    "aggregate_csv_rows",
    "aggregate_csv_header",
    "AGGREGATE_CSV_HEADER",
    "aggregate_table",
    "draw_accuracy_vs_length",
    "several_seeds",
    "aggregate_csv",
    "aggregate_console",
    "save_accuracy_figure",
]

#: how the ``*_ci95*`` fields of the aggregate block are computed (stored in results.json)
def headline_metrics(aggregate: Sequence[dict]) -> list[str]:
    """Metrics with a scalar under their own name (the tables show these, as the per-seed table does)."""
    names: dict[str, None] = {}
    for agg in aggregate:
        for metric, keys in agg.get("metrics", {}).items():
            if metric in keys:
                names[metric] = None
    return list(names)


# ---------------------------------------------------------------------------- rendering helpers for report.py

#: the fixed columns of :func:`aggregate_csv_rows` (``ci95_*`` empty with one seed): a results.csv
#: quantity ``X`` across seeds is ``X.mean``, ``X.ci95_low``, ``X.ci95_high``; each headline metric adds
#: its three the same way (never a fixed name). Before issue 26: accuracy_mean, ci95_low, ci95_high
#: (nrstream.artifacts.results.read_csv reads both).
AGGREGATE_CSV_HEADER = [
    "arch",
    "loss",
    "reset",
    "length",
    "n_seeds",
    "accuracy_by_length.mean",
    "accuracy_by_length.ci95_low",
    "accuracy_by_length.ci95_high",
]


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def aggregate_csv_header(aggregate: Sequence[dict]) -> list[str]:
    """:data:`AGGREGATE_CSV_HEADER` plus three columns per headline metric."""
    extra = [f"{m}.{part}" for m in headline_metrics(aggregate) for part in ("mean", "ci95_low", "ci95_high")]
    return [*AGGREGATE_CSV_HEADER, *extra]


def aggregate_csv_rows(aggregate: Sequence[dict]) -> list[list[str]]:
    """One CSV row per (aggregate entry, length), columns :func:`aggregate_csv_header`."""
    headline = headline_metrics(aggregate)
    rows = []
    for agg in aggregate:
        extra = []
        for metric in headline:
            value = agg["metrics"].get(metric, {}).get(metric) or {}
            ci = value.get("ci95") or [None, None]
            extra += [_f(value.get("mean")), _f(ci[0]), _f(ci[1])]
        for n, mean in agg["accuracy_by_length"].items():
            ci = agg["accuracy_ci95_by_length"][n] or [None, None]
            rows.append(
                [agg["arch"], agg["loss"], agg["reset"], n, str(agg["n_seeds"]), _f(mean), _f(ci[0]), _f(ci[1]), *extra]
            )
    return rows


def aggregate_csv(aggregate: Sequence[dict]) -> str:
    """``aggregate.csv`` of a run folder: :func:`aggregate_csv_header` then :func:`aggregate_csv_rows`."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(aggregate_csv_header(aggregate))
    writer.writerows(aggregate_csv_rows(aggregate))
    return out.getvalue()


def _pct(mean: float, ci: list[float] | None) -> str:
    if ci is None:
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ±{100 * (ci[1] - ci[0]) / 2:.1f}"


def _headline_cell(agg: dict, metric: str) -> str:
    value = agg.get("metrics", {}).get(metric, {}).get(metric) or {}
    mean, ci = value.get("mean"), value.get("ci95")
    if mean is None:
        return "-"
    return f"{mean:.3f}" + ("" if ci is None else f" ±{(ci[1] - ci[0]) / 2:.3f}")


def aggregate_table(aggregate: Sequence[dict], markdown: bool = False) -> str:
    """Mean accuracy (%) per length ± the across-seed 95 % half-width, flatness, headline metrics.

    One row per aggregate entry; "±" is omitted with one seed (no interval exists).
    ``flatness`` is acc(longest) - acc(shortest) in points; each headline metric (a scalar
    under the metric's own name, e.g. ``noise_entropy``) gets a column. With
    ``markdown=True`` a Markdown table (README), else aligned plain text (console).
    """
    if not aggregate:
        return "(no runs)"
    lengths = list(aggregate[0]["accuracy_by_length"])
    headline = headline_metrics(aggregate)
    head = ["arch", "loss", "reset", "seeds", *[f"n={n}" for n in lengths], "flatness", *headline]
    rows = []
    for agg in aggregate:
        flat = agg.get("flatness")
        rows.append(
            [
                agg["arch"],
                agg["loss"],
                agg["reset"],
                str(agg["n_seeds"]),
                *[
                    _pct(agg["accuracy_by_length"][n], agg["accuracy_ci95_by_length"][n])
                    if n in agg["accuracy_by_length"]
                    else "-"
                    for n in lengths
                ],
                "-" if flat is None else _pct(flat["mean"], flat["ci95"]),
                *[_headline_cell(agg, m) for m in headline],
            ]
        )
    if markdown:
        head = [h.replace("_", " ") for h in head]
        lines = ["| " + " | ".join(head) + " |", "|---|---|---|---:|" + "---:|" * (len(head) - 4)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [head, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def draw_accuracy_vs_length(ax: Any, aggregate: Sequence[dict]) -> None:
    """Draw accuracy (%) vs stream length on a matplotlib ``ax``: per agent the across-seed mean
    (thick line), its shaded 95 % Student-t band (when there are >= 2 seeds) and each seed's
    own curve (thin, faint, same colour). Oracle-reset agents are dashed. The caller sets
    scales, labels and saves the figure."""
    for agg in aggregate:
        lengths = [int(n) for n in agg["accuracy_by_length"]]
        mean = [100 * v for v in agg["accuracy_by_length"].values()]
        style = "--" if agg["reset"] == "oracle" else "-"
        label = f"{agg['arch']}/{agg['loss']}/{agg['reset']}"
        if agg["n_seeds"] > 1:
            label += f" (mean of {agg['n_seeds']} seeds)"
        (line,) = ax.plot(lengths, mean, linestyle=style, marker="o", markersize=3, linewidth=2, label=label)
        colour = line.get_color()
        cis = list(agg["accuracy_ci95_by_length"].values())
        if agg["n_seeds"] > 1 and all(ci is not None for ci in cis):
            ax.fill_between(
                lengths,
                [100 * ci[0] for ci in cis],
                [100 * ci[1] for ci in cis],
                color=colour,
                alpha=0.18,
                linewidth=0,
            )
            for i in range(agg["n_seeds"]):
                seed_curve = [100 * agg["accuracy_by_seed"][n][i] for n in agg["accuracy_by_length"]]
                ax.plot(lengths, seed_curve, linestyle=style, color=colour, linewidth=0.6, alpha=0.45)


# ---------------------------------------------------------------------------- what report.py calls


def _entries(results: dict) -> list[dict]:
    block = results.get("aggregate") or {}
    return list(block.get("entries", [])) if isinstance(block, dict) else []


def several_seeds(results: dict) -> bool:
    """Whether a ``results.json`` dict has an agent trained with more than one seed."""
    return any(entry["n_seeds"] > 1 for entry in _entries(results))


def aggregate_console(results: dict) -> str:
    """The across-seed table with its title, for the console; ``""`` when every agent has one seed."""
    if not several_seeds(results):
        return ""
    return (
        "across seeds: mean accuracy (%) ± 95 % Student-t half-width; flatness = acc(longest) - acc(shortest)\n"
        + aggregate_table(_entries(results))
    )


def save_accuracy_figure(plt: Any, results: dict, path: Any) -> None:
    """``accuracy_vs_length.png`` for several seeds: :func:`draw_accuracy_vs_length`, log2 length axis."""
    entries = _entries(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_accuracy_vs_length(ax, entries)
    ax.set_xscale("log", base=2)
    lengths = sorted({int(n) for entry in entries for n in entry["accuracy_by_length"]})
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel("stream length n (samples per lane, never reset unless oracle)")
    ax.set_ylabel("accuracy at decision frames (%)")
    ax.set_title("Accuracy vs stream length\n(mean over seeds, 95% Student-t band; thin lines: each seed)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
