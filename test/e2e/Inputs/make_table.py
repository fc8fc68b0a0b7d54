#!/usr/bin/env python3
"""make_table.py OUT.csv ROWS: a learnable table with a header and a line to
skip: length, width, and the kind of object ("big" when length > 2.5, else
"small"), in a seeded random order. Standard library only."""
import random
import sys

out, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
with open(out, "w") as f:
    f.write("# made by make_table.py\n")
    f.write("length,width,kind\n")
    for i in range(rows):
        length = rng.uniform(0, 5)
        width = rng.uniform(0, 1)
        f.write("%.3f,%.3f,%s\n" % (length, width, "big" if length > 2.5 else "small"))
