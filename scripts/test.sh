#!/usr/bin/env bash
# Builds everything and runs every test: unit tests (GoogleTest), the golden
# and end-to-end tests (lit + FileCheck) and the fuzz corpus replay, via CTest.
#   scripts/test.sh [ctest options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
ctest --test-dir "$root/build" --output-on-failure -j"$(nproc)" "$@"
