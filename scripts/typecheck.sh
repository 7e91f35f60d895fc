#!/usr/bin/env bash
# Type-check src/sillyproxy and src/myapp with mypy, as configured in
# pyproject.toml ([tool.mypy]).  Extra arguments go to mypy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
VENV=$venv "$root/scripts/setup.sh"
cd "$root"
exec "$venv/bin/python" -m mypy "$@"
