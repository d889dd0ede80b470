#!/usr/bin/env bash
# Run every libFuzzer harness for a short period over its seed corpus.
set -euo pipefail
build=$1; secs=${2:-20}
src=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
n=0
for f in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus=$(mktemp -d)
  [ -d "$src/tests/fuzz/corpus/${name#fuzz_}" ] && cp "$src/tests/fuzz/corpus/${name#fuzz_}"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz-smoke: $name for ${secs}s"
  ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 \
    -print_final_stats=0 "$corpus" >"$corpus.log" 2>&1 || { tail -n 60 "$corpus.log"; exit 1; }
  rm -rf "$corpus" "$corpus.log"
  n=$((n+1))
done
echo "fuzz-smoke: $n harnesses ran clean"
