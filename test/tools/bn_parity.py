#!/usr/bin/env python3
"""bn_parity.py NETC DATA_DIR WORK: a CNN with batch norm (2-d and 1-d) and
dropout (p = 0) in netc and in PyTorch from the same weights (no bias
before a batch norm: its gradient is zero up to roundoff, which Adam
magnifies into a random walk in both): PyTorch writes
them, both train 50 Adam steps on the batches in file order (--no-shuffle),
in training mode; then both evaluate the test set in evaluation mode. The
parameters and the running statistics (buffers) must agree to 1e-3
relative (measured: 4% of that), the
evaluation losses to 1e-4, and netc's weights file must load into PyTorch's
nn.Sequential with strict=True. Prints 'parity ok' and the worst
difference. Needs PyTorch."""
import os
import re
import subprocess
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_state  # noqa: E402
from torch_crosscheck import read_idx  # noqa: E402

netc, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
STEPS, BATCH = 50, 8
MODEL = """data mnist(dir = "%s", batch = %d)
input  image: f32[N, 1, 28, 28]
target label: i64[N]
sequence net = conv2d(1, 4, 3, padding = 1, bias = 0) -> batch_norm2d(4) -> relu -> max_pool2d(2)
            -> conv2d(4, 6, [3, 2], stride = [2, 1], padding = [1, 0], bias = 0)
            -> batch_norm2d(6, momentum = 0.2) -> relu -> avg_pool2d(2)
            -> flatten() -> linear(108, 16, bias = 0) -> batch_norm1d(16) -> relu -> dropout(0)
            -> linear(16, 10)
scores = image -> net
loss cross_entropy(scores, label)
optimizer adam(lr = 0.01)
""" % (os.path.abspath(data), BATCH)

torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), bias=False),
                    nn.BatchNorm2d(6, momentum=0.2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                    nn.Linear(108, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0),
                    nn.Linear(16, 10))
# Non-trivial batch-norm weights and statistics to start from.
with torch.no_grad():
    for m in net:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.8, 1.2)
            m.num_batches_tracked.fill_(3)


torch_state.write(os.path.join(work, "init.safetensors"), net.state_dict(), "net.")
with open(os.path.join(work, "bn.nn"), "w") as f:
    f.write(MODEL)
exe = os.path.join(work, "bn")
subprocess.run([netc, os.path.join(work, "bn.nn"), "-o", exe], check=True)
subprocess.run([exe, "--init", os.path.join(work, "init.safetensors"), "--steps", str(STEPS),
                "--no-shuffle", "--save", os.path.join(work, "after.safetensors")], check=True,
               stdout=subprocess.DEVNULL)
evaluated = subprocess.run([exe, "--eval", "--init", os.path.join(work, "after.safetensors")], check=True,
                           capture_output=True, text=True).stdout


def images(prefix):
    (count, rows, cols), pixels = read_idx(os.path.join(data, prefix + "-images-idx3-ubyte"))
    _, labels = read_idx(os.path.join(data, prefix + "-labels-idx1-ubyte"))
    x = torch.tensor(list(pixels), dtype=torch.float32).reshape(count, 1, rows, cols) / 255
    return x, torch.tensor(list(labels), dtype=torch.int64)


x, y = images("train")
batches = len(y) // BATCH  # netc drops no example: the last batch may be short
opt = torch.optim.Adam(net.parameters(), lr=0.01)
net.train()
for step in range(STEPS):
    at = step % ((len(y) + BATCH - 1) // BATCH) * BATCH
    opt.zero_grad()
    loss = nn.functional.cross_entropy(net(x[at:at + BATCH]), y[at:at + BATCH])
    loss.backward()
    opt.step()

state = torch_state.read(os.path.join(work, "after.safetensors"), "net.")
worst = torch_state.compare(state, net.state_dict(), floor=1e-6)
net.load_state_dict(state, strict=True)

net.eval()
tx, ty = images("t10k")
with torch.no_grad():
    want = nn.functional.cross_entropy(net(tx), ty).item()
match = re.search(r"test loss ([0-9.]+)", evaluated)
if not match:
    sys.exit("no test loss in netc --eval's output:\n" + evaluated)
if abs(float(match.group(1)) - want) > 1e-4 * max(1.0, abs(want)):
    sys.exit("evaluation loss %s, PyTorch %.6f" % (match.group(1), want))
print("parity ok, worst %.3f of the tolerance; evaluation loss %s (PyTorch %.4f)"
      % (worst, match.group(1), want))
