"""Run a worker: call its work() in a loop until stopped, with a heartbeat the healthcheck reads.

Before each call the loop touches HEARTBEAT_FILE (its Dockerfile sets it); the container's
healthcheck (python -m shared.healthcheck) fails once that file is older than HEARTBEAT_MAX_AGE
seconds. So a worker stuck in one call (a hung connection, a deadlock) turns unhealthy, while
one waiting between calls does not; a unit of work meant to run longer calls heartbeat() as it
goes. SIGTERM (docker stop) and SIGINT end the loop once the current call returns.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path


def heartbeat() -> None:
    """Say this worker is alive: touch HEARTBEAT_FILE, when it is set."""
    path = os.environ.get("HEARTBEAT_FILE")
    if path:
        Path(path).touch()


def run(work: Callable[[], object], interval: float) -> None:
    """Call work() every `interval` seconds until SIGTERM or SIGINT; LOG_LEVEL sets logging."""
    level = os.environ.get("LOG_LEVEL", "info").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        while not stop.is_set():
            heartbeat()
            work()
            stop.wait(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
