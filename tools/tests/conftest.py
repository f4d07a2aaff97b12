"""A stand-in for nox's Session: what uvdocker.sessions uses of it, recorded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


class Stopped(Exception):
    """session.error: the session ends with this one line."""


class FakeSession:
    """posargs, log, warn, error, run and create_tmp, as nox.Session has them."""

    def __init__(self, tmp: Path, *posargs: str) -> None:
        self.posargs, self.logged, self.ran, self.tmp = list(posargs), [], [], tmp
        self.warned: list[str] = []
        self.kwargs: list[dict[str, Any]] = []  # each run's keyword arguments (env...)
        self.fails: set[str] = set()  # programs whose run fails, as nox says it

    def log(self, line: str) -> None:
        self.logged.append(line)

    def warn(self, line: str) -> None:
        self.warned.append(line)
        self.logged.append(f"warning: {line}")

    def error(self, line: str) -> None:
        raise Stopped(line)

    def run(self, *args: Any, **kwargs: Any) -> None:
        self.ran.append([str(arg) for arg in args])
        self.kwargs.append(kwargs)
        if Path(str(args[0])).name in self.fails:
            from nox.command import CommandFailed

            raise CommandFailed(f"{args[0]} failed")

    def create_tmp(self) -> str:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return str(self.tmp)


@pytest.fixture
def session(tmp_path: Path):
    """A FakeSession factory: session("core", "--no-cache")."""
    return lambda *posargs: FakeSession(tmp_path / "session-tmp", *posargs)


@pytest.fixture(autouse=True)
def own_environment(monkeypatch):
    """Each test works on a copy of the environment: the sessions load .env into it."""
    monkeypatch.setattr(os, "environ", os.environ.copy())


@pytest.fixture
def stopped():
    """What session.error raises: pytest.raises(stopped)."""
    return Stopped
