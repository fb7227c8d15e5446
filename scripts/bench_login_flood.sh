#!/usr/bin/env bash
# Login flood benchmark: starts a release server on a free port with a temporary data
# directory; in each run, 64 clients on 127.0.0.1 send 8 logins each with unknown user ids
# (one password check each) over keep-alive connections, and half a second in, one correct
# login from 127.0.0.2 is timed.
#   usage: scripts/bench_login_flood.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. scripts/lib/bench_server.sh
start_server
python3 scripts/lib/login_flood.py "$address" "$runs"
