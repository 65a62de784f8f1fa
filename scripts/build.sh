#!/usr/bin/env bash
# The release build: server binary and WASM site (cargo-leptos), then
# brotli/gzip copies of the static files for the server to send as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/tools/node_modules/.bin:$PATH"
LEPTOS_ENV=PROD cargo leptos build --release --split
node scripts/precompress.mjs target/site/pkg
