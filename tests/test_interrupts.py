"""Faults that stop a session half-way, sent as a supervisor sends them: SIGINT or SIGTERM to nox
alone, never to its process group. Nothing the session started outlives it (each process it
started is followed through /proc), it says in one line what it leaves behind, and the rerun
succeeds."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest
import yaml

from scripts.local_registry import free_port
from tests.conftest import BIN, nox, run
from tests.processes import Tree
from tests.test_build import project_env
from tests.test_update import SINGLE_CPU, commit_all, copy, edit, git, later, versions

__all__ = ["later", "versions"]  # test_update's fixtures: the template versions to update to


def start_nox(repo: Path, log: Path, *args: str, env: dict[str, str]) -> Tree:
    """nox in `repo`, its output in `log`, followed through /proc."""
    cmd = [sys.executable, "-m", "nox", *args]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=repo, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    return Tree(proc)


def said_last(log: Path) -> str:
    """The one line the stopped session ended with."""
    (line,) = [line for line in log.read_text().splitlines() if "stopped by SIG" in line]
    return line


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("session", ["up", "dev", "watch"])
def test_compose_sessions_stop_with_nox(built_repo, engine, tmp_path, session, signum):
    """Stopped while Compose builds core's image through bake (a new tag: nothing to reuse),
    Compose and the build end with nox, which says so in one line and exits as the signal
    asks; the rerun brings core up."""
    repo, _ = built_repo
    tag = f"stop-{uuid.uuid4().hex[:8]}"
    env = {**project_env(core=free_port()), "TAG": tag}
    log = tmp_path / "nox.log"
    tree = start_nox(repo, log, "-s", session, "--", "core", env=env)
    try:
        assert tree.wait_for("docker-buildx bake", 300), log.read_text()[-3000:]
        survivors = tree.stop(signum)
        assert survivors == {}, survivors
        assert tree.root.returncode == 128 + signum, log.read_text()[-3000:]
        line = said_last(log)
        name = signal.Signals(signum).name
        if session == "watch":
            assert f"stopped by {name}: Compose watch and its builds stopped;" in line
        else:
            assert f"stopped by {name}: Compose stopped;" in line
        assert line.endswith("keep running, as after up -d: nox -s down stops them")
        assert "Traceback" not in log.read_text()
        if session == "up":  # the rerun, the fault gone
            nox(repo, "-s", "up", "--", "core", env=env)
    finally:
        if tree.root.poll() is None:
            tree.stop(signal.SIGKILL)
        nox(repo, "-s", "down", env=env, check=False)
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(f"morgan/core:{tag}")


def slow_uv(folder: Path, started: Path) -> Path:
    """A `uv` first on PATH whose `uv lock` marks `started`, then hangs (a slow package index);
    every other command is the real uv's."""
    folder.mkdir()
    script = folder / "uv"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = lock ]; then touch "{started}"; exec sleep 600; fi\n'
        f'exec "{BIN / "uv"}" "$@"\n'
    )
    script.chmod(0o755)
    return folder


def test_template_update_stopped_half_way(later, tmp_path):
    """SIGINT to nox while the update's relock runs (the files merged, the answers written):
    copier and its migration end with nox; one line names the command that puts the repo back
    to its last commit; that command does, with the team's committed edit and its .env; the
    rerun then updates."""
    repo = copy(later, tmp_path / "team", SINGLE_CPU, later.releases[-1])
    edit(repo / "compose.yaml", "restart: unless-stopped", "restart: always")
    commit_all(repo, "Team edits")
    (repo / ".env").write_text("TAG=team-tag\n")  # the team's, ignored by git
    head = git(repo, "rev-parse", "HEAD").strip()
    started = tmp_path / "lock-started"
    path = f"{slow_uv(tmp_path / 'slow', started)}{os.pathsep}{os.environ['PATH']}"
    log = tmp_path / "nox.log"
    tree = start_nox(repo, log, "-s", "template_update", env={"PATH": path})
    try:
        assert tree.wait_for("sleep 600", 300) and started.exists(), log.read_text()[-3000:]
        half_done = run(["git", "status", "--porcelain"], cwd=repo).stdout
        assert ".copier-answers.yml" in half_done  # Copier had written the new version
        survivors = tree.stop(signal.SIGINT)
    finally:
        if tree.root.poll() is None:
            tree.stop(signal.SIGKILL)
    assert survivors == {}, survivors
    assert tree.root.returncode == 130, log.read_text()[-3000:]
    line = said_last(log)
    assert (
        "stopped by SIGINT: the update is half-done: `git stash --include-untracked` puts" in line
    )
    (undo,) = re.findall(r"`([^`]+)`", line)
    run(undo.split(), cwd=repo)
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert "restart: always" in (repo / "compose.yaml").read_text()
    assert (repo / ".env").read_text() == "TAG=team-tag\n"
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["_commit"] == later.releases[-1]
    nox(repo, "-s", "template_update")  # the rerun, with uv's lock as it is
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["_commit"] == later.newest
    assert "restart: always" in (repo / "compose.yaml").read_text()
