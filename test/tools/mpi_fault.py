#!/usr/bin/env python3
"""mpi_fault.py [--interrupt] MPIRUN NP PROGRAM ARGS...: a fault in a run.

Starts `MPIRUN -np NP PROGRAM ARGS --checkpoint ck.st`, waits until the first
checkpoint exists (an epoch has ended), then SIGKILLs the process of rank 1
(found by its OMPI_COMM_WORLD_RANK), or with --interrupt sends SIGINT to
mpirun, as Ctrl-C in a terminal does (the ranks have process groups of
their own; mpirun passes the stop on to them). Prints what the run said about ranks, errors and
interruptions, its exit status, and whether ck.st is still a whole
checkpoint (its header and size agree). Standard library only."""
import json
import os
import signal
import struct
import subprocess
import sys
import time


def rank_pids(parent):
    """The processes under `parent` and the MPI rank each has."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        except (OSError, ValueError, IndexError):
            continue
        rank = env.get(b"OMPI_COMM_WORLD_RANK")
        if rank is not None and ppid == parent:
            found[int(rank)] = int(pid)
    return found


def whole_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    return len(data) == 8 + length + end and header["__metadata__"]["format"] == "netc-checkpoint"


def main():
    interrupt = sys.argv[1] == "--interrupt"
    mpirun, np, program, *args = sys.argv[2 if interrupt else 1:]
    command = mpirun.split() + ["-np", np, program] + args + ["--checkpoint", "ck.st"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not os.path.exists("ck.st") and time.time() < deadline and run.poll() is None:
        time.sleep(0.01)
    ranks = rank_pids(run.pid)
    if 1 not in ranks or run.poll() is not None:
        print("no rank 1 to kill (the run ended first)")
        return 1
    if interrupt:
        os.kill(run.pid, signal.SIGINT)
    else:
        os.kill(ranks[1], signal.SIGKILL)
    out, err = run.communicate(timeout=120)
    text = (out + err).decode(errors="replace").replace("\r", "\n")
    for line in text.splitlines():
        if "rank" in line or "error" in line or "interrupted" in line:
            print(line.strip())
    print("exit status", run.returncode)
    print("checkpoint whole" if whole_safetensors("ck.st") else "checkpoint torn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
