#!/usr/bin/env python3
"""example_parity.py NETC EXAMPLE DATA WORK STEPS: an example model
(examples/EXAMPLE.nn: lenet or course_cnn) in netc and in PyTorch 1.13,
built by bench/torch_reference.py with the same layers and names.

PyTorch writes the initial weights; netc trains STEPS Adam steps from them
and saves its weights, which must load into the PyTorch model with
strict=True. In evaluation mode both then score the test set: the test
losses must agree to 1e-4 relative, and --predict-file must give the
classes and confidences PyTorch gives. (Training itself is compared step
by step on the smaller models of test/parity: in a model this deep, Adam
turns roundoff in near-zero gradients into whole steps.) Prints 'parity
ok' and the numbers.
Needs PyTorch."""
import os
import re
import subprocess
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "bench"))
import torch_state  # noqa: E402
import torch_reference  # noqa: E402

netc, example, data, work, steps = sys.argv[1:6]
steps = int(steps)
source = os.path.join(here, "..", "..", "examples", example + ".nn")
prefix = {"lenet": "lenet.", "course_cnn": ""}[example]
files = {"lenet": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
         "course_cnn": ("train-images.idx", "train-labels.idx", "test-images.idx",
                        "test-labels.idx")}[example]

torch.manual_seed(0)
model = getattr(torch_reference, example)()


init = os.path.join(work, "init.safetensors")
torch_state.write(init, model.state_dict(), prefix)
exe = os.path.join(work, example)
subprocess.run([netc, source, "-o", exe], check=True)
after = os.path.join(work, "after.safetensors")
subprocess.run([exe, "--data", data, "--init", init, "--steps", str(steps),
                "--save", after, "--checkpoint", os.path.join(work, "after.ckpt")],
               check=True, stdout=subprocess.DEVNULL)
evaluated = subprocess.run([exe, "--data", data, "--eval", "--init", after], check=True,
                           capture_output=True, text=True).stdout
predicted = subprocess.run([exe, "--data", data, "--init", after, "--predict-file",
                            os.path.join(data, files[2])], check=True, capture_output=True,
                           text=True).stdout

x, y = torch_reference.load(data, files[0], files[1])
model.load_state_dict(torch_state.read(after, prefix), strict=True)
model.eval()
tx, ty = torch_reference.load(data, files[2], files[3])
with torch.no_grad():
    scores = model(tx)
want_loss = torch.nn.functional.cross_entropy(scores, ty).item()
match = re.search(r"test loss ([0-9.]+)", evaluated)
if not match or abs(float(match.group(1)) - want_loss) > 1e-4 * max(1.0, want_loss):
    sys.exit("evaluation loss: netc %s, PyTorch %.6f\n%s" % (match and match.group(1), want_loss,
                                                             evaluated))
# row,predicted,confidence: the class's name (the .nn file's, else its
# number) and its softmax probability.
names = re.search(r'classes = "([^"]*)"', open(source).read())
names = [n.strip() for n in names.group(1).split(",")] if names else None
rows = [line.split(",") for line in predicted.strip().splitlines()][1:]
classes = [names.index(r[1]) if names else int(r[1]) for r in rows]
want_classes = scores.argmax(1).tolist()
confidence = torch.softmax(scores, 1).max(1).values.tolist()
for r, want in zip(rows, confidence):
    if abs(float(r[2]) - want) > 1e-4:
        sys.exit("row %s: confidence %s, PyTorch %.6f" % (r[0], r[2], want))
if classes != want_classes:
    differ = sum(a != b for a, b in zip(classes, want_classes))
    sys.exit("%d of %d predicted classes differ from PyTorch's" % (differ, len(classes)))
print("parity ok: %s, %d steps, test loss %s (PyTorch %.4f), %d predictions equal"
      % (example, steps, match.group(1), want_loss, len(classes)))
