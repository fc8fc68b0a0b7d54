"""make_points.py OUT [--bad-label]: three Gaussian blobs in the plane
(class 0, 1, 2) as a safetensors file with F32 `point` [N, 2], I64 `class`
[N] and an F32 `extra` the model does not use."""
import json
import random
import struct
import sys

rng = random.Random(7)
points, classes = [], []
for i in range(150):
    c = i % 3
    cx, cy = [(0, 0), (3, 0), (0, 3)][c]
    points += [cx + rng.gauss(0, 0.6), cy + rng.gauss(0, 0.6)]
    classes.append(c)
if "--bad-label" in sys.argv:
    classes[5] = 7
blobs = [struct.pack("<%df" % len(points), *points), struct.pack("<%dq" % len(classes), *classes),
         struct.pack("<2f", 1, 2)]
header, offset = {}, 0
for name, dtype, shape, blob in (("point", "F32", [150, 2], blobs[0]), ("class", "I64", [150], blobs[1]),
                                 ("extra", "F32", [2], blobs[2])):
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
    offset += len(blob)
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
