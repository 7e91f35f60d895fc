#!/usr/bin/env bash
# Create a virtual environment (if needed) and install sillyproxy with its test dependencies.
# Run by demo.sh and test.sh, so that each works on a fresh clone.
#   PYTHON  the interpreter (default python3; pypy3 works too)
#   VENV    where the environment goes (default .venv)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
venv=${VENV:-$root/.venv}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "sillyproxy needs Python 3.9 or newer (3.11+ for CPython is what CI uses); set PYTHON=" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
constraints=()
# PyPI has no current cryptography wheel for Debian's PyPy 3.9, and building
# one needs crates.io; the last releases with PyPy wheels work.
if "$venv/bin/python" -c 'import sys; sys.exit(sys.implementation.name != "pypy")'; then
  constraints=(--constraint "$root/scripts/pypy-constraints.txt")
fi
stamp="$venv/.installed"
# Reinstall only when the project's dependencies changed.
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${constraints[@]}" -e "$root[test]"
  touch "$stamp"
fi
