#!/usr/bin/env bash
# jit_vs_aot.sh NETC MODEL.nn [program flags]: runs the model's program twice,
# linked by netc (in aot-NAME/) and through `netc run` (in jit-NAME/), with
# the same flags, and checks that both leave the same files, byte for byte
# (weights, checkpoints; metrics with their times and worker_chunks masked:
# which thread runs a chunk depends on timing), and print the
# same output once times and rates are masked. Prints "NAME: same" or the first difference.
set -euo pipefail
shopt -s nullglob
netc=$1 model=$2
shift 2
name=$(basename "$model" .nn)
rm -rf "aot-$name" "jit-$name"
mkdir -p "aot-$name" "jit-$name"
# netc's warnings come first on netc run's stderr.
(cd "aot-$name" && "$netc" "$model" -o "$name" 2> "../aot-$name.warnings")
# Each run's output, and its exit status as the last line.
run() {
  local side=$1 status=0
  shift
  (cd "$side-$name" && "$@" > "../$side-$name.stdout" 2> "../$side-$name.stderr") || status=$?
  echo "exit $status" >> "$side-$name.stdout"
}
run aot "./$name" "$@"
rm "aot-$name/$name"
cat "aot-$name.warnings" "aot-$name.stderr" > "aot-$name.all" && mv "aot-$name.all" "aot-$name.stderr"
run jit "$netc" run "$model" "$@"
mask() { sed -E 's/[0-9]+(\.[0-9]+)?(s|ms)\b/TIME/g; s/[0-9.]+ (samples|examples|clips)\/s/RATE/g' "$1"; }
for stream in stdout stderr; do
  diff <(mask "aot-$name.$stream") <(mask "jit-$name.$stream")
done
diff <(ls "aot-$name") <(ls "jit-$name")
for f in "aot-$name"/*; do
  g="jit-$name/$(basename "$f")"
  if [[ $f == *.jsonl ]]; then
    timeless() { sed -E 's/"(seconds|epoch_seconds|samples_per_second|worker_chunks)":[0-9.e+-]+/"\1":T/g' "$1"; }
    diff <(timeless "$f") <(timeless "$g")
  else
    cmp "$f" "$g"
  fi
done
echo "$name: same ($(ls "aot-$name" | wc -l) files)"
