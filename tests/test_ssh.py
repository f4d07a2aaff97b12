"""Every session through an engine on another machine, reached over ssh as the docker CLI reaches
one: Debian's sshd on 127.0.0.1 with keys the test makes (scripts/ssh_server.py), its engine the
host's. The sessions run in a mount namespace where this host's engine socket is /dev/null, so
nothing reaches an engine but through ssh: Compose, bake and buildx run `docker system
dial-stdio` over ssh, the Docker SDK shells out to ssh, syft and dive read through them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from scripts import ssh_server
from scripts.local_registry import free_port
from tests.conftest import missing, nox, run
from tests.test_build import get_json, project_env, table_rows
from tests.test_cuda import smi_text
from tests.test_engines import docker_config_with_context
from uvdocker import host

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sshd(engine, tmp_path_factory: pytest.TempPathFactory):
    """sshd on 127.0.0.1 for root with a key of its own, its `docker` on the host's engine."""
    if not ssh_server.SSHD.is_file():
        message = f"needs Debian's openssh-server ({ssh_server.SSHD}): run scripts/setup-host.sh"
        missing(message)
    with ssh_server.serve(tmp_path_factory.mktemp("sshd"), host.endpoint()) as server:
        yield server


def untag(engine, image: str) -> None:
    """Remove a tag a test made (the layers stay with the other tags)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.remove(image)


def hidden_socket(cmd: list[str]) -> list[str]:
    """`cmd` in a mount namespace where the host engine's socket is /dev/null."""
    socket = host.endpoint().removeprefix("unix://")
    hide = f'mount --bind /dev/null {socket} && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", hide, "sh", *cmd]


def over_ssh(
    repo: Path, server: ssh_server.Server, *args: str, env: dict | None = None, check=True
) -> subprocess.CompletedProcess:
    """nox in `repo`, its engine DOCKER_HOST=ssh://root@127.0.0.1:PORT (or what `env` says)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env = {"DOCKER_HOST": server.url, "PATH": f"{server.bin}:{base['PATH']}", **(env or {})}
    cmd = hidden_socket([sys.executable, "-m", "nox", *args])
    kept = {k: v for k, v in env.items() if v is not None}
    return run(cmd, cwd=repo, env=kept, check=check, base=base)


def test_the_local_socket_is_out_of_reach(built_repo, sshd):
    """The premise: without ssh, these sessions find no engine."""
    repo, _ = built_repo
    out = over_ssh(repo, sshd, "-s", "du", env={"DOCKER_HOST": None}, check=False)
    assert out.returncode != 0 and "Docker Engine not reachable at unix://" in out.stderr


def test_build_and_up_over_ssh(built_repo, engine, sshd):
    """A code change built over ssh runs its step there; up serves it; down stops it."""
    repo, _ = built_repo
    app = repo / "services/core/src/core/app.py"
    original, marker = app.read_text(), f"over-ssh-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**project_env(core=port), "TAG": "ssh"}
    accepted = sshd.connections()
    try:
        app.write_text(original.replace('MESSAGE = "hello"', f'MESSAGE = "{marker}"'))
        out = over_ssh(repo, sshd, "-s", "build", "--", "core", env=env)
        assert int(table_rows(out.stdout)["core"][1]) >= 1  # the code step ran
        over_ssh(repo, sshd, "-s", "up", "--", "core", env=env)
        assert get_json(f"http://127.0.0.1:{port}/")[1]["message"] == marker
        over_ssh(repo, sshd, "-s", "down", env=env)
        assert not engine.containers.list(filters={"name": env["COMPOSE_PROJECT_NAME"]})
    finally:
        app.write_text(original)
        nox(repo, "-s", "down", env=env, check=False)
        untag(engine, "morgan/core:ssh")
    assert sshd.connections() > accepted


def test_inspecting_sessions_over_ssh(built_repo, sshd):
    """du, history, dive and sbom read the image over ssh."""
    repo, _ = built_repo
    du = over_ssh(repo, sshd, "-s", "du", "--", "core").stdout
    (row,) = [line.split() for line in du.splitlines() if line.startswith("core ")]
    assert row[1] == "morgan/core:latest"
    history = over_ssh(repo, sshd, "-s", "history", "--", "core").stdout
    assert "core: morgan/core:latest" in history and "COPY services/core/src" in history
    dive = over_ssh(repo, sshd, "-s", "dive", "--", "core")
    assert "Result:PASS" in dive.stdout
    over_ssh(repo, sshd, "-s", "sbom", "--", "core")
    sbom = json.loads((repo / "sbom/core.spdx.json").read_text())
    assert any(p["name"] == "uvicorn" for p in sbom["packages"])


def test_push_over_ssh(built_repo, engine, sshd, registry):
    """The engine behind ssh pushes the image and its registry cache."""
    repo, _ = built_repo
    env = {"IMAGE_PREFIX": f"{registry.host}/over-ssh", "TAG": "ssh"}
    try:
        out = over_ssh(repo, sshd, "-s", "push", "--", "core", env=env)
    finally:
        untag(engine, f"{registry.host}/over-ssh/core:ssh")
    assert "registry cache read and written" in out.stderr
    assert registry.get("/v2/over-ssh/core/tags/list")["tags"] == ["buildcache", "ssh"]


def test_a_context_with_an_ssh_endpoint(built_repo, sshd, tmp_path):
    """No DOCKER_HOST: the current context's ssh endpoint, as `docker context create` makes it."""
    repo, _ = built_repo
    config = docker_config_with_context(tmp_path / "config", "gpu-box", sshd.url)
    env = {"DOCKER_HOST": None, "DOCKER_CONFIG": str(config)}
    out = over_ssh(repo, sshd, "-s", "build", "--", "core", env=env)
    assert "core" in table_rows(out.stdout)
    du = over_ssh(repo, sshd, "-s", "du", "--", "core", env=env).stdout
    assert re.search(r"^core +morgan/core:latest ", du, re.MULTILINE)


def test_cuda_check_asks_the_engine_over_ssh(built_repo, sshd, tmp_path):
    """The engine behind ssh has no GPU runtime: one line naming it, exit 3, although this
    host's nvidia-smi (a stand-in printing a real GPU's output) would report a GPU."""
    repo, _ = built_repo
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text(
        f"#!/bin/sh\ncat <<'EOF'\n{smi_text('590.44.01-2x-rtx-2070.xml')}\nEOF\n"
    )
    (fake / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{sshd.bin}:{fake}:{os.environ['PATH']}"}
    out = nox(repo, "-s", "cuda_check", env=env, check=False)  # the local engine: its own view
    assert out.returncode == 1 and re.search(r"^GPU on this host +PASS ", out.stdout, re.M)
    remote = over_ssh(repo, sshd, "-s", "cuda_check", env=env, check=False)
    assert remote.returncode == 3, remote.stdout + remote.stderr
    assert remote.stdout.strip() == (
        f"the engine at {sshd.url} offers no GPU runtime (no nvidia runtime, no CDI devices): GPU"
        " services build there but cannot run; on that machine, install nvidia-container-toolkit,"
        " then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart"
        " docker`"
    )


def test_an_unreachable_ssh_engine_is_one_line(built_repo, sshd):
    """Nothing listens: ssh says why, then the session's one line names the endpoint."""
    repo, _ = built_repo
    port = free_port()
    url = f"ssh://root@127.0.0.1:{port}"
    for session in ("du", "up"):
        out = over_ssh(repo, sshd, "-s", session, env={"DOCKER_HOST": url}, check=False)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert f"ssh: connect to host 127.0.0.1 port {port}: Connection refused" in out.stderr
        (line,) = [line for line in out.stderr.splitlines() if "aborted" in line]
        assert f"Docker Engine not reachable at {url}: start it" in line
        assert line.endswith(
            f"(ssh's error is above; `ssh -p {port} root@127.0.0.1 docker version` must answer)."
        )
