#!/usr/bin/env bash
# Run every test: set up the virtual environment on a fresh clone, then pytest.
# Extra arguments go to pytest.  PYTHON=pypy3 VENV=.venv-pypy runs them on PyPy.
# The dashboard's browser test (tests/test_dashboard.py) needs Chromium and
# ChromeDriver: as root with apt-get (CI, a fresh machine), this installs
# Debian's chromium and chromium-driver when chromedriver is not on PATH.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
VENV=$venv "$root/scripts/setup.sh"
if ! command -v chromedriver >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "sillyproxy: installing chromium and chromium-driver for the browser test (apt-get)…" >&2
  apt_log=$(mktemp "${TMPDIR:-/tmp}/sillyproxy-apt.XXXXXX")
  # Quiet unless it fails; a failure is not fatal here: the browser test then
  # fails and says what is missing, and every other test still runs.
  # Wait for another apt-get's lock (a second session, an upgrade) rather than fail.
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
  if "${apt[@]}" update >"$apt_log" 2>&1 &&
    "${apt[@]}" install -y --no-install-recommends chromium chromium-driver >>"$apt_log" 2>&1; then
    rm -f "$apt_log"
  else
    echo "sillyproxy: installing chromium failed (log: $apt_log); the browser test will fail" >&2
  fi
fi
cd "$root"
exec "$venv/bin/python" -m pytest "$@"
