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
. scripts/lib/bench_server.sh
bench_server upload_mnist
target/release/examples/upload_mnist "$address" "$mnist" "$runs"
