#!/usr/bin/env bash
# How compile time and memory grow with the model (issue 13: they must grow
# at most linearly): chains of N `linear(2, 2) -> relu` layers, and
# examples/mnist.nn for scale. Prints seconds and peak MB per model.
#   bench/compile.sh [N ...]     (default: 100 200 400)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf '| %-28s | %9s | %9s |\n' model seconds "peak MB"
printf '| %-28s | %9s | %9s |\n' ---------------------------- --------- ---------
measure() {
  /usr/bin/time -f '%e %M' -o t.txt "$root/build/bin/netc" "$2" -o out > /dev/null
  read -r seconds kb < t.txt
  printf '| %-28s | %9s | %9s |\n' "$1" "$seconds" "$((kb / 1024))"
}
measure "examples/mnist.nn" "$root/examples/mnist.nn"
for n in "${@:-100 200 400}"; do
  for k in $n; do
    python3 - "$k" > chain.nn <<'PY'
import sys
n = int(sys.argv[1])
print("data inline(x = [[0, 1], [1, 0]], y = [0, 1])")
print("input x: f32[N, 2]\ntarget y: f32[N]")
print("scores = x -> %s -> linear(2, 1) -> flatten(0, 1)" % " -> ".join(["linear(2, 2) -> relu"] * n))
print("loss mse(scores, y)\noptimizer sgd(lr = 0.1)")
PY
    measure "chain of $k layers" chain.nn
  done
done
