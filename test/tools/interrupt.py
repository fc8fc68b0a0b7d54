#!/usr/bin/env python3
"""interrupt.py [--signal NAME] SECONDS OUT CMD...: runs CMD with stdout to
OUT, sends it SIGINT (Ctrl-C; or SIGTERM, SIGHUP) after SECONDS, waits, and
appends 'exit N' to OUT."""
import signal
import subprocess
import sys
import time

args = sys.argv[1:]
sig = signal.SIGINT
if args[0] == "--signal":
    sig = getattr(signal, args[1])
    args = args[2:]
seconds, out, cmd = float(args[0]), args[1], args[2:]
with open(out, "w") as f:
    p = subprocess.Popen(cmd, stdout=f)
    time.sleep(seconds)
    p.send_signal(sig)
    code = p.wait(timeout=60)
with open(out, "a") as f:
    f.write("exit %d\n" % code)
