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
. scripts/lib/bench_server.sh
bench_server mnist_workflow
target/release/examples/mnist_workflow "$address" "$mnist" "$epochs" ${3:+"$3"}
