"""Day-to-day tasks for this repo's images: `uv run nox -l` lists them, `uv run nox` builds.

Each session is a few lines over the uvdocker package: the template's tooling, which
pyproject.toml's dev group takes at the template version this repo was made or last updated
from, with every tool it runs pinned. Sessions log the real command they run; settings come
from .env (see .env.example). Add your own sessions at the end of this file.
"""

from __future__ import annotations

from pathlib import Path

import nox
from uvdocker.sessions import Repo

nox.options.default_venv_backend = "none"  # the sessions run in this repo's dev environment
nox.options.sessions = ["build"]
repo = Repo(Path(__file__).resolve().parent)


@nox.session
def build(session: nox.Session) -> None:
    """Build every image, or those named, in one run: nox -s build -- NAME --no-cache --pull."""
    repo.build(session)


@nox.session
def build_parallel(session: nox.Session) -> None:
    """The same as build (which now builds all services in one run); kept for old scripts."""
    repo.build(session)


@nox.session
def push(session: nox.Session) -> None:
    """Build and push each image (or those named) to IMAGE_PREFIX, with its registry cache."""
    repo.push(session)


@nox.session
def up(session: nox.Session) -> None:
    """Start the services (all, or those named) in the background and wait until healthy."""
    repo.up(session)


@nox.session
def dev(session: nox.Session) -> None:
    """Start the services with the dev overlay: code bind-mounted, servers reload on save."""
    repo.dev(session)


@nox.session
def watch(session: nox.Session) -> None:
    """Run the services under Compose watch: code synced on save, rebuilt when uv.lock changes."""
    repo.watch(session)


@nox.session
def down(session: nox.Session) -> None:
    """Stop and remove the services' containers (volumes and images stay)."""
    repo.down(session)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format --check on the code, hadolint on the Dockerfiles; -- --fix: fix."""
    repo.lint(session)


@nox.session
def tests(session: nox.Session) -> None:
    """Each service's tests (or those named) in its own locked environment: -- NAME -- -k x."""
    repo.tests(session)


@nox.session
def dive(session: nox.Session) -> None:
    """Check each image (or those named) with dive in CI mode; -- --interactive to browse."""
    repo.dive(session)


@nox.session
def history(session: nox.Session) -> None:
    """Layer sizes of each service image (or those named), biggest first, with their steps."""
    repo.history(session)


@nox.session
def du(session: nox.Session) -> None:
    """Disk used by each service image, largest first, and by the builder cache."""
    repo.du(session)


@nox.session
def prune(session: nox.Session) -> None:
    """Free builder cache but keep the apt/uv cache mounts and recent layers; -- --all: all."""
    repo.prune(session)


@nox.session
def sbom(session: nox.Session) -> None:
    """An SPDX JSON SBOM of each image (or those named) with syft, in sbom/<service>.spdx.json."""
    repo.sbom(session)


@nox.session
def cuda_check(session: nox.Session) -> None:
    """Why a GPU service will not start: driver, CUDA version, NVIDIA runtime, in-image probes."""
    repo.cuda_check(session)


@nox.session
def template_check(session: nox.Session) -> None:
    """Exit 1 when a newer template version exists, naming it; 0 when current; 2: unreachable."""
    repo.template_check(session)


@nox.session
def template_update(session: nox.Session) -> None:
    """copier update to the newest template (-- --vcs-ref TAG, -d key=value), listing conflicts."""
    repo.template_update(session)


# Your own sessions go below, e.g.:
#
# @nox.session
# def smoke(session: nox.Session) -> None:
#     """Start core and ask it for /health."""
#     repo.up(session)
#     session.run("curl", "-fsS", "http://127.0.0.1:8000/health", external=True)
