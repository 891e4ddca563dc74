#!/usr/bin/env bash
# The whole test suite: prepares the machine (scripts/setup.sh), then runs every workspace test against real
# PostgreSQL, Redis and compiled Wasm plugins. Guest plugins are built by host/plugin-runtime's build script.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

cargo test --workspace --locked --no-fail-fast "$@"
