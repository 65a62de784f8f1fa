#!/usr/bin/env bash
# Benchmarks (not part of the test suite): builds the release site and the
# driver, then runs `credits-bench perf` on SQLite and on PostgreSQL — the
# database's own ceiling, our server over HTTP and the in-process API, back to
# back in several rounds — plus the browser's live-update latency, and writes
# BENCHMARKS.md from the results (target/bench/*.json).
#
#   scripts/bench.sh [rounds] [seconds-per-measurement]     (defaults: 3 10)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
secs="${2:-10}"
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/tools/node_modules/.bin:$PATH"
export CREDITS_TEST_POSTGRES_URL="${CREDITS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
command -v oha >/dev/null || cargo install oha --locked --version 1.16.0
command -v pgbench >/dev/null || { echo "pgbench (Debian package postgresql-client) is required" >&2; exit 1; }
bash scripts/build.sh
cargo build --release -p credits-bench
mkdir -p target/bench
for backend in sqlite postgres; do
  ./target/release/credits-bench perf --backend "$backend" --rounds "$rounds" --secs "$secs" \
    > "target/bench/perf-$backend.json"
done
(cd end2end && npx playwright test --config playwright.bench.config.ts)
python3 scripts/bench_report.py > BENCHMARKS.md
echo "BENCHMARKS.md written"
