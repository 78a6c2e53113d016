#!/usr/bin/env bash
# Create .venv with Vahini and its dev tools installed (idempotent).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Vahini needs Python >= 3.11"'
stamp=.venv/.installed
if [[ ! -x .venv/bin/python ]]; then "$PYTHON" -m venv .venv; fi
# The compiled modules are built by the install: a changed .pyx needs one too.
if [[ ! -f $stamp || pyproject.toml -nt $stamp || setup.py -nt $stamp || clients/python/pyproject.toml -nt $stamp \
      || -n $(find vahini streams -name '*.pyx' -newer $stamp) ]]; then
  echo "[bootstrap] installing Vahini and dev dependencies into .venv" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  # The client SDK, its own distribution (clients/python), beside the server for its tests.
  .venv/bin/pip install -q -e 'clients/python[check,pandas]'
  touch "$stamp"
fi
