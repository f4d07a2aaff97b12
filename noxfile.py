"""Tasks of the template repository itself. `make` wraps each one (see Makefile).

They run in the locked dev environment that `make` syncs into .venv, so no session makes
a virtualenv of its own.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from scripts.offline_images import ensure as ensure_base_images  # noqa: E402
from scripts.render import (  # noqa: E402
    HOST_CA_BUNDLE,
    OFFLINE_ANSWERS,
    parse_answers,
    render,
    write_env,
)

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]
BUILD = ROOT / "build"


def fresh(path: Path) -> Path:
    """An empty folder at `path`."""
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@nox.session
def render_repo(session: nox.Session) -> None:
    """Render the template into build/render: nox -s render_repo -- key=value ..."""
    dest = render(fresh(BUILD / "render"), parse_answers(session.posargs), quiet=False)
    session.log(f"rendered into {dest}")


@nox.session
def demo(session: nox.Session) -> None:
    """Render the default answers (offline-capable) into build/demo and build every image."""
    answers = {**OFFLINE_ANSWERS, **parse_answers(session.posargs)}
    dest = render(fresh(BUILD / "demo"), answers, quiet=False)
    write_env(dest, HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None)
    ensure_base_images(dest)
    with session.chdir(dest):
        session.run("nox", "-s", "build", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark the generated Dockerfiles against uv's Docker example and a naive file; writes
    build/bench/."""
    session.run("python", "scripts/bench.py", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite: nox -s tests -- -k build."""
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint the template repository's own Python."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
