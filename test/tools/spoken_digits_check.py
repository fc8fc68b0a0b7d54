#!/usr/bin/env python3
"""spoken_digits_check.py NETC WORK [--torch]: examples/spoken_digits.nn end
to end on real recordings (../shared/data/fsdd beside the project, or
$NETC_FSDD), else (or with NETC_SPOKEN_DIGITS=synth) on a set
scripts/make-spoken-digits.sh synthesises with espeak-ng: trains the example (15 epochs, 2 threads), checks its test
accuracy, classifies one clip with --predict-file, and with --torch loads
the trained weights into PyTorch (bench/torch_reference.py's course_cnn
after torchaudio's MelSpectrogram and the log, strict=True) and checks that
it classifies the test clips as netc's --eval does. Prints what it checked.
"""
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
netc, work = sys.argv[1], sys.argv[2]
use_torch = "--torch" in sys.argv


def data_folder():
    # NETC_SPOKEN_DIGITS=synth: the synthesised set even where FSDD is.
    for folder in (os.environ.get("NETC_FSDD", ""),
                   os.path.join(root, "..", "shared", "data", "fsdd", "recordings")):
        if folder and os.path.isdir(folder) and os.environ.get("NETC_SPOKEN_DIGITS") != "synth":
            return os.path.normpath(folder), "FSDD", 95.0
    synth = os.path.join(work, "synth")
    subprocess.run([os.path.join(root, "scripts", "make-spoken-digits.sh"), synth, "20"],
                   check=True, stdout=subprocess.DEVNULL)
    return synth, "espeak-ng", 90.0


def run(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


data, kind, least = data_folder()
exe = os.path.join(work, "spoken_digits")
weights = os.path.join(work, "spoken_digits.safetensors")
run(netc, os.path.join(root, "examples", "spoken_digits.nn"), "-o", exe)
out = run(exe, "--data", data, "--threads", "2", "--save", weights, "--checkpoint",
          os.path.join(work, "spoken_digits.ckpt"))
summary = re.search(r"\((\d+) training, (\d+) test clips\)", out)
accuracy = float(re.findall(r"epoch 15/15 .* test accuracy ([0-9.]+)%", out)[-1])
print(f"data: {kind}, {summary.group(1)} training, {summary.group(2)} test clips")
print(f"test accuracy {accuracy:.2f}% " + ("ok" if accuracy >= least else f"BELOW {least}%"))

clip = sorted(f for f in os.listdir(data) if re.search(r"_0\.wav$", f))[0]
answer = run(exe, "--data", data, "--init", weights, "--predict-file", os.path.join(data, clip))
lines = answer.strip().split("\n")
ok = lines[0] == "file,predicted,confidence" and re.fullmatch(
    re.escape(os.path.join(data, clip)) + r",[0-9],(0|1)\.\d{6}", lines[1])
print("predict-file " + ("ok" if ok else "BAD: " + answer))

if use_torch:
    import torch
    sys.path.insert(0, here)
    sys.path.insert(0, os.path.join(root, "bench"))
    import torch_reference
    import torch_state
    import torchaudio
    evaluated = run(exe, "--data", data, "--init", weights, "--eval")
    netc_acc = float(re.search(r"test accuracy ([0-9.]+)%", evaluated).group(1))
    model = torch_reference.course_cnn()
    model.load_state_dict(torch_state.read(weights), strict=True)
    model.eval()
    _, (tx, ty) = torch_reference.load_clips(data)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=512, hop_length=128,
                                               n_mels=64)
    with torch.no_grad():
        torch_acc = 100.0 * (model(torch.log(mel(tx) + 1e-6)).argmax(1) == ty).float().mean().item()
    # A clip whose two best scores are within roundoff may go either way.
    same = abs(torch_acc - netc_acc) <= 100.0 / len(ty) + 1e-6
    print(f"pytorch cross-check {'ok' if same else 'DIFFERS'}: netc {netc_acc:.2f}%, "
          f"PyTorch {torch_acc:.2f}% on the same weights")
