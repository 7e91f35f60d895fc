#!/usr/bin/env bash
# Create a virtual environment (if needed) and install sillyproxy with its test dependencies.
# Run by demo.sh and test.sh, so that each works on a fresh clone.
#   PYTHON       the interpreter (default python3; pypy3 works too)
#   VENV         where the environment goes (default .venv)
#   CONSTRAINTS  a pip constraints file to install with, e.g. one that pins
#                Twisted (scripts/test-twisted-versions.sh uses it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
venv=${VENV:-$root/.venv}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "sillyproxy needs Python 3.9 or newer (CI uses CPython 3.11; PyPy 3.9 works too); set PYTHON=" >&2
  exit 1
fi
announced=
if [ ! -x "$venv/bin/python" ]; then
  echo "sillyproxy: setting up $venv (first run: installing dependencies, about a minute)…" >&2
  announced=1
  "$python" -m venv "$venv"
fi
constraint_files=()
# PyPI has no current cryptography wheel for Debian's PyPy 3.9, and building
# one needs crates.io; the last releases with PyPy wheels work.
if "$venv/bin/python" -c 'import sys; sys.exit(sys.implementation.name != "pypy")'; then
  constraint_files+=("$root/scripts/pypy-constraints.txt")
fi
if [ -n "${CONSTRAINTS:-}" ]; then
  constraint_files+=("$CONSTRAINTS")
fi
constraints=()
for file in ${constraint_files[@]+"${constraint_files[@]}"}; do constraints+=(--constraint "$file"); done
stamp="$venv/.installed"
# The stamp holds the constraints it was installed with: a change to them, as
# to pyproject.toml, reinstalls.
wanted=$(cat /dev/null ${constraint_files[@]+"${constraint_files[@]}"})
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  if [ -f "$stamp" ]; then
    echo "sillyproxy: dependencies changed; updating $venv…" >&2
  elif [ -z "$announced" ]; then
    echo "sillyproxy: setting up $venv (first run: installing dependencies, about a minute)…" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check ${constraints[@]+"${constraints[@]}"} -e "$root[test]"
  printf '%s' "$wanted" > "$stamp"
fi
