"""The processes a test's command started, read from /proc: what must not outlive it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


class Tree:
    """Every descendant of a process seen while it runs, each known by its pid and start time
    (so a reused pid is never taken for it)."""

    def __init__(self, root: subprocess.Popen) -> None:
        self.root = root
        self.seen: dict[tuple[int, int], str] = {}  # (pid, start time) -> command line

    def sample(self) -> list[str]:
        """Record the descendants running now; their command lines."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))):
                children.setdefault(stat[0], []).append(int(entry.name))
        now, todo = [], [self.root.pid]
        while todo:
            for pid in children.get(todo.pop(), []):
                stat = _stat(pid)
                if stat and stat[1] != "Z":
                    self.seen.setdefault((pid, stat[2]), _cmdline(pid))
                    now.append(self.seen[pid, stat[2]])
                    todo.append(pid)
        return now

    def wait_for(self, word: str, seconds: float) -> bool:
        """Whether a descendant whose command line holds `word` ran within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.root.poll() is None:
            if any(word in line for line in self.sample()):
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> dict[int, str]:
        """The descendants seen that still run (zombies are not running): pid -> command."""
        found = {}
        for (pid, start), cmd in self.seen.items():
            stat = _stat(pid)
            if stat and stat[2] == start and stat[1] != "Z":
                found[pid] = cmd
        return found

    def stop(self, signum: int, seconds: float = 60) -> dict[int, str]:
        """Send `signum` to the root alone, wait for it to end (killed after `seconds`); return
        what it started that still runs then, after killing it. Killed processes are given
        3 s to be reaped: a process left running (a build, a `compose up` still waiting for
        health) lives on longer than that."""
        self.sample()
        self.root.send_signal(signum)
        try:
            self.root.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.root.kill()
            self.root.wait()
        deadline = time.monotonic() + 3
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = self.alive()
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return survivors
