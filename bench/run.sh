#!/usr/bin/env bash
# Run the benchmarks by hand: installs nginx, wrk and pypy3 (Debian packages)
# when missing, sets up .venv and .venv-pypy, then runs
#   bench/run.py     throughput/latency table (arguments after -- go to it)
#   bench/memory.py  peak memory: huge response to a slow client, huge upload, 1,000 idle connections
#   bench/load.py    500 connections for 60 s: no non-2xx, RSS steady within 10%
# Everything talks to 127.0.0.1 only.  Takes about 15 minutes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v pypy3 >/dev/null || need+=(pypy3 pypy3-venv)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
"$root/scripts/setup.sh"
if command -v pypy3 >/dev/null; then
  PYTHON=pypy3 VENV="$root/.venv-pypy" "$root/scripts/setup.sh"
fi
cd "$root"
.venv/bin/python bench/run.py "$@"
.venv/bin/python bench/memory.py
.venv/bin/python bench/load.py
.venv/bin/python bench/floor.py
