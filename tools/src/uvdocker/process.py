"""Children that never outlive the session: Compose (up, dev, watch, down), builds, syft, copier.

nox runs a command in its own process group. A Ctrl+C in a terminal reaches both, but a signal
sent to nox alone (by an IDE, a test, a process supervisor) does not reach the command: on
SIGINT nox kills the command alone 0.5 s later, orphaning what it started (the build a
`compose watch` runs), and on SIGTERM nox dies at once and the whole `compose watch` goes on.

So these commands run in a process group of their own, with stdin closed (a process group in the
background that reads the terminal is stopped, not ended). While one runs, SIGINT, SIGTERM and
SIGHUP sent to nox go to its whole group, so Compose stops its builds and watchers as it does on
a Ctrl+C; a second signal, or GRACE seconds, and the group is killed. Whatever is left of the
group when the command ends is killed too. Then `Interrupted` says which signal came: the
session says in one line what it leaves behind, and exits as that signal asks (128 + its number).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

# SIGHUP: the terminal closed. Windows has neither it nor process groups to signal: there the
# command alone gets the signal, and is killed.
FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
GRACE = 10.0  # seconds a command gets to stop after a signal, as `docker stop` gives a container


class Interrupted(BaseException):
    """A signal stopped the command: `signum`; BaseException, as KeyboardInterrupt is, so that
    no `except Exception` on the way takes it for a failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name

    @property
    def status(self) -> int:
        """The exit status of a process that this signal ended: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def _kill_group(proc: subprocess.Popen, signum: int | None = None) -> None:
    """Send `signum` (SIGKILL when None) to the command's process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL if signum is None else signum)
        elif proc.poll() is None:  # Windows: no process groups, the command alone
            if signum is None:
                proc.kill()
            else:
                proc.send_signal(signum)


@contextlib.contextmanager
def group(cmd: list[str], **popen) -> Iterator[subprocess.Popen]:
    """Popen(cmd, **popen) in a new process group, the signals forwarded to it while the block
    runs (the block reads its output or waits for it); what is left of the group is killed when
    the block ends. Raises Interrupted after the block when a signal came."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    received: list[int] = []
    proc = subprocess.Popen(cmd, process_group=0, **popen)
    deadline = threading.Timer(GRACE, _kill_group, (proc,))
    deadline.daemon = True

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            _kill_group(proc, signum)
            deadline.start()
        else:  # a second Ctrl+C: stop now
            _kill_group(proc)

    previous = {}
    try:
        for signum in FORWARDED:
            previous[signum] = signal.signal(signum, forward)
    except ValueError:  # not the main thread: signals stay with whoever handles them
        pass
    try:
        yield proc
        proc.wait()
    finally:
        deadline.cancel()
        _kill_group(proc)  # what the command left, or all of it when the block failed
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise Interrupted(received[0])
