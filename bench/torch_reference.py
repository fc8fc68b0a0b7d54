#!/usr/bin/env python3
"""The PyTorch side of bench/run.sh: the course's models, timed in-process.

  torch_reference.py mnist DATA_DIR THREADS   -> seconds of the faster of two
                                                training epochs
  torch_reference.py sine                     -> seconds for 2000 steps
Data is preloaded as float tensors (no DataLoader), Adam lr 1e-3, batch 128.
Prints one JSON object."""
import gzip
import json
import math
import os
import struct
import sys
import time

import torch


def read_idx(path):
    if not os.path.exists(path):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    n = data[3]
    dims = struct.unpack(">%dI" % n, data[4:4 + 4 * n])
    return torch.frombuffer(bytearray(data[4 + 4 * n:]), dtype=torch.uint8).reshape(dims)


def mnist(data_dir, threads, epochs=2):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte")).float().div_(255).unsqueeze(1)
    y = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte")).long()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    best = float("inf")
    for _ in range(epochs):  # the fastest epoch: the first one also warms up
        perm = torch.randperm(len(y))
        start = time.perf_counter()
        for b in range(0, len(y), 128):
            idx = perm[b:b + 128]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        best = min(best, time.perf_counter() - start)
    return best


def sine():
    torch.set_num_threads(1)
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    a, b, c, d = (torch.randn((), requires_grad=True) for _ in range(4))
    start = time.perf_counter()
    for _ in range(2000):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= 1e-6 * p.grad
                p.grad = None
    return time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1] == "mnist":
        print(json.dumps({"seconds": mnist(sys.argv[2], int(sys.argv[3]))}))
    else:
        print(json.dumps({"seconds": sine()}))
