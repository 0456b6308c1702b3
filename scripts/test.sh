#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, proto lint, and every test on SQLite and
# PostgreSQL. Installs what it needs (buf from npm, Python venvs for the SDK test and the moto AWS
# emulator), starts PostgreSQL and MariaDB if they are down, and runs moto while the tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools"
eval "$(scripts/setup-test-tools.sh)"
scripts/ensure-postgres.sh
scripts/ensure-mariadb.sh
eval "$(scripts/moto.sh start)"   # the AWS emulator, for the aws provider's tests
trap 'scripts/moto.sh stop' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "buf lint"
tools/node_modules/.bin/buf lint proto

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the binaries the end-to-end tests start"
cargo build --workspace --bins --locked

step "cargo test (SQLite and PostgreSQL)"
cargo test --workspace --locked
