#!/usr/bin/env bash
# Installs what building and testing Credits needs, skipping what is already there.
# Everything comes from rustup, crates.io and npm (no GitHub downloads).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.11
WASM_BINDGEN_VERSION=0.2.130   # must equal the pinned wasm-bindgen in Cargo.toml
BINARYEN_VERSION=132           # npm binaryen; Debian's binaryen breaks hydration

export PATH="$HOME/.cargo/bin:$PWD/tools/node_modules/.bin:$PATH"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

rustup target list --installed | grep -q wasm32-unknown-unknown || {
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
}

if ! command -v cargo-leptos >/dev/null || ! cargo-leptos --version | grep -q "$CARGO_LEPTOS_VERSION"; then
  # cargo-leptos 0.3.11 needs rustc >= 1.96: use nightly (or 1.97) only for this install.
  toolchain=nightly
  rustup run nightly rustc --version >/dev/null 2>&1 || { rustup toolchain install 1.97.0 --profile minimal; toolchain=1.97.0; }
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION with $toolchain (about 16 minutes on 2 cores)"
  cargo "+$toolchain" install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if ! command -v wasm-bindgen >/dev/null || ! wasm-bindgen --version | grep -q "$WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 minutes)"
  # Without --locked: its lockfile names a crate version this registry mirror lacks.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ ! -x tools/node_modules/.bin/wasm-opt ]; then
  say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) into tools/"
  mkdir -p tools
  (cd tools && npm install --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION")
fi

if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium for the browser tests"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium
fi

if [ ! -x end2end/node_modules/.bin/playwright ]; then
  say "installing Playwright (the test runner only; it drives /usr/bin/chromium)"
  (cd end2end && npm ci --no-audit --no-fund --silent)
fi

say "toolchain ready: $(cargo-leptos --version), $(wasm-bindgen --version), wasm-opt $(wasm-opt --version | head -1)"
