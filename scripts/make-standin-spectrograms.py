#!/usr/bin/env python3
"""make-standin-spectrograms.py [DIR] [--train N] [--test N]: spectrogram-
shaped data for examples/course_cnn.nn until netc reads audio itself (the
audio issue): 1 x 64 x 63 images (64 mel bands, 63 frames), 10 classes,
as f32 IDX files train-images.idx, train-labels.idx, test-images.idx,
test-labels.idx in DIR (default data/spectrograms).

Class c is a "spoken digit" stand-in: a harmonic stack whose fundamental
band rises with c (bands f0, 2 f0, ...), switched on for a random span of
frames with a random onset, a per-example pitch drift, and noise; values
are log energies scaled to about [0, 1], as a normalised log-mel
spectrogram. Deterministic (seeded). Default sizes: 2,700 training and
300 test examples, the Free Spoken Digit Dataset's 3,000 split 90/10.
Standard library only."""
import array
import math
import os
import random
import struct
import sys

BANDS, FRAMES, CLASSES = 64, 63, 10


def example(label, rng):
    f0 = 3 + 2.2 * label + rng.uniform(-0.6, 0.6)
    drift = rng.uniform(-0.04, 0.04)
    onset = rng.randrange(0, 16)
    span = rng.randrange(30, FRAMES - onset + 1)
    loud = rng.uniform(0.6, 1.0)
    out = array.array("f", bytes(4 * BANDS * FRAMES))
    for t in range(FRAMES):
        on = onset <= t < onset + span
        envelope = math.sin(math.pi * (t - onset) / span) if on else 0.0
        pitch = f0 * (1 + drift * (t - onset))
        for b in range(BANDS):
            energy = 0.02 + 0.05 * rng.random()
            if on:
                for h in range(1, 6):
                    d = b - h * pitch
                    energy += loud * envelope / h * math.exp(-0.5 * d * d)
            out[b * FRAMES + t] = min(1.0, math.log1p(20 * energy) / math.log1p(20))
    return out


def write(path, dims, code, payload):
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(">%dI" % len(dims), *dims))
        f.write(payload)
    os.replace(path + ".tmp", path)


def split(directory, name, count, rng):
    images = array.array("f")
    labels = bytearray()
    for i in range(count):
        label = i % CLASSES
        images.extend(example(label, rng))
        labels.append(label)
    if sys.byteorder == "little":
        images.byteswap()  # IDX is big-endian
    write(os.path.join(directory, name + "-images.idx"), (count, 1, BANDS, FRAMES), 0x0D,
          images.tobytes())
    write(os.path.join(directory, name + "-labels.idx"), (count,), 0x08, bytes(labels))


def main():
    args = sys.argv[1:]
    sizes = {"--train": 2700, "--test": 300}
    directory = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                             "spectrograms")
    while args:
        a = args.pop(0)
        if a in sizes and args:
            sizes[a] = int(args.pop(0))
        elif not a.startswith("-"):
            directory = a
        else:
            sys.exit("usage: make-standin-spectrograms.py [DIR] [--train N] [--test N]")
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(2024)
    split(directory, "train", sizes["--train"], rng)
    split(directory, "test", sizes["--test"], rng)
    print("%d training and %d test stand-in spectrograms in %s"
          % (sizes["--train"], sizes["--test"], os.path.normpath(directory)))


if __name__ == "__main__":
    main()
