#!/usr/bin/env bash
# Run the whole test suite on the oldest and on the newest Twisted that
# pyproject.toml allows, each in its own virtual environment:
#   .venv-twisted-oldest  Twisted pinned to the lower bound
#   .venv-twisted-newest  Twisted upgraded, on every run, to the newest release
#                         below the upper bound, so a new release is tested the
#                         day it lands
# It also says (without failing) when PyPI has a Twisted release beyond the
# upper bound: someone should try it and move the bound.
# sillyproxy relies on Twisted internals, so a release can break it.
#
# Both runs happen even when the first fails; the exit status is non-zero if
# either failed.  Extra arguments go to pytest.
#   TWISTED  oldest or newest to run only that one (default: both)
#   PYTHON   the interpreter for the environments (default python3)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
pip=(-m pip --disable-pip-version-check)

# .venv's Python (with packaging, which pytest needs) reads the bounds.
"$root/scripts/setup.sh"
bounds=$("$root/.venv/bin/python" - "$root/pyproject.toml" <<'PY'
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    from pip._vendor import tomli as tomllib
from packaging.requirements import Requirement

with open(sys.argv[1], "rb") as f:
    dependencies = [Requirement(d) for d in tomllib.load(f)["project"]["dependencies"]]
found = [r for r in dependencies if r.name.lower() == "twisted"]
if len(found) != 1:
    sys.exit(f"pyproject.toml: expected one twisted dependency, found {len(found)}")
twisted = found[0]
lower = [s.version for s in twisted.specifier if s.operator == ">="]
upper = [s for s in twisted.specifier if s.operator == "<"]
if len(lower) != 1 or not upper:
    sys.exit(f"pyproject.toml: {twisted} needs one lower bound (>=) and an upper bound (<)")
print(str(twisted).replace(" ", ""), lower[0])
PY
)
read -r requirement lowest <<<"$bounds"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

versions() {
  "$1/bin/python" - <<'PY'
import platform
from importlib.metadata import version

twisted, treq, klein = (version(name) for name in ("twisted", "treq", "klein"))
python = f"{platform.python_implementation()} {platform.python_version()}"
print(f"Twisted {twisted} (treq {treq}, klein {klein}) on {python}")
PY
}

# Set up the environment for $1 (oldest or newest); print the Twisted it has.
prepare() {
  local which=$1 venv=$root/.venv-twisted-$1
  if [ "$which" = oldest ]; then
    printf 'twisted==%s\n' "$lowest" >"$tmp/oldest.txt"
    VENV=$venv CONSTRAINTS=$tmp/oldest.txt "$root/scripts/setup.sh"
    local have
    have=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("twisted"))')
    if [ "$have" != "$lowest" ]; then
      echo "twisted-versions: $venv has Twisted $have, not $lowest" >&2
      return 1
    fi
  else
    VENV=$venv "$root/scripts/setup.sh"
    "$venv/bin/python" "${pip[@]}" install --quiet --upgrade "$requirement"
  fi
}

# Say whether PyPI has a Twisted release that the upper bound leaves out.
check_beyond_bound() {
  "$root/.venv-twisted-newest/bin/python" - "$requirement" <<'PY' || true
import json
import subprocess
import sys

from packaging.requirements import Requirement

allowed = Requirement(sys.argv[1]).specifier
try:
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--no-deps", "--ignore-requires-python", "--quiet",
         "--disable-pip-version-check", "--report", "-", "twisted"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    latest = json.loads(report)["install"][0]["metadata"]["version"]
except Exception as e:  # a check that cannot run only warns
    print(f"twisted-versions: could not ask PyPI for the newest Twisted: {e!r}")
    sys.exit(0)
if allowed.contains(latest):
    print(f"twisted-versions: Twisted {latest}, the newest on PyPI, is within {sys.argv[1]}")
else:
    print(
        f"twisted-versions: NOTE: Twisted {latest} is on PyPI but pyproject.toml allows"
        f" only {sys.argv[1]}, so nothing tests it: run the suite on it and move the bound"
        f" (this does not fail CI)"
    )
PY
}

which_ones=(oldest newest)
if [ -n "${TWISTED:-}" ]; then which_ones=("$TWISTED"); fi
summary=()
status=0
for which in "${which_ones[@]}"; do
  case $which in oldest | newest) ;; *) echo "TWISTED must be oldest or newest" >&2; exit 2 ;; esac
  venv=$root/.venv-twisted-$which
  echo "twisted-versions: === $which Twisted allowed by $requirement"
  if ! prepare "$which"; then
    summary+=("$which: set-up FAILED")
    status=1
    continue
  fi
  used=$(versions "$venv")
  echo "twisted-versions: $which: $used"
  if "$venv/bin/python" -m pytest -p no:cacheprovider "$@"; then
    summary+=("$which: passed on $used")
  else
    summary+=("$which: FAILED on $used")
    status=1
  fi
  if [ "$which" = newest ]; then check_beyond_bound; fi
done
for line in "${summary[@]}"; do echo "twisted-versions: $line"; done
exit "$status"
