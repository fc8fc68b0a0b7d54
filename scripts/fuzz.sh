#!/usr/bin/env bash
# Builds the libFuzzer target (clang-19, ASan + UBSan) and fuzzes parse +
# check + the middle end, starting from the committed corpus.
#   scripts/fuzz.sh [SECONDS]   (default 300)
# New interesting inputs go to build-fuzz/corpus; copy the ones worth
# keeping (and every crash reproducer, once fixed) into test/fuzz/corpus.
# Needs: clang-19 libclang-rt-19-dev (scripts/install-deps.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-300}
build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DNETC_FUZZ=ON >/dev/null
cmake --build "$build" --target netc_fuzz
mkdir -p "$build/corpus" "$build/crashes"
cd "$build"
./test/fuzz/netc_fuzz -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=4096 -artifact_prefix="$build/crashes/" \
  "$build/corpus" "$root/test/fuzz/corpus"
