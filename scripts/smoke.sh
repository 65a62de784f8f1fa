#!/usr/bin/env bash
# Starts the release binary on a fresh SQLite file and checks that it serves
# the health check, the page and the WASM bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
DATABASE_URL="sqlite://$dir/smoke.db" LEPTOS_SITE_ROOT="$PWD/target/site" \
  ./target/release/credits serve --addr "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
fail() { echo "smoke: $*" >&2; cat "$dir/server.log" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q '"ok"' || fail "/healthz did not answer"
curl -fsS "http://127.0.0.1:$port/" | grep -q '/pkg/credits.js' || fail "/ does not load the app"
curl -fsS -o /dev/null "http://127.0.0.1:$port/pkg/credits.wasm" || fail "/pkg/credits.wasm missing"
curl -fsS -o /dev/null "http://127.0.0.1:$port/pkg/credits.css" || fail "/pkg/credits.css missing"
test -f "$dir/smoke.db" || fail "the SQLite file was not created"
echo "smoke: release binary serves /healthz, /, /pkg/credits.{js,wasm,css}"
