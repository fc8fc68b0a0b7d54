#!/usr/bin/env python3
"""dropout_stats.py A.safetensors B.safetensors SAME_SEED P: the weights of
a program that trained w and v ([M] each, ones) one SGD step (lr 1) on
loss = sum(w -> dropout(p)) + sum(v -> dropout(p)): each element's gradient
is its mask value, so w = 1 where dropped and 1 - 1/(1 - p) where kept.
Checks that the kept values are scaled by exactly 1/(1 - p) (in f32), that
the dropped fraction is p within 5 standard deviations, that the two
layers draw independent masks (they disagree on 2p(1 - p) of the
elements), that A's masks are the ones runtime.h's contract defines for
seed 0, step 1 (netc_dropout_key, netc_dropout_bits: w is stream 0, v
stream 1), and that B (another run) has the same masks as A when SAME_SEED
is 1, independent ones when it is 0."""
import math
import struct
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

a, _ = safetensors_io.read(sys.argv[1])
b, _ = safetensors_io.read(sys.argv[2])
same, p = sys.argv[3] == "1", float(sys.argv[4])
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]  # noqa: E731
kept_value = f32(1 - f32(1 / f32(1 - p)))


def mask(values):
    out = []
    for x in values:
        if x == 1.0:
            out.append(0)
        elif abs(x - kept_value) <= 1e-6:
            out.append(1)
        else:
            sys.exit("value %r is neither dropped (1) nor kept (%r)" % (x, kept_value))
    return out


def near(count, total, q, what):
    sd = math.sqrt(total * q * (1 - q))
    if abs(count - total * q) > 5 * sd:
        sys.exit("%s: %d of %d, expected %.0f +- %.0f" % (what, count, total, total * q, 5 * sd))


M64 = (1 << 64) - 1


def mix64(h):  # runtime.h: netc_mix64
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & M64
    return h ^ (h >> 31)


def contract_mask(seed, step, stream, count):
    key = (mix64((mix64(seed ^ 0x64726F70) + step) & M64)) & ((1 << 48) - 1)
    threshold = round(p * (1 << 24))
    return [int(mix64(key ^ ((stream * 0x9E3779B97F4A7C15) & M64) ^
                      ((i * 0xD1B54A32D192ED03) & M64)) >> 40 >= threshold)
            for i in range(count)]


w, v, w2 = mask(a["w"][1]), mask(a["v"][1]), mask(b["w"][1])
if w != contract_mask(0, 1, 0, len(w)) or v != contract_mask(0, 1, 1, len(v)):
    sys.exit("the masks are not those of runtime.h's netc_dropout_bits")
n = len(w)
near(n - sum(w), n, p, "dropped")
near(sum(x != y for x, y in zip(w, v)), n, 2 * p * (1 - p), "layers disagree")
differ = sum(x != y for x, y in zip(w, w2))
if same and differ:
    sys.exit("the same seed drew another mask (%d elements differ)" % differ)
if not same:
    near(differ, n, 2 * p * (1 - p), "runs disagree")
print("dropout ok: dropped %.4f of %d, kept scaled by 1/(1 - p)" % (1 - sum(w) / n, n))
