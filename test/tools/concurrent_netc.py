#!/usr/bin/env python3
"""concurrent_netc.py NETC OUT ROUNDS MODEL_A MODEL_B: compiles two models to
the same output at the same time, ROUNDS times; after each round the output
must be one complete program (it runs --help naming one of the models) and
no temporary file may be left. Prints 'ok N rounds' or what went wrong."""
import glob
import os
import subprocess
import sys

netc, out, rounds, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
for r in range(rounds):
    procs = [subprocess.Popen([netc, m, "-o", out], stderr=subprocess.DEVNULL) for m in (a, b)]
    codes = [p.wait(timeout=120) for p in procs]
    if codes != [0, 0]:
        sys.exit("round %d: exit codes %s" % (r, codes))
    help_text = subprocess.run(["./" + out, "--help"], capture_output=True, text=True).stdout
    names = [os.path.splitext(os.path.basename(m))[0] for m in (a, b)]
    if not any("'%s'" % n in help_text for n in names):
        sys.exit("round %d: the output is no complete program: %r" % (r, help_text[:200]))
    left = glob.glob(out + ".netc-*")
    if left:
        sys.exit("round %d: temporary files left: %s" % (r, left))
print("ok %d rounds" % rounds)
