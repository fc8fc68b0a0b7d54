#!/usr/bin/env bash
# Where a model's training time goes, kernel by kernel.
#   bench/kernels.sh MODEL.nn [flags of the emitted program...]
# e.g. bench/kernels.sh examples/mnist.nn --data /usr/share/datasets/fashion-mnist --epochs 1
# Compiles MODEL.nn, links it with bench/kernel_times.c (which times every
# kernel the step hands to the thread pool, see there) and runs it with the
# flags; prints each chunked kernel of the training step and forward pass with
# its total seconds, calls and share of the training steps' time, largest
# first, beside the kernel's first line in `netc --emit=opt`.
# NETC=path/to/netc compares another build (the runtime is this tree's).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$1
shift
"$root/scripts/build.sh" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
netc=${NETC:-$root/build/bin/netc}
"$netc" "$model" --emit=obj --name model -o "$work/model.o"
"$netc" "$model" --emit=opt > "$work/opt.txt"
cc -O1 -no-pie -I "$root/runtime/include" "$root/bench/kernel_times.c" "$work/model.o" \
  "$root/build/runtime/libnetc_runtime.a" -Wl,--wrap=netc_rt_parallel_for -lstdc++ -lm -lz \
  -o "$work/timed"
nm "$work/timed" > "$work/symbols.txt"
# Run where the user is (relative --data paths), with the weights and
# checkpoint going to the scratch folder.
outputs=(--save "$work/timed.safetensors")
if "$work/timed" --help 2> /dev/null | grep -q -- --checkpoint; then
  outputs+=(--checkpoint "$work/timed.ckpt.safetensors")
fi
if ! "$work/timed" "$@" "${outputs[@]}" > /dev/null 2> "$work/times.txt"; then
  grep -v '^0x\|^steps ' "$work/times.txt" >&2
  exit 1
fi
python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
symbols = {}
for line in open(work + "/symbols.txt"):
    parts = line.split()
    if len(parts) == 3:
        symbols[int(parts[0], 16)] = parts[2]
heads, current = {}, None
for line in open(work + "/opt.txt"):
    m = re.match(r"\s*kernel (\d+) (.*) \{", line)
    if m:
        current = int(m.group(1))
        heads[current] = m.group(2)
    elif current is not None and line.strip().startswith("%"):
        # the kernel's first node, e.g. "%7 = matmul %6, %2 transB : f32[N, 256]"
        heads[current] += "  " + line.strip().split("  (")[0]
        current = None
rows, step = [], None
for line in open(work + "/times.txt"):
    parts = line.split()
    if parts and parts[0] == "steps":
        step = float(parts[1])
        continue
    if len(parts) != 4 or not parts[0].startswith("0x"):
        continue
    # A launch is named by its bindings table (kernels alike share one
    # function), else by its function.
    table = symbols.get(int(parts[1], 16), "") if parts[1].startswith("0x") else ""
    name = table[: -len(".bindings")] if table.endswith(".bindings") else symbols.get(
        int(parts[0], 16), parts[0])
    if "fillChunk" in name:
        name = "runtime: batch fill"
    rows.append((float(parts[2]), int(parts[3]), name))
print("%-36s %10s %8s %7s  %s" % ("kernel", "seconds", "calls", "step%", "--emit=opt"))
for seconds, calls, name in sorted(rows, reverse=True):
    m = re.match(r"model\.train_step\.kernel(\d+)$", name)
    head = heads.get(int(m.group(1)), "") if m else ""
    share = "%6.1f%%" % (100 * seconds / step) if step and m else ""
    print("%-36s %10.4f %8d %7s  %s" % (name, seconds, calls, share, head))
if step:
    print("%-36s %10.4f" % ("all training steps", step))
PY
