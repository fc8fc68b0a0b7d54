"""resampled.safetensors: torchaudio 0.13's resampling of tone-16k.wav and
tone-44k-stereo.wav to 8 kHz (each channel, then their mean), the first 400
samples, for WavTest.cpp. Run by scripts/make-wav-fixtures.sh (PyTorch)."""
import os
import sys

import torchaudio
import torchaudio.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
import safetensors_io  # noqa: E402

out = {}
for name in ("tone-16k", "tone-44k-stereo"):
    w, rate = torchaudio.load(os.path.join(here, name + ".wav"))
    r = F.resample(w, rate, 8000)
    out[name] = ([400], r.mean(0)[:400].tolist())
    if r.shape[0] > 1:
        out[name + " right"] = ([400], r[1][:400].tolist())
    print(name, rate, tuple(w.shape), "->", tuple(r.shape))
safetensors_io.write(os.path.join(here, "resampled.safetensors"), out)
