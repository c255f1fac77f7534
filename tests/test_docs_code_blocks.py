"""Every Python and shell block of README.md and of the docs site runs (issue 25).

Each page's blocks run in order, as a pip user would run them, in a fresh interpreter, in a folder of their own
(shared by the pages, so that the toy checkpoints one page trains are reused by the next): Python
blocks share one namespace per page, shell blocks run under ``bash -e`` with this environment's ``nrstream`` on the
``PATH``. A block that cannot run here (hours of training, a cluster, an install into your environment) is marked
by the line ``<!-- skip: REASON -->`` just before it; the reason is required.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)(?P<attrs>[^\n`]*)$")
RUN = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
SKIP = re.compile(r"^\s*<!-- skip: (?P<reason>\S.*?) -->\s*$")


def pages() -> list[Path]:
    docs = [p for p in sorted((ROOT / "docs").rglob("*.md")) if "_src" not in p.parts]
    return [ROOT / "README.md", *docs]


def blocks(path: Path) -> list[dict]:
    """``{lang, code, line, skip}`` for each fenced block of a runnable language."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group("indent"), m.group("lang")
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = textwrap.dedent(
            "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : j])
        )
        previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.match(previous)
        if lang in RUN and not code.lstrip().startswith("--8<--"):  # a snippet include is the file it names
            out.append({"lang": RUN[lang], "code": code, "line": i + 1, "skip": skip.group("reason") if skip else None})
        i = j + 1
    return out


def runnable_pages() -> list[Path]:
    return [p for p in pages() if any(b["skip"] is None for b in blocks(p))]


DRIVER = """
import json, os, subprocess, sys
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for block in blocks:
    where = f"{block['page']}:{block['line']}"
    print(f"--- {where} ({block['lang']})", flush=True)
    if block["lang"] == "python":
        exec(compile(block["code"], where, "exec"), namespace)
    else:
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block["code"]])
        if done.returncode:
            sys.exit(f"{where}: shell block exited {done.returncode}")
"""


def test_every_skip_names_its_reason_and_every_page_is_seen():
    found = {p.relative_to(ROOT).as_posix(): blocks(p) for p in pages()}
    assert "README.md" in found and "docs/tutorials/plugin.md" in found
    for page, items in found.items():
        text = (ROOT / page).read_text(encoding="utf-8")
        assert text.count("<!-- skip:") == len(re.findall(r"<!-- skip: \S.*? -->", text)), (
            f"{page}: a skip without a reason"
        )
        assert all(b["skip"] is None or len(b["skip"]) > 10 for b in items), page


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One folder for every page, as one user's: a later page reuses the toy checkpoints an earlier one trained."""
    return tmp_path_factory.mktemp("docs-user")


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run(page: Path, tmp_path: Path, work: Path):
    todo = [dict(b, page=page.relative_to(ROOT).as_posix()) for b in blocks(page) if b["skip"] is None]
    code = "\n".join(b["code"] for b in todo)
    for module in ("torchrl", "stable_baselines3"):
        if re.search(rf"^\s*(from|import) {module}\b", code, re.M):
            pytest.importorskip(module, reason=f"{page.name} needs {module} (pip install 'nrstream[compat]')")
    (tmp_path / "blocks.json").write_text(json.dumps(todo), encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", NRSTREAM_CACHE=str(work / ".cache"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)  # as a pip user: nothing from the repository on the path but the installed package
    done = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "blocks.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
