"""Writes folders of short WAVE clips for the audio source's tests, with
Python's wave module (no sox needed): two classes of tones, 200 Hz ("low")
and 1000 Hz ("high"), 8 kHz, in several encodings and lengths.

  make_clips.py DIR            DIR/low/low_K.wav, DIR/high/high_K.wav, K = 0..9
  make_clips.py DIR --flat     DIR/0_K.wav (low), DIR/1_K.wav (high)
"""
import math
import struct
import sys
import wave


def write(path, samples, rate=8000, width=2, channels=1):
    frames = bytearray()
    for s in samples:
        for c in range(channels):
            v = s * (1.0 if c == 0 else 0.5)
            if width == 1:
                frames += struct.pack("<B", max(0, min(255, int(round(v * 127)) + 128)))
            elif width == 2:
                frames += struct.pack("<h", int(round(v * 32767)))
            else:
                frames += struct.pack("<i", int(round(v * 8388607)) << 8)[1:]
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def tone(freq, n, volume):
    return [volume * math.sin(2 * math.pi * freq * i / 8000) for i in range(n)]


def main():
    out, flat = sys.argv[1], "--flat" in sys.argv
    import os

    for label, freq in (("low", 200), ("high", 1000)):
        folder = out if flat else os.path.join(out, label)
        os.makedirs(folder, exist_ok=True)
        for k in range(10):
            # 300 to 500 samples (the model takes 400: padded or cut), 8,
            # 16 or 24 bits, some in stereo.
            n = 300 + 25 * k
            name = ("0" if label == "low" else "1") if flat else label
            write(os.path.join(folder, f"{name}_{k}.wav"), tone(freq, n, 0.3 + 0.05 * k),
                  width=1 + k % 3, channels=1 + k % 2)


main()
