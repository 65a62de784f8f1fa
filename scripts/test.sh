#!/usr/bin/env bash
# The second command: the whole test suite. PostgreSQL is required: a missing
# server fails the run (CREDITS_TEST_POSTGRES_URL, default
# postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/tools/node_modules/.bin:$PATH"
export CREDITS_TEST_POSTGRES_URL="${CREDITS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "PostgreSQL must answer at $CREDITS_TEST_POSTGRES_URL"
if command -v psql >/dev/null; then
  psql "$CREDITS_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null || {
    echo "PostgreSQL is required for the test suite and is not reachable" >&2; exit 1; }
fi

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy -p credits -p credits-server -p credits-bench --all-targets -- -D warnings
cargo clippy -p credits-frontend --target wasm32-unknown-unknown -- -D warnings

step "unit, property and behaviour tests (SQLite and PostgreSQL)"
cargo test -p credits -p credits-app -p credits-server --features credits/ssr,credits-app/ssr

step "release build of the site (server + WASM) and a smoke test of it"
bash scripts/build.sh
bash scripts/smoke.sh

step "browser tests in Chromium (end2end/)"
(cd end2end && npx playwright test)

step "reliability, fast parts: races, replays, kill -9 crashes, 20 s of each fuzz target"
bash scripts/reliability.sh --quick
