#!/usr/bin/env python3
"""make_idx.py DIR TRAIN TEST [--gzip]: a small, learnable MNIST-format set.

Image of class c (0..9): a 4 x 4 bright square at row 2 + 2 * c, column
2 + 2 * c, plus noise. Standard library only."""
import gzip
import random
import struct
import sys


def idx(dims, data):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + struct.pack(">%dI" % len(dims), *dims) + bytes(data)


def split(count, rng):
    images, labels = [], []
    for i in range(count):
        c = i % 10
        img = [rng.randrange(40) for _ in range(784)]
        for r in range(4):
            for k in range(4):
                img[(2 + 2 * c + r) * 28 + 2 + 2 * c + k] = 200 + rng.randrange(56)
        images += img
        labels.append(c)
    return images, labels


def main():
    out, ntrain, ntest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    gz = "--gzip" in sys.argv
    rng = random.Random(42)
    for name, count in (("train", ntrain), ("t10k", ntest)):
        images, labels = split(count, rng)
        for kind, blob in (("images-idx3-ubyte", idx([count, 28, 28], images)),
                           ("labels-idx1-ubyte", idx([count], labels))):
            path = "%s/%s-%s" % (out, name, kind)
            if gz:
                with gzip.open(path + ".gz", "wb") as f:
                    f.write(blob)
            else:
                with open(path, "wb") as f:
                    f.write(blob)


if __name__ == "__main__":
    main()
