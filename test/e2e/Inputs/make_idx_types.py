#!/usr/bin/env python3
"""make_idx_types.py DIR: x.idx, 50 items of 3 x 2 float32 values, and
y.idx, their int16 labels (1 where the values sum above 3). Standard
library only."""
import os
import random
import struct
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(3)
xs, ys = [], []
for i in range(50):
    v = [rng.uniform(0, 1) for _ in range(6)]
    xs += v
    ys.append(1 if sum(v) > 3 else 0)
with open(os.path.join(out, "x.idx"), "wb") as f:
    f.write(struct.pack(">BBBB", 0, 0, 0x0D, 3) + struct.pack(">3I", 50, 3, 2))
    f.write(struct.pack(">%df" % len(xs), *xs))
with open(os.path.join(out, "y.idx"), "wb") as f:
    f.write(struct.pack(">BBBB", 0, 0, 0x0B, 1) + struct.pack(">I", 50))
    f.write(struct.pack(">%dh" % len(ys), *ys))
