#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer,
# in one command: netc, its runtime and the emitted programs (linked through
# a `cc` that adds the sanitizers) are all instrumented. Builds in
# build-sanitize/ with clang-19; slower than scripts/test.sh (about 3x).
#   scripts/sanitize.sh [ctest options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-sanitize"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DNETC_SANITIZE=ON
fi
cmake --build "$build"
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
printf '#!/bin/sh\nexec clang++-19 -fsanitize=address,undefined "$@"\n' > "$wrap/cc"
chmod +x "$wrap/cc"
export PATH="$wrap:$PATH"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
