#!/usr/bin/env bash
# Data-parallel training over MPI (netc --distributed), measured on this
# machine and extrapolated by README's scaling model.
#   bench/distributed.sh [mlp|cnn ...]   (default: both)
# For each model: the program alone and under mpirun -np 2 (one thread per
# rank, loopback through shared memory), each the faster of two epochs;
# from rank 0's metrics the per-step compute (its shards' forward and
# backward), exchange (waiting for the gradients' all-to-all and all-gather
# after its last shard: what did not overlap) and update times. A ping-pong
# between two ranks gives the link's latency and bandwidth for the model:
#   step(N) = compute(1)/S * k + update + sum(1) (k + S/N + 1)/S + wire(N)
#   wire(N) = 2 (N-1) latency + G (N-1)/N (k + 1) / bandwidth,  k = ceil(S/N)
# (G: gradient bytes; S: shards; sum(1): adding the S rows in one process,
# a memory-bound pass; with N ranks each packs its k rows, adds S/N of the
# S rows' columns and receives the sums; the wire time assumed not to
# overlap the backward pass, messages one after another: an upper bound).
# The table prints the measured 2-rank step beside the model's prediction,
# then the model for 8 and 64 machines on 10 and 100 Gb/s links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
netc="$root/build/bin/netc"
py=/usr/bin/python3
mpirun=(mpirun --oversubscribe)
[[ $(id -u) == 0 ]] && mpirun+=(--allow-run-as-root)
groups=("${@:-mlp cnn}")
groups=" ${groups[*]} "

mpicc -O2 "$root/bench/mpi_pingpong.c" -o pingpong

# run NAME PROCESSES ARGS... -> the metrics of the faster epoch, as JSON
run() {
  local name=$1 np=$2
  shift 2
  rm -f m.jsonl w.st c.st
  "${mpirun[@]}" -np "$np" "./$name" --epochs 2 --threads 1 --metrics m.jsonl --save w.st \
    --checkpoint c.st "$@" > /dev/null
  "$py" -c "import json,sys; r=[json.loads(l) for l in open('m.jsonl') if '\"epoch\"' in l]; print(json.dumps(min(r, key=lambda e: e['epoch_seconds'])))"
}

model() { # NAME ALONE TWO PINGPONG PARAMS
  "$py" - "$@" <<'PY'
import json, math, sys
name, alone, two, ping, params = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4].split(), int(sys.argv[5])
latency, bandwidth = float(ping[0]) * 1e-6, float(ping[1]) * 1e9
G = 4 * params
S = alone["shards"]
def per_step(r, key): return r[key] / r["epoch_steps"]
shard = per_step(alone, "compute_seconds") / S
update = per_step(alone, "update_seconds")
fold = per_step(alone, "exchange_seconds")  # one process: the sum of S rows alone
def predict(n, lat, bw, shards=S):
    k = math.ceil(shards / n)
    if n == 1:
        return shard * S / shards * k + update + fold, fold
    wire = 2 * (n - 1) * lat + G * (n - 1) / n * (k + 1) / bw
    memory = fold / S * (k + shards / n + 1)  # fold(1) grows with S rows
    return shard * S / shards * k + update + memory + wire, memory + wire
print(f"\n{name}: {params} parameters ({G / 1e6:.2f} MB of gradients), {S} shards, "
      f"link between 2 local ranks: {latency * 1e6:.1f} us, {bandwidth / 1e9:.1f} GB/s")
print("(ms per step; compute: the shards' forward and backward; sum: adding the shards and, with")
print(" several processes, the exchange that did not overlap the backward pass)")
print(f"| {'processes':<28} | {'epoch s':>8} | {'step ms':>8} | {'compute':>8} | {'sum':>8} | {'update':>8} | {'speed-up':>8} |")
print(f"|{'-' * 30}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
step1 = alone["epoch_seconds"] / alone["epoch_steps"]
for label, r in (("1 (measured)", alone), ("2, loopback (measured)", two)):
    step = r["epoch_seconds"] / r["epoch_steps"]
    print(f"| {label:<28} | {r['epoch_seconds']:8.3f} | {step * 1e3:8.3f} | {per_step(r, 'compute_seconds') * 1e3:8.3f} | "
          f"{per_step(r, 'exchange_seconds') * 1e3:8.3f} | {per_step(r, 'update_seconds') * 1e3:8.3f} | {step1 / step:7.2f}x |")
t, x = predict(2, latency, bandwidth)
print(f"| {'2, loopback (model)':<28} | {t * alone['epoch_steps']:8.3f} | {t * 1e3:8.3f} | {(t - x - update) * 1e3:8.3f} | "
      f"{x * 1e3:8.3f} | {update * 1e3:8.3f} | {step1 / t:7.2f}x |")
# Other machines: --shards N (one shard each, the batch cut N ways, the
# compute of a shard in proportion), and assumed links: 10 Gb/s Ethernet
# with TCP (30 us a message), 100 Gb/s InfiniBand or RoCE with RDMA (3 us).
for n in (8, 64):
    for gbit, lat in ((10, 30e-6), (100, 3e-6)):
        t, x = predict(n, lat, gbit / 8 * 1e9, shards=n)
        print(f"| {f'{n} machines, {gbit} Gb/s (model)':<28} | {'':>8} | {t * 1e3:8.3f} | {(t - x - update) * 1e3:8.3f} | "
              f"{x * 1e3:8.3f} | {update * 1e3:8.3f} | {step1 / t:7.2f}x |  efficiency {step1 / (n * t) * 100:.0f}%")
PY
}

if [[ $groups == *" mlp "* ]]; then
  digits="$root/data/mnist"
  "$netc" "$root/examples/mnist.nn" --distributed -o mlp
  alone=$(run mlp 1 --data "$digits")
  two=$(run mlp 2 --data "$digits")
  params=$(./mlp --data "$digits" --steps 0 --save mlp0.st --checkpoint mlp0.ckpt | sed -n 's/^training [^:]*: \([0-9]*\) parameters.*/\1/p')
  ping=$("${mpirun[@]}" -np 2 ./pingpong $((4 * params)))
  model "MNIST MLP (batch 128, $digits)" "$alone" "$two" "$ping" "$params"
fi
if [[ $groups == *" cnn "* ]]; then
  "$py" "$root/scripts/make-standin-spectrograms.py" spec --train 640 --test 64 > /dev/null
  "$netc" "$root/examples/course_cnn.nn" --distributed -o cnn
  params=$(./cnn --data spec --steps 0 --save cnn0.st --checkpoint cnn0.ckpt | sed -n 's/^training [^:]*: \([0-9]*\) parameters.*/\1/p')
  alone=$(run cnn 1 --data spec)
  two=$(run cnn 2 --data spec)
  ping=$("${mpirun[@]}" -np 2 ./pingpong $((4 * params)))
  model "course CNN (batch 128, 640 stand-in spectrograms)" "$alone" "$two" "$ping" "$params"
fi
