"""PyTorch state_dicts to and from netc's weights files, and their
comparison, for the parity tools. Needs PyTorch."""
import sys

import torch

import safetensors_io


def write(path, state_dict, prefix=""):
    """Writes a state_dict as a weights file, names under `prefix`; int64
    tensors (num_batches_tracked) as I64."""
    def flat(v):
        if v.dtype == torch.int64:
            return safetensors_io.Ints(int(i) for i in v.flatten())
        return v.flatten().tolist()
    safetensors_io.write(path, {prefix + k: (list(v.shape), flat(v))
                                for k, v in state_dict.items()})


def read(path, prefix=""):
    """A weights file as a state_dict, `prefix` taken off the names; I64
    tensors as int64."""
    tensors, _ = safetensors_io.read(path)
    state = {}
    for name, (shape, values) in tensors.items():
        dtype = torch.int64 if values and isinstance(values[0], int) else torch.float32
        state[name[len(prefix):]] = torch.tensor(values, dtype=dtype).reshape(shape)
    return state


def compare(state, reference, floor, relative=1e-4):
    """Every tensor of `reference` against `state`: int64 ones equal, float
    ones within max(floor, relative * the tensor's largest magnitude).
    Exits naming the first that is not; returns the worst difference as a
    fraction of its tolerance."""
    worst = 0.0
    for name, want in reference.items():
        have = state[name]
        if want.dtype == torch.int64:
            if have.dtype != torch.int64 or not torch.equal(have, want):
                sys.exit("%s is %s, PyTorch has %s" % (name, have, want))
            continue
        diff = (have - want).abs().max().item()
        scale = max(floor, relative * want.abs().max().item())
        worst = max(worst, diff / scale)
        if diff > scale:
            sys.exit("%s differs by %g (allowed %g)" % (name, diff, scale))
    return worst
