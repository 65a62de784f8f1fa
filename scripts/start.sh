#!/usr/bin/env bash
# The first command: install what is missing, build the site, and serve it on
# the embedded SQLite default (sqlite://credits.db in this folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/tools/node_modules/.bin:$PATH"
bash scripts/build.sh
echo "[start] serving on http://${CREDITS_ADDR:-127.0.0.1:3000} (Ctrl-C to stop)"
exec env LEPTOS_SITE_ROOT="$PWD/target/site" ./target/release/credits serve "$@"
