"""Compares netc's spectrograms (a --print-file) with torchaudio's
(test/parity/audio/reference.safetensors): in every frame of every clip,
max |netc - torchaudio| <= 1e-4 x that frame's largest value, and frames
that are silent in torchaudio's (all zero) are zero in netc's too.
Standard library only.  Usage: spectrogram_parity.py NETC REFERENCE"""
import sys

import safetensors_io


def main():
    got, _ = safetensors_io.read(sys.argv[1])
    want, _ = safetensors_io.read(sys.argv[2])
    worst, ok = 0.0, True
    for name, (shape, ref) in sorted(want.items()):
        if name not in got or got[name][0] != shape:
            print(f"{name}: netc has {got.get(name, ([],))[0]}, torchaudio {shape}")
            ok = False
            continue
        values = got[name][1]
        clips, bands, frames = shape
        silent = 0
        for c in range(clips):
            for t in range(frames):
                at = [(c * bands + b) * frames + t for b in range(bands)]
                top = max(ref[i] for i in at)
                err = max(abs(values[i] - ref[i]) for i in at)
                if top == 0:
                    silent += 1
                    if err != 0:
                        print(f"{name}: clip {c} frame {t} is silent in torchaudio's, not in netc's")
                        ok = False
                    continue
                worst = max(worst, err / (1e-4 * top))
                if err > 1e-4 * top:
                    print(f"{name}: clip {c} frame {t}: error {err:.3g}, frame max {top:.3g}")
                    ok = False
        print(f"{name}: {clips} clips x {frames} frames ({silent} silent) of {bands} bands")
    print(f"worst error: {100 * worst:.2f}% of the tolerance")
    print("spectrogram parity ok" if ok else "spectrogram parity FAILED")
    sys.exit(0 if ok else 1)


main()
