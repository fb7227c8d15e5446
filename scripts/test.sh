#!/usr/bin/env bash
# Runs the whole Hanami-rs test suite on a fresh machine: formatting, lints, the API docs
# (no broken links), every unit and integration test (integration tests start the real
# server on free loopback ports with temporary data directories), then the Python SDK's
# tests (sdk/python) in a virtual environment at .venv against the server binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "test.sh: cargo is missing; install Rust from https://rustup.rs" >&2
    exit 1
fi

# Debian packages that the build and the SDK tests need, installed where this runs as root
# with apt-get; elsewhere the script stops and names them.
install_packages() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing $*"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    else
        echo "test.sh: missing $* (Debian/Ubuntu package names); install them first" >&2
        exit 1
    fi
}
# A C compiler and linker (rustc links through `cc`; ring and SQLite compile C), Python 3.
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    install_packages "${missing[@]}"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked
echo "== cargo test"
cargo test --workspace --locked

echo "== Python SDK (sdk/python) against the server binary"
cargo build -p hanami-server --bin hanami --locked
# Reuse .venv when it works; otherwise (re)create it. Debian's python3 needs the
# python3-venv package for `python3 -m venv` (it fails there with "ensurepip is not available").
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    if ! python3 -m venv --clear .venv; then
        install_packages python3-venv
        python3 -m venv --clear .venv
    fi
fi
.venv/bin/python -m pip install -q -e 'sdk/python[test]'
HANAMI_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/hanami" .venv/bin/python -m pytest -q sdk/python/tests
