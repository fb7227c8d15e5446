#!/usr/bin/env bash
# The original C++ engine against this project's on the same machine: builds the original's
# processing code (its headers unchanged, from a checkout of kitsudaiki/OpenHanami at
# 04376e7a, with the single-threaded driver and stand-in headers of scripts/original) and the
# engine's `mnist` example, then runs one MNIST epoch of each for seeds 1-3, alternated, ROUNDS
# times: the original, the example with its default threads and with `--threads 1`. Prints
# every run and the medians of training and request times and of the accuracies.
#   usage: scripts/bench_original.sh ORIGINAL_CHECKOUT [MNIST_DIR [ROUNDS]]
# MNIST_DIR defaults to .cache/mnist and is fetched there if missing; ROUNDS defaults to 3.
# CXX picks the compiler (default g++); the flags are those of the original's release build.
# A checkout: git clone https://github.com/kitsudaiki/OpenHanami && git -C OpenHanami checkout 04376e7a
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n '8p' "$0" >&2
    exit 2
fi
original=$(realpath "$1")
mnist=$(realpath -m "${2:-$(dirname "$0")/../.cache/mnist}")
rounds=${3:-3}
cd "$(dirname "$0")/.."
if [ ! -f "$original/src/Hanami/src/core/processing/cpu/processing.h" ]; then
    echo "$original is not a checkout of kitsudaiki/OpenHanami" >&2
    exit 2
fi
if commit=$(git -C "$original" rev-parse HEAD 2>/dev/null) && [ "${commit#04376e7a}" = "$commit" ]; then
    echo "warning: $original is at $commit, not at 04376e7a (the version this project matches)" >&2
fi
python3 scripts/fetch_mnist.py "$mnist" >/dev/null
cargo build --release --quiet -p hanami-engine --example mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${CXX:-g++}" -O3 -DNDEBUG -std=c++17 -Wall -Wextra -I scripts/original/stubs \
    -isystem "$original/src/Hanami/src" \
    -isystem "$original/src/libraries/hanami_common/include" \
    -isystem "$original/src/libraries/hanami_crypto/include" \
    scripts/original/driver.cpp -o "$work/original"
cp target/release/examples/mnist "$work/ours"
for round in $(seq "$rounds"); do
    for seed in 1 2 3; do
        echo "original $round $seed $("$work/original" "$mnist" 1 "$seed")"
        echo "ours $round $seed $("$work/ours" "$mnist" --epochs 1 --seed "$seed")"
        echo "ours-1-thread $round $seed $("$work/ours" "$mnist" --epochs 1 --seed "$seed" --threads 1)"
    done
done | tee "$work/runs"
python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kind, _round, seed, text = line.split(" ", 3)
    runs.setdefault(kind, []).append((int(seed), json.loads(text)))
medians = {}
for kind, results in runs.items():
    median = lambda key: statistics.median(r[key] for _, r in results)
    accuracy = statistics.median(
        statistics.median(r["accuracy"] for s, r in results if s == seed) for seed in (1, 2, 3))
    medians[kind] = (median("train_s"), median("request_s"))
    print(f"{kind}: training {medians[kind][0]:.3f} s per epoch, "
          f"10,000 requests {medians[kind][1]:.4f} s, accuracy {accuracy:.2f} % "
          f"(medians of {len(results)} runs)")
original = medians["original"]
for kind in ("ours", "ours-1-thread"):
    print(f"{kind} against the original: training {original[0] / medians[kind][0]:.2f}x, "
          f"requests {original[1] / medians[kind][1]:.2f}x as fast")
PY
