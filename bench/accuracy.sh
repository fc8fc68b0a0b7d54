#!/usr/bin/env bash
# The CNN examples' test accuracy against PyTorch's with the same model,
# data, optimizer and epochs, averaged over seeds 0-2 (the issue's target:
# within 0.5 percentage points). Slow: 10 epochs per seed and side.
#   bench/accuracy.sh [EPOCHS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" > /dev/null
epochs=${1:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
py=/usr/bin/python3
spectrograms="$root/data/spectrograms"
[[ -f $spectrograms/train-images.idx ]] || "$py" "$root/scripts/make-standin-spectrograms.py" > /dev/null
printf '| %-12s | %-22s | %-22s | %10s |\n' model "netc, seeds 0 1 2" "PyTorch, seeds 0 1 2" difference
printf '| %-12s | %-22s | %-22s | %10s |\n' ------------ ---------------------- ---------------------- ----------
for pair in "lenet:/usr/share/datasets/fashion-mnist" "course_cnn:$spectrograms"; do
  model=${pair%%:*}
  data=${pair#*:}
  [[ -d $data ]] || continue
  "$root/build/bin/netc" "$root/examples/$model.nn" -o "$model"
  ours=() theirs=()
  for seed in 0 1 2; do
    rm -f w.st c.st
    ours+=("$(./"$model" --data "$data" --epochs "$epochs" --seed "$seed" --threads 2 --save w.st \
      --checkpoint c.st | sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' | tail -1)")
    theirs+=("$("$py" "$root/bench/torch_reference.py" accuracy "$model" "$data" "$epochs" "$seed" |
      "$py" -c "import json,sys; print('%.2f' % json.load(sys.stdin)['accuracy'])")")
  done
  "$py" - "$model" "${ours[@]}" "${theirs[@]}" <<'PY'
import sys
model, v = sys.argv[1], [float(x) for x in sys.argv[2:]]
a, b = v[:3], v[3:]
ma, mb = sum(a) / 3, sum(b) / 3
print("| %-12s | %-22s | %-22s | %+9.2f |" % (
    model, " ".join("%.2f" % x for x in a) + " (%.2f)" % ma,
    " ".join("%.2f" % x for x in b) + " (%.2f)" % mb, ma - mb))
PY
done
