#!/usr/bin/env bash
# End-to-end benchmark: starts a release server on a free port with a temporary data
# directory, uploads real MNIST, trains (one task per epoch), requests the test set and
# checks the accuracy through the Rust SDK, printing a table of the steps' times and the
# accuracies (with --json: one JSON line per step).
#   usage: scripts/bench_workflow.sh [MNIST_DIR] [EPOCHS] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
mnist=${1:-.cache/mnist}
epochs=${2:-1}
python3 scripts/fetch_mnist.py "$mnist" >/dev/null
cargo build --release --quiet -p hanami-server --bin hanami
cargo build --release --quiet -p hanami-sdk --example mnist_workflow

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
HANAMI_ADMIN_USER_ID=bench HANAMI_ADMIN_USER_NAME=bench HANAMI_ADMIN_PASSWORD=benchmark \
RUST_LOG=warn target/release/hanami --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/address" &
server=$!
for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.1; done
HANAMI_USER=bench HANAMI_PW=benchmark \
    target/release/examples/mnist_workflow "$(head -1 "$work/address")" "$mnist" "$epochs" ${3:+"$3"}
