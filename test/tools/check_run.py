#!/usr/bin/env python3
"""Checks that an emitted program's run learned what it should.

  check_run.py --output OUT --weights W [--final-loss-below X]
               [--param REF=LO:HI ...] [--metrics FILE --reports K]

REF is a parameter name, optionally with a flat index: `b`, `0.weight[2]`.
Exits non-zero, saying why, when a bound is not met.
"""
import argparse
import json
import re
import sys

import safetensors_io


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--output", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--final-loss-below", type=float)
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--metrics")
    p.add_argument("--reports", type=int)
    a = p.parse_args()

    failures = []
    text = open(a.output).read()
    m = re.search(r"^final loss (\S+)$", text, re.M)
    if not m:
        failures.append("no 'final loss' line in the output")
    elif a.final_loss_below is not None and not float(m.group(1)) < a.final_loss_below:
        failures.append("final loss %s is not below %g" % (m.group(1), a.final_loss_below))

    tensors, _ = safetensors_io.read(a.weights)
    for spec in a.param:
        ref, bounds = spec.split("=")
        lo, hi = (float(x) for x in bounds.split(":"))
        v = safetensors_io.value(tensors, ref)
        if not lo < v < hi:
            failures.append("%s = %r is not in (%g, %g)" % (ref, v, lo, hi))

    if a.metrics:
        lines = [json.loads(l) for l in open(a.metrics)]
        reports = [l for l in lines if l.get("event") == "report"]
        if a.reports is not None and len(reports) != a.reports:
            failures.append("%d report records, expected %d" % (len(reports), a.reports))
        for r in reports:
            if set(r) != {"event", "step", "loss", "seconds"}:
                failures.append("report record with keys %s" % sorted(r))
                break
        steps = [r["step"] for r in reports]
        if steps != sorted(steps) or any(r["seconds"] < 0 for r in reports):
            failures.append("report records out of order: %s" % steps)

    for f in failures:
        print("check_run: " + f, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
