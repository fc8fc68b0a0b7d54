#!/usr/bin/env python3
"""compare.py METRICS WEIGHTS EXPECTED: netc's per-step losses (from the
--metrics JSON Lines) within 1e-5 relative of PyTorch's, and its final
weights within max(1e-5 absolute, 1e-4 relative). Prints the worst errors."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_io  # noqa: E402

metrics, weights, expected = sys.argv[1:4]
want = json.load(open(expected))
losses = [r["loss"] for r in map(json.loads, open(metrics)) if r["event"] == "report"]
failures = []
if len(losses) != len(want["losses"]):
    failures.append("%d losses, expected %d" % (len(losses), len(want["losses"])))
worst_loss = max(abs(a - b) / abs(b) for a, b in zip(losses, want["losses"]))
if worst_loss > 1e-5:
    failures.append("loss relative error %.2e > 1e-5" % worst_loss)
tensors, _ = safetensors_io.read(weights)
worst_param = 0.0
for name in (k for k in want if k != "losses"):
    for got, ref in zip(tensors[name][1], want[name]):
        err = abs(got - ref)
        worst_param = max(worst_param, err / max(1e-5, 1e-4 * abs(ref)))
if worst_param > 1:
    failures.append("parameter error %.2f x the tolerance" % worst_param)
print("worst loss error %.2e relative; worst parameter error %.3f x tolerance" % (worst_loss, worst_param))
for f in failures:
    print("compare: " + f, file=sys.stderr)
sys.exit(1 if failures else 0)
