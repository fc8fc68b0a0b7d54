"""Writes reference.safetensors: torchaudio 0.13's spectrograms of clips/
for every `name = audio -> layer(args)` line of cases.nn (see README.md).
Run with Debian's python3 (PyTorch and torchaudio): python3 make_reference.py"""
import glob
import os
import re
import sys

import torch
import torchaudio

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
import safetensors_io  # noqa: E402

LENGTH = 8000


def arguments(text):
    out = {}
    for key, value in re.findall(r'(\w+)\s*=\s*("[^"]*"|[\w.]+)', text):
        if value.startswith('"'):
            v = value.strip('"')
            out[key] = None if v == "none" else v
        elif value in ("true", "false"):
            out[key] = value == "true"
        else:
            out[key] = float(value) if "." in value else int(value)
    return out


def main():
    clips = []
    for path in sorted(glob.glob(os.path.join(here, "clips", "*.wav"))):
        w, rate = torchaudio.load(path)
        assert rate == 8000
        w = w[0, :LENGTH]
        clips.append(torch.nn.functional.pad(w, (0, LENGTH - w.shape[0])))
    batch = torch.stack(clips)
    tensors = {}
    for line in open(os.path.join(here, "cases.nn")):
        m = re.match(r"(\w+) = audio -> (\w+)\((.*)\)\s*$", line)
        if not m:
            continue
        name, layer, args = m.groups()
        kw = arguments(args)
        if layer == "mel_spectrogram":
            transform = torchaudio.transforms.MelSpectrogram(**kw)
        else:
            transform = torchaudio.transforms.Spectrogram(**kw)
        out = transform(batch)
        tensors[name] = (list(out.shape), out.flatten().tolist())
        print(name, tuple(out.shape))
    safetensors_io.write(os.path.join(here, "reference.safetensors"), tensors,
                         {"torchaudio": torchaudio.__version__})


main()
