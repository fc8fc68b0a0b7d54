#!/usr/bin/env python3
"""torch_module_check.py NETC DATA WORK: runtime/python/netc_torch.py, the
module PyTorch users load netc's files with, on examples/lenet.nn (float
weights and batch norm's I64 counter): PyTorch's initial weights saved
with it train in netc (--init), netc's weights load into PyTorch's LeNet
with strict=True and the same values as the reference reader's, a
checkpoint splits into weights, optimizer state and counters, and broken
files are refused naming them. Prints what it checked. Needs PyTorch."""
import os
import subprocess
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(root, "bench"))
sys.path.insert(0, os.path.join(root, "runtime", "python"))
import netc_torch  # noqa: E402
import torch_reference  # noqa: E402
import torch_state  # noqa: E402

netc, data, work = sys.argv[1:4]
exe = os.path.join(work, "lenet")
subprocess.run([netc, os.path.join(root, "examples", "lenet.nn"), "-o", exe], check=True)

torch.manual_seed(0)
model = torch_reference.lenet()
init = os.path.join(work, "init.safetensors")
netc_torch.save(model.state_dict(), init, prefix="lenet.")
# netc reads it as PyTorch wrote it: --steps 0 writes the weights it starts from.
start = os.path.join(work, "start.safetensors")
subprocess.run([exe, "--data", data, "--init", init, "--steps", "0", "--save", start,
                "--checkpoint", os.path.join(work, "start.ckpt")],
               check=True, stdout=subprocess.DEVNULL)
back = netc_torch.load(start, prefix="lenet.")
same = all(torch.equal(back[k], v) for k, v in model.state_dict().items())
print("save -> netc --init -> load: " + ("bitwise equal" if same else "DIFFERENT"))

after = os.path.join(work, "after.safetensors")
ckpt = os.path.join(work, "after.ckpt")
subprocess.run([exe, "--data", data, "--init", init, "--steps", "3", "--save", after,
                "--checkpoint", ckpt], check=True, stdout=subprocess.DEVNULL)
state = netc_torch.load(after, prefix="lenet.")
model.load_state_dict(state, strict=True)
reference = torch_state.read(after, prefix="lenet.")
agree = all(torch.equal(state[k], reference[k]) and state[k].dtype == reference[k].dtype
            for k in reference)
kinds = sorted({str(v.dtype) for v in state.values()})
print(f"load: strict load_state_dict ok, {len(state)} tensors ({', '.join(kinds)}), "
      + ("the reference reader's values" if agree else "DIFFERENT values"))

weights, optimizer, counters = netc_torch.load_checkpoint(ckpt)
slots = sorted({slot for s in optimizer.values() for slot in s})
print(f"checkpoint: {len(weights)} weights, optimizer state {', '.join(slots)} for "
      f"{len(optimizer)} parameters, step {counters['step']}")

broken = os.path.join(work, "broken.safetensors")
with open(after, "rb") as f, open(broken, "wb") as g:
    g.write(f.read()[:200])
for bad, call in ((broken, netc_torch.load), (after, netc_torch.load_checkpoint)):
    try:
        call(bad)
        print("not refused:", bad)
    except ValueError as e:
        print("refused:", str(e).replace(work + "/", ""))
