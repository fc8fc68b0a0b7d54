"""netc's weights and checkpoints in PyTorch, with NumPy and torch only.

netc writes weights (`--save`) and checkpoints (`--checkpoint`) in the
safetensors format: 8 bytes of little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the data. Debian 12
has no `safetensors` package; this module reads and writes the format
itself (F32 and I64, the dtypes netc writes; F64, F16 and I32 are read too).

    import netc_torch
    model.load_state_dict(netc_torch.load("mnist.safetensors"))  # strict
    netc_torch.save(model.state_dict(), "init.safetensors")
    # ./mnist --init init.safetensors trains from PyTorch's weights
    weights, optimizer, counters = netc_torch.load_checkpoint("mnist.ckpt.safetensors")

Every function raises ValueError naming the file when it is not a valid
safetensors file.
"""
import collections
import json
import os
import struct
import tempfile

import numpy as np
import torch

__all__ = ["read", "load", "save", "load_checkpoint"]

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
           "I32": np.int32}
_MAX_HEADER = 100 << 20  # the format's limit


def read(path):
    """The tensors of a safetensors file as NumPy arrays, in file order, and
    its metadata: (OrderedDict name -> array, dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"'{path}' is not a safetensors file: it is too short")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(_MAX_HEADER, len(data) - 8):
        raise ValueError(f"'{path}' is not a safetensors file: the header length is larger "
                         "than the file")
    try:
        header = json.loads(data[8:8 + length])
    except ValueError as e:
        raise ValueError(f"'{path}' is not a safetensors file: its header is not JSON ({e})")
    if not isinstance(header, dict):
        raise ValueError(f"'{path}' is not a safetensors file: its header is not an object")
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + length:]
    tensors = collections.OrderedDict()
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise ValueError(f"'{path}': tensor '{name}' lacks its dtype, shape or data_offsets")
        dtype = _DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ValueError(f"'{path}': tensor '{name}' has dtype {entry.get('dtype')}, "
                             f"not one of {', '.join(_DTYPES)}")
        shape = [int(d) for d in entry["shape"]]
        begin, end = entry["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not 0 <= begin <= end <= len(body) or end - begin != count * np.dtype(dtype).itemsize:
            raise ValueError(f"'{path}': tensor '{name}' has data_offsets outside the file or "
                             "of the wrong size")
        array = np.frombuffer(body[begin:end], dtype=np.dtype(dtype).newbyteorder("<"))
        tensors[name] = array.reshape(shape).astype(dtype)  # a writable, native copy
    return tensors, metadata


def load(path, prefix=""):
    """A netc weights file (or a checkpoint's weights) as a PyTorch
    state_dict: float tensors as float32, netc's I64 buffers
    (num_batches_tracked) as int64; names under `prefix` only, with it
    taken off. For model.load_state_dict(..., strict=True)."""
    tensors, _ = read(path)
    return collections.OrderedDict(
        (name[len(prefix):], torch.from_numpy(array))
        for name, array in tensors.items()
        if name.startswith(prefix) and not name.startswith("optim."))


def save(state_dict, path, prefix="", metadata=None):
    """Writes a PyTorch state_dict as a netc weights file (for --init):
    floating tensors as F32, integer ones (num_batches_tracked) as I64,
    names under `prefix`. Written to a temporary file beside `path`, then
    renamed: `path` is never left half-written."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in state_dict.items():
        t = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if t.is_floating_point():
            array, dtype = t.to(torch.float32).contiguous().numpy(), "F32"
        elif t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            array, dtype = t.to(torch.int64).contiguous().numpy(), "I64"
        else:
            raise ValueError(f"'{name}' has dtype {t.dtype}; netc's files hold float32 and int64")
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[prefix + name] = {"dtype": dtype, "shape": list(t.shape),
                                 "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path):
    """A netc checkpoint (--checkpoint): its weights as a state_dict, the
    optimizer state as {parameter: {"exp_avg": tensor, ...}}, and its
    counters and identity (epoch, step, position, seed, batch, data, ...)
    as a dict of strings."""
    tensors, metadata = read(path)
    if metadata.get("format") != "netc-checkpoint":
        raise ValueError(f"'{path}' is not a netc checkpoint (a weights file? use load)")
    weights = collections.OrderedDict()
    optimizer = collections.OrderedDict()
    for name, array in tensors.items():
        if name.startswith("optim."):
            param, _, slot = name[len("optim."):].rpartition(".")
            optimizer.setdefault(param, collections.OrderedDict())[slot] = torch.from_numpy(array)
        else:
            weights[name] = torch.from_numpy(array)
    return weights, optimizer, dict(metadata)
