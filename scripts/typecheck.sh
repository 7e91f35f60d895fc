#!/usr/bin/env bash
# Type-check src/ with mypy as pyproject.toml's [tool.mypy] configures it,
# after setting up the environment as test.sh does.  Extra arguments go to mypy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-$PWD/.venv} scripts/setup.sh && exec "${VENV:-$PWD/.venv}/bin/python" -m mypy "$@"
