"""Container health probe: `python -m shared.healthcheck`, compose.yaml's healthcheck (it needs
no curl in the image).

An HTTP service is healthy when its /health answers 200 on $PORT. A worker (its Dockerfile sets
HEARTBEAT_FILE) is healthy while its loop touched that file within HEARTBEAT_MAX_AGE seconds
(60 by default): see shared.worker.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request


def heartbeat_fresh(path: str, max_age: float) -> bool:
    """Whether the worker's heartbeat file was touched within `max_age` seconds."""
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        print(f"unhealthy: no heartbeat at {path} yet", file=sys.stderr)
        return False
    if age > max_age:
        print(
            f"unhealthy: last heartbeat {age:.0f} s ago (HEARTBEAT_MAX_AGE={max_age:g})",
            file=sys.stderr,
        )
        return False
    return True


def main() -> int:
    """Check the heartbeat of a worker, else probe http://127.0.0.1:$PORT/health once."""
    heartbeat = os.environ.get("HEARTBEAT_FILE")
    if heartbeat:
        max_age = float(os.environ.get("HEARTBEAT_MAX_AGE") or 60)
        return 0 if heartbeat_fresh(heartbeat, max_age) else 1
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
