#!/usr/bin/env python3
"""interrupt.py SECONDS OUT CMD...: runs CMD with stdout to OUT, sends it
SIGINT (Ctrl-C) after SECONDS, waits, and appends 'exit N' to OUT."""
import signal
import subprocess
import sys
import time

seconds, out, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
with open(out, "w") as f:
    p = subprocess.Popen(cmd, stdout=f)
    time.sleep(seconds)
    p.send_signal(signal.SIGINT)
    code = p.wait(timeout=60)
with open(out, "a") as f:
    f.write("exit %d\n" % code)
