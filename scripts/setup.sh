#!/usr/bin/env bash
# Installs what building and testing Credits needs, skipping what is already there.
# Everything comes from rustup, crates.io and npm (no GitHub downloads).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.11
WASM_BINDGEN_VERSION=0.2.130   # must equal the pinned wasm-bindgen in Cargo.toml
BINARYEN_VERSION=132           # npm binaryen; Debian's binaryen breaks hydration

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/tools/node_modules/.bin:$PATH"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

rustup target list --installed | grep -q wasm32-unknown-unknown || {
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
}

need_leptos=; need_bindgen=
command -v cargo-leptos >/dev/null && cargo-leptos --version | grep -q "$CARGO_LEPTOS_VERSION" || need_leptos=1
command -v wasm-bindgen >/dev/null && wasm-bindgen --version | grep -q "$WASM_BINDGEN_VERSION" || need_bindgen=1

if [ -n "$need_leptos$need_bindgen" ]; then
  # cargo-leptos 0.3.11 needs rustc >= 1.96: use nightly (or 1.97) for the tools.
  toolchain=nightly
  rustup run nightly rustc --version >/dev/null 2>&1 || { rustup toolchain install 1.97.0 --profile minimal; toolchain=1.97.0; }
  # The tools only orchestrate the build (decision 0023), so they are built
  # cheaply: cargo-leptos' own manifest asks for fat LTO and one codegen unit,
  # which kept its install on one core for minutes. opt-level 1 keeps
  # wasm-bindgen and wasm-split quick on our module. The two installs run side
  # by side (they share no dependency versions) so neither core waits.
  mkdir -p target/tool-build
  tool_install() {
    env CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=off \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
      CARGO_PROFILE_RELEASE_INCREMENTAL=false \
      cargo "+$toolchain" install --target-dir "$PWD/target/tool-build/$1" "$@"
  }
  bindgen_pid=
  if [ -n "$need_bindgen" ]; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION in the background (log: target/tool-build/wasm-bindgen-cli.log)"
    # Without --locked: its lockfile names a crate version this registry mirror lacks.
    # Without default features: they only add TLS to the test runner's WebDriver client.
    tool_install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --no-default-features \
      >target/tool-build/wasm-bindgen-cli.log 2>&1 &
    bindgen_pid=$!
  fi
  if [ -n "$need_leptos" ]; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION with $toolchain (about 13 minutes on 2 idle cores, both tools together)"
    tool_install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
  fi
  if [ -n "$bindgen_pid" ]; then
    wait "$bindgen_pid" || { tail -40 target/tool-build/wasm-bindgen-cli.log >&2; say "installing wasm-bindgen-cli failed"; exit 1; }
  fi
  rm -rf target/tool-build
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
