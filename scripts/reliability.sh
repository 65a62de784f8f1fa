#!/usr/bin/env bash
# The reliability suite against release server processes: races, replays,
# crashes (kill -9), fuzzing and a soak, on SQLite and PostgreSQL.
#
#   scripts/reliability.sh          the full suite (about an hour and a half:
#                                   10-minute fuzz runs and a 30-minute soak
#                                   per backend)
#   scripts/reliability.sh --quick  the fast parts (what CI runs)
#
# Results: target/reliability/*.json; the summary is RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
[ "${1:-}" = "--quick" ] && quick=true
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/tools/node_modules/.bin:$PATH"
export CREDITS_TEST_POSTGRES_URL="${CREDITS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
[ -x target/release/credits ] || { bash scripts/setup.sh; bash scripts/build.sh; }
cargo build --release -p credits-bench
out=target/reliability
mkdir -p "$out"
bench=./target/release/credits-bench

if $quick; then rounds=2; kills=3; fuzz_secs=20; else rounds=20; kills=10; fuzz_secs=600; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "races: $rounds rounds of 1,000 spends and 1,000 holds affording 100"
$bench races --backend sqlite --rounds "$rounds" --work-dir "$out" > "$out/races-sqlite.json"
$bench races --backend postgres --rounds "$rounds" --work-dir "$out" > "$out/races-postgres.json"
$bench races --backend postgres --rounds "$rounds" --instances 3 --work-dir "$out" > "$out/races-postgres-3.json"
step "replays across three instances"
$bench replays --backend sqlite --work-dir "$out" > "$out/replays-sqlite.json"
$bench replays --backend postgres --work-dir "$out" > "$out/replays-postgres.json"
step "crashes: kill -9 x $kills during mixed load"
$bench crashes --backend sqlite --kills "$kills" --work-dir "$out" > "$out/crashes-sqlite.json"
$bench crashes --backend postgres --kills "$kills" --work-dir "$out" > "$out/crashes-postgres.json"
step "fuzzing: ${fuzz_secs}s per target"
bash scripts/fuzz.sh "$fuzz_secs"
if ! $quick; then
  step "soak: 30 minutes of mixed load per backend"
  $bench soak --backend sqlite --minutes 30 --workers 4 --work-dir "$out" > "$out/soak-sqlite.json"
  $bench soak --backend postgres --minutes 30 --workers 4 --work-dir "$out" > "$out/soak-postgres.json"
fi
echo "reliability: all suites passed; results in $out/"
