#!/usr/bin/env python3
"""An independent float64 implementation of sine.nn's training, for the
reference test (test/e2e/reference.test).

It writes the fixture: the initial coefficients (sine_init.safetensors,
loaded by the test with --init) and the coefficients after 2000 steps of
gradient descent (sine_expected.json), computed here in double precision
with plain Python, exactly as the course's NumPy version does:

    y_pred = a + b x + c x^2 + d x^3
    loss = sum((y_pred - y)^2)
    grad_y_pred = 2 (y_pred - y)
    a -= lr * sum(grad_y_pred), b -= lr * sum(grad_y_pred * x), ...

Run it from this directory to regenerate the fixture (a few seconds).
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_io  # noqa: E402

POINTS, STEPS, LR = 2000, 2000, 1e-6
# Fixed starting point (a draw of torch.randn(()) four times, rounded to a
# float32-exact value so both sides start from the same numbers).
INIT = {"a": -1.125, "b": 0.25, "c": 0.5, "d": -0.375}


def train(a, b, c, d):
    xs = [-math.pi + 2 * math.pi * i / (POINTS - 1) for i in range(POINTS)]
    ys = [math.sin(x) for x in xs]
    loss = 0.0
    for _ in range(STEPS):
        ga = gb = gc = gd = loss = 0.0
        for x, y in zip(xs, ys):
            x2 = x * x
            r = a + b * x + c * x2 + d * x2 * x - y
            loss += r * r
            g = 2.0 * r
            ga += g
            gb += g * x
            gc += g * x2
            gd += g * x2 * x
        a, b, c, d = a - LR * ga, b - LR * gb, c - LR * gc, d - LR * gd
    return {"a": a, "b": b, "c": c, "d": d, "last_step_loss": loss}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    safetensors_io.write(os.path.join(here, "sine_init.safetensors"),
                         {k: ([], [v]) for k, v in INIT.items()})
    result = train(**INIT)
    with open(os.path.join(here, "sine_expected.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(result)


if __name__ == "__main__":
    main()
