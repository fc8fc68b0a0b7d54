"""Minimal safetensors reading and writing (F32, and I64 for whole-number
buffers such as num_batches_tracked) for netc's tests.

Standard library only, so the tests need neither NumPy nor PyTorch.
"""
import json
import struct


class Ints(list):
    """Values written as I64 (plain lists are written as F32)."""


def write(path, tensors, metadata=None):
    """tensors: {name: (shape, flat list of floats, or Ints)}"""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name, (shape, values) in tensors.items():
        ints = isinstance(values, Ints)
        blob = struct.pack("<%d%s" % (len(values), "q" if ints else "f"), *values)
        header[name] = {"dtype": "I64" if ints else "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read(path):
    """Returns ({name: (shape, values)}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] in ("F32", "I64"), entry
        begin, end = entry["data_offsets"]
        code, width = ("f", 4) if entry["dtype"] == "F32" else ("q", 8)
        out[name] = (entry["shape"],
                     list(struct.unpack("<%d%s" % ((end - begin) // width, code), body[begin:end])))
    return out, header.get("__metadata__", {})


def value(tensors, ref):
    """`b` or `0.weight[2]` (flat index) -> float"""
    name, index = ref, 0
    if ref.endswith("]"):
        name, index = ref[:-1].split("[")
        index = int(index)
    return tensors[name][1][index]
