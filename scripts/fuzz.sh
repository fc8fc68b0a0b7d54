#!/usr/bin/env bash
# Builds a libFuzzer target (clang-19, ASan + UBSan) and fuzzes it, starting
# from its committed corpus: `nn` (default) parse + check + the middle end
# (test/fuzz/corpus), `wav` the runtime's WAVE reader (test/fuzz/wav-corpus),
# `readers` its IDX and safetensors readers (test/fuzz/readers-corpus).
#   scripts/fuzz.sh [SECONDS] [nn|wav|readers]   (default 300 nn)
# New interesting inputs go to build-fuzz/corpus (corpus-wav); copy the ones
# worth keeping (and every crash reproducer, once fixed) into the committed
# corpus.
# Needs: clang-19 libclang-rt-19-dev (scripts/install-deps.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-300}
target=${2:-nn}
case $target in
  nn) fuzzer=netc_fuzz corpus=corpus seeds="$root/test/fuzz/corpus" ;;
  wav) fuzzer=netc_wav_fuzz corpus=corpus-wav seeds="$root/test/fuzz/wav-corpus" ;;
  readers) fuzzer=netc_readers_fuzz corpus=corpus-readers seeds="$root/test/fuzz/readers-corpus" ;;
  *) echo "fuzz.sh: the targets are nn, wav and readers" >&2; exit 2 ;;
esac
build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DNETC_FUZZ=ON >/dev/null
cmake --build "$build" --target "$fuzzer"
mkdir -p "$build/$corpus" "$build/crashes"
cd "$build"
"./test/fuzz/$fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=4096 -artifact_prefix="$build/crashes/" \
  "$build/$corpus" "$seeds"
