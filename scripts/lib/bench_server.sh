# Sourced by the benchmark scripts.
#   start_server: builds the release server and starts it on a free loopback port with a
#     temporary data directory (removed, with the server stopped, on exit); sets $address.
#   bench_server <SDK_EXAMPLE>: also fetches MNIST into $mnist if missing and builds the
#     named SDK example first.
start_server() {
    cargo build --release --quiet -p hanami-server --bin hanami
    work=$(mktemp -d)
    trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
    HANAMI_ADMIN_USER_ID=bench HANAMI_ADMIN_USER_NAME=bench HANAMI_ADMIN_PASSWORD=benchmark \
    RUST_LOG=warn target/release/hanami --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/address" &
    server=$!
    for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.1; done
    address=$(head -1 "$work/address")
    export HANAMI_USER=bench HANAMI_PW=benchmark
}

bench_server() {
    python3 scripts/fetch_mnist.py "$mnist" >/dev/null
    cargo build --release --quiet -p hanami-sdk --example "$1"
    start_server
}
