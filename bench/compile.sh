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
    python3 "$root/test/tools/make_chain.py" "$k" > chain.nn
    measure "chain of $k layers" chain.nn
  done
done
python3 - <<'PY'
n = 20000
head = "data sine(points = 200, from = -pi, to = pi)\ninput x: f32[N]\ntarget y: f32[N]\n"
with open("params.nn", "w") as f:
    f.write(head + "".join(f"param p{i} = randn()\n" for i in range(n)))
    f.write("y_pred = " + " + ".join(f"p{i} * x" for i in range(n)) + "\n")
    f.write("loss mse(y_pred, y)\noptimizer sgd(lr = 1e-6)\n")
with open("sum.nn", "w") as f:
    f.write(head + "param a = randn()\n")
    f.write("y_pred = " + " + ".join(f"{i % 7 + 1} * a * x" for i in range(n)) + "\n")
    f.write("loss mse(y_pred, y)\noptimizer sgd(lr = 1e-9)\n")
PY
measure "20,000 scalar parameters" params.nn
measure "a 20,000-term sum" sum.nn
