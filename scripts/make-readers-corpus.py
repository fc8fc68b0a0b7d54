#!/usr/bin/env python3
"""Writes test/fuzz/readers-corpus/: seeds for the IDX, safetensors and CSV
readers' fuzz target (its first byte modulo 3: IDX, safetensors, CSV, whose
options come from its bits, see ReadersFuzzTarget.cpp; then the file):
good files, gzipped ones, and the hostile cases of the readers' tests
(lying dimensions, truncation, bad JSON, offsets out of range, deep
nesting, ragged rows, bad numbers and labels). Standard library only.
  scripts/make-readers-corpus.py [DIR]"""
import gzip
import json
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "test", "fuzz", "readers-corpus")
os.makedirs(out, exist_ok=True)


def idx(dims, data, kind=8):
    return bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def st(header, body=b""):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text)) + text + body


good_idx = idx([2, 3], bytes(range(6)))
cases = {
    "idx-good": b"\0" + good_idx,
    "idx-gz": b"\0" + gzip.compress(good_idx, mtime=0),
    "idx-f32": b"\0" + idx([2], struct.pack(">2f", 1.5, -2), 0x0d),
    "idx-f64": b"\0" + idx([1, 1], struct.pack(">d", 0.25), 0x0e),
    "idx-lying-dims": b"\0" + idx([1000000, 1000], bytes(6)),
    "idx-zero-dim": b"\0" + idx([0, 3], b""),
    "idx-bad-type": b"\0" + idx([2], bytes(2), 0x07),
    "idx-long": b"\0" + good_idx + b"extra",
    "idx-gz-cut": b"\0" + gzip.compress(good_idx, mtime=0)[:-6],
    "idx-gz-bomb": b"\0" + gzip.compress(idx([1024, 1024], bytes(1 << 20)), mtime=0),
    "st-good": b"\1" + st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                          struct.pack("<2f", 1, 2)),
    "st-i64": b"\1" + st({"n": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]},
                          "__metadata__": {"format": "pt"}}, struct.pack("<q", 7)),
    "st-offsets-out": b"\1" + st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}},
                                 bytes(8)),
    "st-shape-overflow": b"\1" + st({"w": {"dtype": "F32", "shape": [2 ** 62, 8],
                                           "data_offsets": [0, 8]}}, bytes(8)),
    "st-bad-json": b"\1" + st(b"{not json}"),
    "st-deep": b"\1" + st(b"[" * 64 + b"]" * 64),
    "st-header-too-long": b"\1" + struct.pack("<Q", 1 << 40) + b"{}",
    "st-dtype": b"\1" + st({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
                           bytes(4)),
    # The tensors of the C weights loader's model (w f32[2, 3], b f32[3],
    # n i64[]): a whole file, and one with an escaped name, a duplicate, a
    # missing and an extra tensor.
    "st-model": b"\1" + st({"__metadata__": {"format": "pt", "model": "fuzz"},
                            "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                            "b": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]},
                            "n": {"dtype": "I64", "shape": [], "data_offsets": [36, 44]}},
                           struct.pack("<9fq", *range(9), 5)),
    "st-model-escaped": b"\1" + st(b'{"\\u0077":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},'
                                    b'"b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},'
                                    b'"n":{"dtype":"I64","shape":[],"data_offsets":[36,44]}}',
                                    bytes(44)),
    "st-model-duplicate": b"\1" + st(b'{"b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},'
                                      b'"b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}',
                                      bytes(12)),
    "st-model-extra": b"\1" + st({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                                  "optim.w.exp_avg": {"dtype": "F32", "shape": [2, 3],
                                                      "data_offsets": [0, 24]}}, bytes(24)),
    # CSV: selector bytes = 2 (mod 3); 8 a class target, 16 skip a line,
    # 32 a header, 64 blank-separated, 128 inputs "0:3".
    "csv-numbers": bytes([2]) + b"1,2,3,0.5\n4,5,6,1.5\n",
    "csv-classes": bytes([8]) + b"1,2,3,0\n4,5,6,2\n7,8,9,1\n",
    "csv-header": bytes([44]) + b"a,b,c,kind\n1,2,3,setosa\n4,5,6,virginica\n",
    "csv-blanks": bytes([74]) + b"1  2 3   0\n\t4 5 6 1\n",
    "csv-inputs": bytes([137]) + b"1,2,3,0\n4,5,6,1\n",
    "csv-skip": bytes([26]) + b"150,4,a,b,c\n1,2,3,0\n",
    "csv-gz": bytes([8]) + gzip.compress(b"1,2,3,0\n4,5,6,1\n", mtime=0),
    "csv-ragged": bytes([8]) + b"1,2,3,0\n4,5,6\n",
    "csv-bad-number": bytes([8]) + b"1,x,3,0\n",
    "csv-bad-label": bytes([8]) + b"1,2,3,7\n1,2,3,-1\n",
    "csv-quotes-crlf": bytes([44]) + b"\"a\",b,c,d\r\n1,2,3,0\r\n",
    "csv-empty": bytes([8]),
}
for name, data in cases.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"make-readers-corpus: {len(cases)} files in {out}")
