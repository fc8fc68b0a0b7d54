#!/usr/bin/env bash
# How compile time and memory grow with the model (issue 13: at most
# linearly): chains of N `linear(2, 2) -> relu` layers, a model of 20,000
# scalar parameters, a 20,000-term sum, and examples/mnist.nn for scale.
# Prints seconds and peak MB per model (the ahead-of-time netc: emission,
# optimization on every core, code generation, link).
#   bench/compile.sh [N ...]     (default: 100 1000 3000)
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
for n in "${@:-100 1000 3000}"; do
  for k in $n; do
    python3 "$root/test/tools/make_deep.py" chain "$k" > chain.nn
    measure "chain of $k layers" chain.nn
  done
done
python3 "$root/test/tools/make_deep.py" params 20000 > params.nn
measure "20,000 scalar parameters" params.nn
python3 "$root/test/tools/make_deep.py" sum 20000 > sum.nn
measure "a 20,000-term sum" sum.nn
