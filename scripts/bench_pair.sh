#!/usr/bin/env bash
# Paired A/B of two builds of the engine's probe example: each round runs both at once, one
# thread each, pinned to cores 0 and 1 (swapped every round), so that both see the same
# period of a noisy host. Stops with an error if the two differ in their results (the probe's
# output and state fingerprints) or one of them fails. Prints each round's µs per sample of
# both, then the median and geometric mean of the rounds' NEW/OLD ratios and the ratio of
# the two builds' lowest thirds.
# A run of a binary against a copy of itself (an A/A set) shows what the host's noise alone
# gives; see docs/benchmarks.md (twenty-ninth session).
#   usage: scripts/bench_pair.sh OLD_PROBE NEW_PROBE MODE ROUNDS [MNIST_DIR [PROBE OPTIONS...]]
#   e.g.:  scripts/bench_pair.sh /tmp/probe-old target/release/examples/probe train 40 \
#              .cache/mnist --count 5000
# Copy each probe binary right after `cargo build --release -p hanami-engine --examples`:
# `cargo test --release` rebuilds the examples too.
set -euo pipefail
if [ $# -lt 4 ]; then
    sed -n '10,12p' "$0" >&2
    exit 2
fi
old=$(realpath "$1") new=$(realpath "$2") mode=$3 rounds=$4
mnist=$(realpath -m "${5:-$(dirname "$0")/../.cache/mnist}")
shift $(($# < 5 ? $# : 5))
cd "$(dirname "$0")/.."
python3 scripts/fetch_mnist.py "$mnist" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
result() { # FILE FIELD
    python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}
for round in $(seq "$rounds"); do
    cores=(0 1)
    if ((round % 2 == 0)); then cores=(1 0); fi
    taskset -c "${cores[0]}" "$old" "$mnist" --mode "$mode" --threads 1 "$@" >"$work/old" 2>"$work/old.err" &
    first=$!
    taskset -c "${cores[1]}" "$new" "$mnist" --mode "$mode" --threads 1 "$@" >"$work/new" 2>"$work/new.err" &
    second=$!
    for build in old new; do
        pid=$first
        if [ $build = new ]; then pid=$second; fi
        if ! wait "$pid"; then
            echo "round $round: the $build build failed:" >&2
            cat "$work/$build.err" >&2
            exit 1
        fi
    done
    for field in outputs state; do
        if [ "$(result "$work/old" $field)" != "$(result "$work/new" $field)" ]; then
            echo "round $round: the builds differ in their $field" >&2
            exit 1
        fi
    done
    o=$(result "$work/old" us_per_sample)
    n=$(result "$work/new" us_per_sample)
    echo "$o $n" >>"$work/pairs"
    echo "round $round: old $o µs, new $n µs"
done
python3 - "$work/pairs" <<'EOF'
import statistics, sys
pairs = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
ratios = [n / o for o, n in pairs]
old, new = sorted(o for o, _ in pairs), sorted(n for _, n in pairs)
third = max(1, len(pairs) // 3)
print(f"new/old: median {statistics.median(ratios):.3f}, "
      f"geometric mean {statistics.geometric_mean(ratios):.3f}, "
      f"lowest thirds {sum(new[:third]) / sum(old[:third]):.3f} "
      f"({sum(old[:third]) / third:.3f} -> {sum(new[:third]) / third:.3f} µs)")
EOF
