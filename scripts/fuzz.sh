#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for the given seconds each (default 600)
# over the committed corpus, and fails if any target crashes, hangs or leaks.
#
#   scripts/fuzz.sh [seconds-per-target]      # CI: scripts/fuzz.sh 20
#
# The committed corpus (fuzz/corpus/<target>, plus fuzz/regressions/<target>)
# is only read: new inputs go to a temporary directory that is thrown away.
# Crashing inputs are kept in fuzz/artifacts/<target>/ (ignored by git).
# Builds with debug assertions and overflow checks (-a), in fuzz/target.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
case "$seconds" in
  ''|*[!0-9]*|0) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;;
esac

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

rustup run nightly rustc --version >/dev/null 2>&1 || {
  say "installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
}
command -v cargo-fuzz >/dev/null || {
  say "installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
}

say "building the fuzz targets"
cargo +nightly fuzz build -a

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in $(cargo +nightly fuzz list); do
  corpora=("fuzz/corpus/$target")
  [ -d "fuzz/regressions/$target" ] && corpora+=("fuzz/regressions/$target")
  options=("-max_total_time=$seconds" "-timeout=30" "-print_final_stats=1")
  [ -f "fuzz/dicts/$target.dict" ] && options+=("-dict=fuzz/dicts/$target.dict")
  mkdir -p "$work/$target"
  say "$target: ${seconds}s over ${corpora[*]}"
  if ! cargo +nightly fuzz run -a "$target" "$work/$target" "${corpora[@]}" -- "${options[@]}" \
      >"$work/$target.log" 2>&1; then
    failed+=("$target")
    tail -n 60 "$work/$target.log"
    say "$target FAILED; the input is in fuzz/artifacts/$target/"
  else
    grep -E '^#[0-9]+' "$work/$target.log" | tail -n 1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$work/$target.log" || true
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  say "crashes in: ${failed[*]}"
  exit 1
fi
say "no crashes"
