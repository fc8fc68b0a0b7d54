#!/usr/bin/env python3
"""compare.py WEIGHTS EXPECTED_JSON REL_TOL: every coefficient in the
weights file matches the float64 reference within REL_TOL (relative)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_io  # noqa: E402

weights, _ = safetensors_io.read(sys.argv[1])
expected = json.load(open(sys.argv[2]))
tol = float(sys.argv[3])
bad = 0
for name in "abcd":
    got, want = weights[name][1][0], expected[name]
    rel = abs(got - want) / abs(want)
    print("%s: netc %.9g, float64 %.9g, relative error %.2e" % (name, got, want, rel))
    if not rel <= tol:
        bad += 1
sys.exit(1 if bad else 0)
