#!/usr/bin/env python3
"""weights_close.py A B TOLERANCE: two safetensors files hold the same
tensors (names and shapes), each within TOLERANCE times its largest
magnitude of the other's. Prints 'close' and the worst ratio, else what
differs, and exits 1."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read  # noqa: E402

a, _ = read(sys.argv[1])
b, _ = read(sys.argv[2])
tolerance = float(sys.argv[3])
if sorted(a) != sorted(b):
    sys.exit("different tensors: %s and %s" % (sorted(a), sorted(b)))
worst = 0.0
for name in sorted(a):
    (shape_a, x), (shape_b, y) = a[name], b[name]
    if shape_a != shape_b:
        sys.exit("%s: shapes %s and %s" % (name, shape_a, shape_b))
    scale = max(max(abs(v) for v in y), 1e-30)
    ratio = max(abs(p - q) for p, q in zip(x, y)) / scale / tolerance
    worst = max(worst, ratio)
    if ratio > 1:
        sys.exit("%s differs by %.3g of its largest magnitude %.3g" % (name, ratio * tolerance, scale))
print("close, worst %.3f of the tolerance" % worst)
