#!/usr/bin/env bash
# Upload benchmark: starts a release server on a free port with a temporary data directory,
# uploads the real MNIST training set (60,000 images) several times through the Rust SDK and
# prints each time and the median.
#   usage: scripts/bench_upload.sh [MNIST_DIR] [RUNS]
# MNIST_DIR defaults to .cache/mnist and is fetched there if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mnist=${1:-.cache/mnist}
runs=${2:-9}
python3 scripts/fetch_mnist.py "$mnist" >/dev/null
cargo build --release --quiet -p hanami-server --bin hanami
cargo build --release --quiet -p hanami-sdk --example upload_mnist

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
HANAMI_ADMIN_USER_ID=bench HANAMI_ADMIN_USER_NAME=bench HANAMI_ADMIN_PASSWORD=benchmark \
RUST_LOG=warn target/release/hanami --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/address" &
server=$!
for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.1; done
HANAMI_USER=bench HANAMI_PW=benchmark \
    target/release/examples/upload_mnist "$(head -1 "$work/address")" "$mnist" "$runs"
