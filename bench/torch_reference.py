#!/usr/bin/env python3
"""The PyTorch side of bench/run.sh: the course's models, timed in-process.

  torch_reference.py mnist DATA_DIR THREADS   -> seconds of the faster of two
                                                training epochs
  torch_reference.py lenet DATA_DIR THREADS   -> the same for examples/lenet.nn
  torch_reference.py course_cnn DIR THREADS   -> the same for examples/course_cnn.nn
                                                (DIR: its IDX files, f32 1x64x63)
  torch_reference.py sine                     -> seconds for 2000 steps
  torch_reference.py accuracy MODEL DIR EPOCHS SEED -> test accuracy after
                                                training (one thread)
Data is preloaded as float tensors (no DataLoader), Adam lr 1e-3, batch 128,
the models in training mode. Prints one JSON object."""
import collections
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
    kind, n = data[2], data[3]
    dims = struct.unpack(">%dI" % n, data[4:4 + 4 * n])
    body = bytearray(data[4 + 4 * n:])
    if kind == 0x08:
        return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)
    assert kind == 0x0D, "u8 or f32 IDX files"
    return torch.frombuffer(body, dtype=torch.float32).reshape(dims).byteswap() \
        if hasattr(torch.Tensor, "byteswap") else \
        torch.tensor(struct.unpack(">%df" % (len(body) // 4), body)).reshape(dims)


def lenet():
    """examples/lenet.nn, its weights file's names under "lenet."."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(6, 16, 5, bias=False), nn.BatchNorm2d(16),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                         nn.Linear(120, 84), nn.ReLU(), nn.Dropout(0.5), nn.Linear(84, 10))


def course_cnn():
    """examples/course_cnn.nn, named as its weights file names them."""
    nn = torch.nn
    blocks = [("conv%d" % (i + 1), nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=1, padding=2),
                                                   nn.ReLU(), nn.MaxPool2d(2)))
              for i, (c_in, c_out) in enumerate(((1, 16), (16, 32), (32, 64), (64, 128)))]
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(128 * 5 * 5, 10))
    return nn.Sequential(collections.OrderedDict(blocks + [("classifier", classifier)]))


def mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 10))


def load(data_dir, images, labels):
    x = read_idx(os.path.join(data_dir, images))
    x = x.float().div_(255) if x.dtype == torch.uint8 else x
    return x.unsqueeze(1) if x.dim() == 3 else x, read_idx(os.path.join(data_dir, labels)).long()


def mnist(data_dir, threads, epochs=2, make=mlp, files=("train-images-idx3-ubyte",
                                                         "train-labels-idx1-ubyte")):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = load(data_dir, *files)
    model = make()
    model.train()
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


def accuracy(name, data_dir, epochs, seed, files):
    """Trains `name` for `epochs` from seed `seed` (shuffled batches of 128,
    Adam lr 1e-3), then returns its test accuracy in evaluation mode, %."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x, y = load(data_dir, files[0], files[1])
    tx, ty = load(data_dir, files[2], files[3])
    model = globals()[name]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y))
        for b in range(0, len(y), 128):
            idx = perm[b:b + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return 100.0 * (model(tx).argmax(1) == ty).float().mean().item()


def load_clips(folder, length=8000):
    """The spoken-digit clips as netc's audio source reads them (sorted by
    name, padded or cut to `length` samples): training and test (clip
    index 0-4) waveforms [N, 1, length] and labels (the leading digit)."""
    import glob
    import os
    import re
    import torchaudio
    sets = {False: ([], []), True: ([], [])}
    for path in sorted(glob.glob(os.path.join(folder, "*.wav"))):
        name = os.path.basename(path)
        w, _ = torchaudio.load(path)
        w = w.mean(0)[:length]
        w = torch.nn.functional.pad(w, (0, length - w.shape[0]))
        xs, ys = sets[bool(re.search(r"_[0-4]\.wav$", name))]
        xs.append(w.unsqueeze(0))
        ys.append(int(name[0]))
    return [(torch.stack(xs), torch.tensor(ys)) for xs, ys in (sets[False], sets[True])]


def spoken_digits(folder, epochs, seed, threads):
    """examples/spoken_digits.nn in PyTorch + torchaudio: MelSpectrogram and
    log(mel + 1e-6) on each batch, the course CNN, Adam lr 1e-3, batch 64.
    Returns (test accuracy %, the fastest epoch's seconds)."""
    import torchaudio
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    (x, y), (tx, ty) = load_clips(folder)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=512, hop_length=128,
                                               n_mels=64)
    model = course_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y))
        for b in range(0, len(y), 64):
            idx = perm[b:b + 64]
            opt.zero_grad()
            scores = model(torch.log(mel(x[idx]) + 1e-6))
            torch.nn.functional.cross_entropy(scores, y[idx]).backward()
            opt.step()
        seconds = min(seconds, time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        correct = (model(torch.log(mel(tx) + 1e-6)).argmax(1) == ty).float().mean().item()
    return 100.0 * correct, seconds


def frontend(folder, threads, repeats=3):
    """log(MelSpectrogram + 1e-6) of the training clips (loaded once), in
    batches of 64 as bench/frontend.nn: the best of `repeats` passes, s."""
    import torchaudio
    torch.set_num_threads(threads)
    (clips, _), _ = load_clips(folder)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=512, hop_length=128,
                                               n_mels=64)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for b in range(0, len(clips), 64):
                torch.log(mel(clips[b:b + 64]) + 1e-6)
            best = min(best, time.perf_counter() - start)
    return best


FILES = {"mnist": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
         "course_cnn": ("train-images.idx", "train-labels.idx", "test-images.idx",
                        "test-labels.idx")}


if __name__ == "__main__":
    if sys.argv[1] == "mnist":
        print(json.dumps({"seconds": mnist(sys.argv[2], int(sys.argv[3]))}))
    elif sys.argv[1] == "lenet":
        print(json.dumps({"seconds": mnist(sys.argv[2], int(sys.argv[3]), make=lenet)}))
    elif sys.argv[1] == "accuracy":  # accuracy MODEL DATA_DIR EPOCHS SEED
        files = FILES["course_cnn" if sys.argv[2] == "course_cnn" else "mnist"]
        print(json.dumps({"accuracy": accuracy(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                               int(sys.argv[5]), files)}))
    elif sys.argv[1] == "spoken_digits":  # spoken_digits FOLDER EPOCHS SEED THREADS
        acc, sec = spoken_digits(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        print(json.dumps({"accuracy": acc, "seconds": sec}))
    elif sys.argv[1] == "spoken_digits_epoch":  # spoken_digits_epoch FOLDER THREADS
        print(json.dumps({"seconds": spoken_digits(sys.argv[2], 2, 0, int(sys.argv[3]))[1]}))
    elif sys.argv[1] == "frontend":  # frontend FOLDER THREADS: seconds for the training clips
        print(json.dumps({"seconds": frontend(sys.argv[2], int(sys.argv[3]))}))
    elif sys.argv[1] == "course_cnn":
        print(json.dumps({"seconds": mnist(sys.argv[2], int(sys.argv[3]), make=course_cnn,
                                           files=("train-images.idx", "train-labels.idx"))}))
    else:
        print(json.dumps({"seconds": sine()}))
