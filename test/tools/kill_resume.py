#!/usr/bin/env python3
"""kill_resume.py ROUNDS EXE FLAGS...: the trainer killed with SIGKILL (no
chance to save anything) at seeded random moments, again and again, each
time resumed from its last checkpoint, must end with weights bitwise equal
to an uninterrupted run's. After every kill the checkpoint and weights
files are complete (or absent), never half-written. (A run killed after
its last checkpoint, during the final evaluation, had ended: resuming it is
refused as nothing to train, and its weights must be the final ones.)
Prints what happened."""
import os
import random
import signal
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import safetensors_io  # noqa: E402

rounds, exe, flags = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
subprocess.run([exe, *flags, "--save", "straight.st", "--checkpoint", "straight.ckpt"],
               check=True, stdout=subprocess.DEVNULL)
start = time.monotonic()
subprocess.run([exe, *flags, "--save", "timed.st", "--checkpoint", "timed.ckpt"],
               check=True, stdout=subprocess.DEVNULL)
whole = time.monotonic() - start

rng = random.Random(0)
kills = resumed = 0
for r in range(rounds + 100):
    resume = ["--resume", "k.ckpt"] if os.path.exists("k.ckpt") else []
    resumed += bool(resume)
    p = subprocess.Popen([exe, *flags, "--save", "k.st", "--checkpoint", "k.ckpt", *resume],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kills < rounds:
        delay = rng.uniform(0.05, 0.45) * whole
        # A loaded machine (ctest -j2) can slow the runs after the timed one
        # so much that every kill comes before the first checkpoint: every
        # other kill without one waits for it first, so runs are resumed.
        if not resume and kills % 2 == 1:
            while not os.path.exists("k.ckpt") and p.poll() is None:
                time.sleep(0.01)
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            for f in ("k.ckpt", "k.st"):
                if os.path.exists(f):
                    safetensors_io.read(f)  # complete, or this raises
            continue
    else:
        p.wait()
    err = p.stderr.read().decode()
    if p.returncode != 0 and "nothing to train" in err:
        break  # killed after its last files were written: the run had ended
    if p.returncode != 0:
        print(f"run {r} failed ({p.returncode}): {err}")
        sys.exit(1)
    break
same = open("k.st", "rb").read() == open("straight.st", "rb").read()
print(f"{kills} kills, {resumed} resumed runs: every file complete after each kill")
print("weights " + ("bitwise equal to the uninterrupted run" if same else "DIFFER"))
sys.exit(0 if same else 1)
