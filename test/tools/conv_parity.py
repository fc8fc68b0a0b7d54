#!/usr/bin/env python3
"""conv_parity.py NETC DATA_DIR WORK [winograd]: a small CNN (conv2d, relu,
max_pool2d over 27 x 27, whose windows leave the last row and column out,
conv2d with stride and padding, avg_pool2d, linear; with `winograd`, 3 x 3
convolutions of 32 and 16 input channels, each with its ReLU and 2 x 2
max pooling, which netc computes by Winograd's F(2x2, 3x3) (and the first
one's input gradient), an odd output
size among them, trained 30 SGD steps: at 16 channels Adam turns roundoff
in near-zero gradients into whole steps, and after 35-40 a ReLU or pooling
decision flips apart, with either lowering) in netc and in PyTorch
from the same initial weights: PyTorch writes them, netc trains 50 Adam
steps on the batches in file order (--no-shuffle), PyTorch does the same;
the weights must agree to 1e-4 relative (max(1e-5) absolute), and the
netc weights load into the PyTorch nn.Sequential with strict=True. Prints
'parity ok' and the worst difference. Needs PyTorch."""
import os
import subprocess
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_state  # noqa: E402
from torch_crosscheck import read_idx  # noqa: E402

netc, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
winograd = len(sys.argv) > 4 and sys.argv[4] == "winograd"
steps = 30 if winograd else 50
LAYERS = """sequence net = conv2d(1, 4, 2) -> relu -> max_pool2d(2)
            -> conv2d(4, 6, [3, 2], stride = [2, 1], padding = [1, 0]) -> relu -> avg_pool2d(2)
            -> flatten() -> linear(108, 10)"""
if winograd:  # 28 -> 14 -> 14 -> 7 -> 9 -> 4
    LAYERS = """sequence net = conv2d(1, 32, 3, padding = 1) -> relu -> max_pool2d(2)
            -> conv2d(32, 16, 3, padding = 1) -> relu -> max_pool2d(2)
            -> conv2d(16, 24, 3, padding = 2, bias = 0) -> relu -> max_pool2d(2)
            -> flatten() -> linear(384, 10)"""
MODEL = """data mnist(dir = "%s", batch = 8)
input  image: f32[N, 1, 28, 28]
target label: i64[N]
%s
scores = image -> net
loss cross_entropy(scores, label)
optimizer %s
""" % (os.path.abspath(data), LAYERS, "sgd(lr = 0.05)" if winograd else "adam(lr = 0.01)")

torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 4, 2), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0)), nn.ReLU(),
                    nn.AvgPool2d(2), nn.Flatten(), nn.Linear(108, 10))
if winograd:
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 24, 3, padding=2, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(384, 10))
torch_state.write(os.path.join(work, "init.safetensors"), net.state_dict(), "net.")
with open(os.path.join(work, "cnn.nn"), "w") as f:
    f.write(MODEL)
subprocess.run([netc, os.path.join(work, "cnn.nn"), "-o", os.path.join(work, "cnn")], check=True)
subprocess.run([os.path.join(work, "cnn"), "--init", os.path.join(work, "init.safetensors"),
                "--steps", str(steps), "--no-shuffle", "--save", os.path.join(work, "after.safetensors"),
                "--checkpoint", os.path.join(work, "after.ckpt")], check=True,
               stdout=subprocess.DEVNULL)

(count, rows, cols), pixels = read_idx(os.path.join(data, "train-images-idx3-ubyte"))
_, labels = read_idx(os.path.join(data, "train-labels-idx1-ubyte"))
x = torch.tensor(list(pixels), dtype=torch.float32).reshape(count, 1, rows, cols) / 255
y = torch.tensor(list(labels), dtype=torch.int64)
opt = torch.optim.SGD(net.parameters(), lr=0.05) if winograd else torch.optim.Adam(
    net.parameters(), lr=0.01)
for step in range(steps):
    opt.zero_grad()
    at = step % ((len(y) + 7) // 8) * 8  # epochs in file order, as --no-shuffle
    loss = nn.functional.cross_entropy(net(x[at:at + 8]), y[at:at + 8])
    loss.backward()
    opt.step()

state = torch_state.read(os.path.join(work, "after.safetensors"), "net.")
worst = torch_state.compare(state, net.state_dict(), floor=1e-5)
net.load_state_dict(state, strict=True)
print("parity ok, worst %.3f of the tolerance" % worst)
