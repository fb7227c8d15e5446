# Sourced by the benchmark scripts: builds the release server and the named SDK example,
# fetches MNIST into $mnist if missing, and starts the server on a free loopback port with
# a temporary data directory (removed, with the server stopped, on exit). Sets $address.
#   usage: bench_server <SDK_EXAMPLE>
bench_server() {
    python3 scripts/fetch_mnist.py "$mnist" >/dev/null
    cargo build --release --quiet -p hanami-server --bin hanami
    cargo build --release --quiet -p hanami-sdk --example "$1"
    work=$(mktemp -d)
    trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
    HANAMI_ADMIN_USER_ID=bench HANAMI_ADMIN_USER_NAME=bench HANAMI_ADMIN_PASSWORD=benchmark \
    RUST_LOG=warn target/release/hanami --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/address" &
    server=$!
    for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.1; done
    address=$(head -1 "$work/address")
    export HANAMI_USER=bench HANAMI_PW=benchmark
}
