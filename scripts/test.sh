#!/usr/bin/env bash
# Run every test: set up the virtual environment on a fresh clone, then pytest.
# Extra arguments go to pytest.  PYTHON=pypy3 VENV=.venv-pypy runs them on PyPy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
VENV=$venv "$root/scripts/setup.sh"
cd "$root"
exec "$venv/bin/python" -m pytest "$@"
