#!/usr/bin/env python3
"""torch_crosscheck.py WEIGHTS DATA_DIR PREDICT_OUTPUT [SOFTMAX]

Loads a netc weights file into the course's PyTorch FeedForwardNet with
load_state_dict(strict=True), runs the test images of DATA_DIR, and checks
that its predictions and confidences match what netc's --predict printed.
SOFTMAX=1 builds the course's exact net (Softmax at the end). Needs
PyTorch (Debian's python3-torch)."""
import gzip
import os
import re
import struct
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


class FeedForwardNet(nn.Module):  # the course's model
    def __init__(self, softmax):
        super().__init__()
        self.flatten = nn.Flatten()
        layers = [nn.Linear(28 * 28, 256), nn.ReLU(), nn.Linear(256, 10)]
        if softmax:
            layers.append(nn.Softmax(dim=1))
        self.dense_layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.dense_layers(self.flatten(x))


def read_idx(path):
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if opener is gzip.open else path, "rb") as f:
        data = f.read()
    dims = struct.unpack(">%dI" % data[3], data[4:4 + 4 * data[3]])
    return dims, data[4 + 4 * data[3]:]


def main():
    weights, data_dir, predict_out = sys.argv[1:4]
    softmax = len(sys.argv) > 4 and sys.argv[4] == "1"
    tensors, _ = safetensors_io.read(weights)
    net = FeedForwardNet(softmax)
    net.load_state_dict({k: torch.tensor(v).reshape(shape) for k, (shape, v) in tensors.items()},
                        strict=True)
    rows = [l for l in open(predict_out) if re.match(r"^\s+\d+\s", l)]
    dims, pixels = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte"))
    n = len(rows)
    x = torch.tensor(list(pixels[:n * 784]), dtype=torch.float32).reshape(n, 1, 28, 28) / 255
    with torch.no_grad():
        out = net(x)
        probs = out if softmax else torch.softmax(out, dim=1)
    bad = 0
    worst = 0.0
    for i, line in enumerate(rows):
        fields = line.split()
        predicted, confidence = int(fields[1]), float(fields[3].rstrip("%")) / 100
        mine = int(probs[i].argmax())
        worst = max(worst, abs(confidence - float(probs[i][mine])))
        if mine != predicted:
            bad += 1
            print("example %d: netc predicts %d, PyTorch %d" % (i, predicted, mine))
    print("%d of %d predictions agree; confidences differ by at most %.2e" % (n - bad, n, worst))
    sys.exit(1 if bad or worst > 1e-4 else 0)


if __name__ == "__main__":
    main()
