"""The result pages are generated from the committed run files, and stay so (issue 25)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _renderer():
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "scripts" / "render_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_committed_result_page_is_what_the_renderer_writes():
    stale = [
        path.relative_to(ROOT).as_posix()
        for path, text in _renderer().rendered().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"stale generated pages (run python scripts/render_results.py and commit): {stale}"


def test_every_page_source_is_rendered_and_every_table_marker_is_known():
    renderer = _renderer()
    for src in sorted(renderer.SRC.glob("*.md")):
        for name in re.findall(r"^\{\{ table ([\w/]+) \}\}$", src.read_text(encoding="utf-8"), flags=re.M):
            assert name.startswith("from_readme/") or name in renderer.TABLES, f"{src.name}: unknown table {name}"
        assert (renderer.RESULTS / src.name).exists(), f"{src.name} was never rendered"


def test_every_committed_run_is_on_the_all_runs_page():
    renderer = _renderer()
    page = (renderer.RESULTS / "runs.md").read_text(encoding="utf-8")
    assert renderer.run_names(), "no run folder under docs/results"
    for name in renderer.run_names():
        assert f"### `{name}`" in page


def test_the_headline_table_is_computed_from_the_aggregate():
    """A number checked by hand: the GRU ce_kl across 3 seeds at n = 1, from the run's per-seed accuracies."""
    renderer = _renderer()
    entry = next(e for e in renderer.run("paper_fmnist_gru_all_seeds")["aggregate"]["entries"] if e["loss"] == "ce_kl")
    by_seed = entry["accuracy_by_seed"]["1"]
    mean = sum(by_seed) / len(by_seed)
    assert f"{100 * mean:.1f}" == "88.2"
    assert "| gru-128 | ce_kl | never | 88.2 ±2.6 | 88.4 ±2.5 | +0.2 ±0.1 | 0.990 |" in renderer.render_table(
        "fmnist_headline"
    )


def test_no_result_table_is_typed_into_a_docs_page_or_the_readme():
    """Result rows (a number with a ± or several accuracies) live only in generated pages."""
    generated = set(_renderer().rendered())
    typed = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if path in generated and path.name != "README.md" or "_src" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if path.name == "README.md":  # the headline between its markers is generated
            text = re.sub(r"<!-- results:headline -->.*?<!-- /results:headline -->", "", text, flags=re.S)
        for line in text.splitlines():
            if line.startswith("|") and re.search(r"\d+\.\d ±\d|(\| \d{2}\.\d ){3}", line):
                typed.append(f"{path.relative_to(ROOT)}: {line[:60]}")
    assert not typed, f"result rows typed by hand: {typed}"
