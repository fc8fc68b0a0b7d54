#!/usr/bin/env python3
"""Writes test/fuzz/wav-corpus/: hostile and odd WAVE files for the reader's
fuzz target (a seed corpus for scripts/fuzz.sh wav, and replayed by every
test run): truncations at every structural boundary, sizes that lie,
impossible formats, extensible headers cut short, chunks out of order,
odd-sized chunks, huge channel counts. Standard library only.
  scripts/make-wav-corpus.py [DIR]"""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "test", "fuzz", "wav-corpus")
os.makedirs(out, exist_ok=True)


def chunk(tag, body, claimed=None):
    size = len(body) if claimed is None else claimed
    return tag + struct.pack("<I", size & 0xFFFFFFFF) + body + (b"\0" if len(body) % 2 else b"")


def fmt(format=1, channels=1, rate=8000, bits=16, align=None, extra=b""):
    align = channels * bits // 8 if align is None else align
    return struct.pack("<HHIIHH", format, channels, rate, rate * align, align, bits) + extra


def extensible(sub=1, channels=2, bits=24, valid=24):
    guid = struct.pack("<H", sub) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    return fmt(0xFFFE, channels, 8000, bits, extra=struct.pack("<HHI", 22, valid, 3) + guid)


def riff(*chunks, claimed=None):
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", (len(body) if claimed is None else claimed) & 0xFFFFFFFF) + body


samples = struct.pack("<8h", 0, 1000, -1000, 32767, -32768, 5, -5, 0)
good = riff(chunk(b"fmt ", fmt()), chunk(b"data", samples))
cases = {
    "good.wav": good,
    "empty.wav": b"",
    "riff-only.wav": b"RIFF",
    "rifx.wav": b"RIFX" + good[4:],
    "riff-size-huge.wav": riff(chunk(b"fmt ", fmt()), chunk(b"data", samples), claimed=0xFFFFFFFF),
    "riff-size-small.wav": riff(chunk(b"fmt ", fmt()), chunk(b"data", samples), claimed=4),
    "data-size-huge.wav": riff(chunk(b"fmt ", fmt()), chunk(b"data", samples, 0xFFFFFFFF)),
    "data-size-odd.wav": riff(chunk(b"fmt ", fmt()), chunk(b"data", samples[:7])),
    "data-before-fmt.wav": riff(chunk(b"data", samples), chunk(b"fmt ", fmt())),
    "fmt-size-huge.wav": riff(chunk(b"fmt ", fmt(), 0xFFFFFFF0), chunk(b"data", samples)),
    "fmt-short.wav": riff(chunk(b"fmt ", fmt()[:10]), chunk(b"data", samples)),
    "no-data.wav": riff(chunk(b"fmt ", fmt()), chunk(b"LIST", b"abc")),
    "zero-channels.wav": riff(chunk(b"fmt ", fmt(channels=0, align=0)), chunk(b"data", samples)),
    "65535-channels.wav": riff(chunk(b"fmt ", fmt(channels=65535, bits=8)), chunk(b"data", samples)),
    "zero-rate.wav": riff(chunk(b"fmt ", fmt(rate=0)), chunk(b"data", samples)),
    "bits-0.wav": riff(chunk(b"fmt ", fmt(bits=0, align=0)), chunk(b"data", samples)),
    "bits-12.wav": riff(chunk(b"fmt ", fmt(bits=12, align=2)), chunk(b"data", samples)),
    "float-16.wav": riff(chunk(b"fmt ", fmt(format=3, bits=16)), chunk(b"data", samples)),
    "float-64.wav": riff(chunk(b"fmt ", fmt(format=3, bits=64)),
                         chunk(b"data", struct.pack("<2d", float("nan"), float("inf")))),
    "align-lies.wav": riff(chunk(b"fmt ", fmt(channels=2, align=3)), chunk(b"data", samples)),
    "adpcm.wav": riff(chunk(b"fmt ", fmt(format=2, bits=4, align=1)), chunk(b"data", samples)),
    "extensible-short.wav": riff(chunk(b"fmt ", fmt(0xFFFE, 2, 8000, 24)), chunk(b"data", samples[:12])),
    "extensible-pcm24.wav": riff(chunk(b"fmt ", extensible()), chunk(b"data", samples[:12])),
    "extensible-float.wav": riff(chunk(b"fmt ", extensible(sub=3, channels=1, bits=32, valid=32)),
                                 chunk(b"data", struct.pack("<2f", 0.5, -0.5))),
    "extensible-mulaw.wav": riff(chunk(b"fmt ", extensible(sub=7, channels=1, bits=8, valid=8)),
                                 chunk(b"data", samples)),
    "odd-chunks.wav": riff(chunk(b"LIST", b"a"), chunk(b"fmt ", fmt()), chunk(b"junk", b"xyz"),
                           chunk(b"data", samples)),
    "odd-chunk-no-pad.wav": riff(chunk(b"fmt ", fmt())) + b"LIST\x01\x00\x00\x00a" + chunk(b"data", samples),
    "chunk-size-huge.wav": riff(chunk(b"fmt ", fmt()), chunk(b"LIST", b"ab", 0xFFFFFFFE),
                                chunk(b"data", samples)),
    "data-empty.wav": riff(chunk(b"fmt ", fmt()), chunk(b"data", b"")),
    "two-data.wav": riff(chunk(b"fmt ", fmt()), chunk(b"data", samples), chunk(b"data", samples * 4)),
}
for n in range(0, len(good), 3):
    cases[f"good-cut-{n:02d}.wav"] = good[:n]
for name, data in cases.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"make-wav-corpus: {len(cases)} files in {out}")
