#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each): fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (.ci/run installs both). The seed corpus in
# fuzz/corpus/<target>/ is read, never written: new inputs go to a scratch folder, and a
# failing input is saved under target/fuzz/artifacts/<target>/ and printed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/libfuzzer/fuzz_targets | sed 's/\.rs$//')
fi

# No sanitizer: the workspace has no unsafe code, and without ASan the build is twice as fast
# and each run sees several times more inputs. Debug assertions (overflow checks) stay on.
flags=(--fuzz-dir fuzz/libfuzzer --sanitizer none --debug-assertions --target-dir target/fuzz)
cargo +nightly fuzz build "${flags[@]}"

scratch="$(mktemp -d)"
failed=()
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "target/fuzz/artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -artifact_prefix="target/fuzz/artifacts/$t/" -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$scratch/$t.log" >&2 || tail -20 "$scratch/$t.log" >&2
    echo "fuzz: $t FAILED; reproduce with: cargo +nightly fuzz run ${flags[*]} $t target/fuzz/artifacts/$t/<file>" >&2
    failed+=("$t")
    continue
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$scratch/$t.log" || true
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failure"
