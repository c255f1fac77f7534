#!/usr/bin/env bash
# One entry point for set-up and everyday tasks; every task installs what it needs first.
#
#   bash scripts/dev.sh run [nrstream evaluate options]   # the quick-start experiment
#   bash scripts/dev.sh test [pytest options]             # the test suite
#   bash scripts/dev.sh lint                              # ruff
#   bash scripts/dev.sh docs [serve]                      # the docs site into site/ (mkdocs --strict), or a preview
#   bash scripts/dev.sh setup                             # only install
#
# Set-up: Debian packages espeak-ng, dataset-fashion-mnist, g++, ninja-build and python3-dev (the
# last three build mamba's fused CPU scan on first use; without them it runs a slower PyTorch loop), through
# apt-get when run as root, otherwise it says what to install; then a virtual environment in .venv
# (override with VENV=...) with nrstream installed in editable mode with every extra that
# pyproject.toml defines (dev, compat: TorchRL + SB3, ray, ...; override with EXTRAS=dev,compat),
# under constraints.txt so that no extra can move torch off 2.9. It re-installs when
# pyproject.toml, constraints.txt or the Gymnasium hook files change (editable installs copy those).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

system_setup() {
  local missing=()
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
  "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
  "$PYTHON" -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
    >/dev/null 2>&1 || missing+=(python3-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "nrstream setup: apt-get install ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "nrstream setup: please install ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]});" \
         "without them the Fashion-MNIST and synthesized-speech sources and their tests are unavailable," \
         "and mamba trains with its slower PyTorch scan." >&2
  fi
}

all_extras() {
  "$VENV/bin/python" -c 'import tomllib; print(",".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]))'
}

python_setup() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local stamp="$VENV/.nrstream-installed" inputs=(pyproject.toml constraints.txt _nrstream_gymnasium.py nrstream-gymnasium.pth)
  local stale=0 f
  [ -e "$stamp" ] || stale=1
  for f in "${inputs[@]}"; do [ "$f" -nt "$stamp" ] && stale=1; done
  if [ "$stale" = 1 ]; then
    local extras=${EXTRAS:-$(all_extras)}
    echo "nrstream setup: pip install -e '.[$extras]' -c constraints.txt" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extras]"
    touch "$stamp"
  fi
}

setup() { system_setup; python_setup; }

task=${1:-}
[ $# -gt 0 ] && shift
case "$task" in
  setup) setup ;;
  run)   setup; exec "$VENV/bin/nrstream" evaluate configs/quickstart.yaml "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  lint)  setup; exec "$VENV/bin/ruff" check . ;;
  docs)  python_setup  # no Debian packages: building the site runs no experiment
         if [ "${1:-build}" = serve ]; then shift; exec "$VENV/bin/python" -m mkdocs serve "$@"; fi
         [ "${1:-}" = build ] && shift
         exec "$VENV/bin/python" -m mkdocs build --strict --site-dir site "$@" ;;
  *) echo "usage: bash scripts/dev.sh {run|test|lint|docs|setup} [args]" >&2; exit 2 ;;
esac
