"""uvdocker.process on real processes: a Python parent (standing in for nox) runs `sh` through
process.group, the test signals the parent alone, and reads what is left in /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

PARENT = """
import subprocess, sys
from uvdocker import process
process.GRACE = {grace}
try:
    with process.group(["sh", "-c", {script!r}], stdout=subprocess.PIPE, text=True) as proc:
        print(proc.stdout.readline().strip(), flush=True)  # the shell's "started" line
except process.Interrupted as stop:
    print(f"stopped by {{stop.name}}", flush=True)
    sys.exit(stop.status)
print(f"exited {{proc.returncode}}", flush=True)
"""


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent(script: str, grace: float = 10) -> tuple[subprocess.Popen, list[int]]:
    """The stand-in for nox, once its shell has started; the pids the shell printed."""
    code = textwrap.dedent(PARENT).format(script=script, grace=grace)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline().split()
    assert first and first[0] == "started", first
    return proc, [int(pid) for pid in first[1:]]


def gone(pids: list[int], seconds: float = 3) -> bool:
    """Whether every pid stopped running within `seconds` (a killed one must be reaped)."""
    deadline = time.monotonic() + seconds
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(running(pid) for pid in pids)


def finish(proc: subprocess.Popen) -> str:
    """The rest of the parent's output, once it has exited (killed after 30 s)."""
    timer = threading.Timer(30, proc.kill)
    timer.start()
    try:
        out = proc.stdout.read()  # what readline() buffered too: communicate() would skip it
        proc.wait()
    finally:
        timer.cancel()
    return out


# A shell that starts a "build" in the background, says so, and waits: Compose and its bake.
BUILD = "sleep 300 & echo started $$ $!; wait"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_parent_alone_stops_the_whole_group(signum):
    proc, pids = parent(BUILD)
    try:
        proc.send_signal(signum)
        out = finish(proc)
        assert proc.returncode == 128 + signum
        assert out.strip() == f"stopped by {signal.Signals(signum).name}"
        assert gone(pids)
    finally:
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_what_the_command_leaves_behind_is_killed_when_it_ends():
    """The shell exits at once, leaving its `sleep`: the group's leftovers go with it."""
    proc, pids = parent("sleep 300 & echo started $$ $!; exit 3")
    out = finish(proc)
    assert out.strip() == "exited 3" and proc.returncode == 0
    assert gone(pids)


def test_a_command_that_ignores_the_signal_is_killed_after_the_grace():
    """A shell that traps SIGTERM away is killed GRACE seconds later (1 s here)."""
    proc, pids = parent("trap '' TERM; sleep 300 & echo started $$ $!; wait; wait", grace=1)
    try:
        proc.send_signal(signal.SIGTERM)
        out = finish(proc)
        assert proc.returncode == 143 and out.strip() == "stopped by SIGTERM"
        assert gone(pids)
    finally:
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
