"""A few Docker Engine API calls over its socket, for the paths that must start fast.

`nox -s build` should cost little more than the build it wraps, and importing the Docker SDK
alone takes about 0.4 s; the sessions that are not timed use the SDK.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote, urlparse


class EngineError(RuntimeError):
    """The engine could not be reached, or answered with an error."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def where() -> str:
    """The engine's address: DOCKER_HOST, or the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def get(path: str, timeout: float = 10) -> Any:
    """GET an API path; the parsed JSON, or None for a 404."""
    url = urlparse(where())
    if url.scheme == "unix":
        conn: http.client.HTTPConnection = _UnixConnection(url.path, timeout)
    elif url.scheme in {"tcp", "http"}:
        conn = http.client.HTTPConnection(
            url.hostname or "localhost", url.port or 2375, timeout=timeout
        )
    else:
        raise EngineError(f"DOCKER_HOST={where()}: only unix:// and tcp:// are supported here")
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except OSError as error:
        raise EngineError(f"Docker Engine not reachable at {where()}: {error}") from error
    finally:
        conn.close()
    if response.status == 404:
        return None
    if response.status >= 400:
        raise EngineError(f"Docker Engine answered {response.status} to GET {path}: {body[:200]!r}")
    return json.loads(body)


def image_size(name: str) -> int | None:
    """Bytes of a local image, or None when there is no such image."""
    found = get(f"/images/{quote(name, safe=':@')}/json")
    return int(found["Size"]) if found else None
