"""The Docker that users run: the three paths a build takes (buildx bake, the engine with an old
buildx, no buildx at all), a second engine as a second machine that builds from the registry
cache the first one pushed, and engines reached through a Docker context."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from scripts import second_engine
from scripts.offline_images import base_images
from scripts.offline_images import ensure as ensure_base_images
from scripts.render import OFFLINE_ANSWERS, render, write_env
from tests.conftest import run
from uvdocker import host

pytestmark = pytest.mark.docker
# "[deps 2/2] RUN ...  CACHED": a step as the build session prints it with BUILDKIT_PROGRESS=plain
STEP = re.compile(r"^\[(?:\S+ )?(?P<stage>\w+) \d+/\d+\] (?P<text>\S+).*  (?P<status>CACHED|DONE)$")


def nox_env(repo: Path, *args: str, env: dict[str, str], check: bool = True):
    """The generated repo's nox with exactly `env` on top of this one, DOCKER_* of ours left out."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return run([sys.executable, "-m", "nox", *args], cwd=repo, env=env, check=check, base=base)


def steps(output: str) -> list[tuple[str, str, str]]:
    """(stage, instruction, CACHED or DONE) of each Dockerfile step a plain build printed."""
    found = [STEP.match(line) for line in output.splitlines()]
    return [(m["stage"], m["text"], m["status"]) for m in found if m and m["text"] != "FROM"]


def edit_code(repo: Path, service: str) -> None:
    app = repo / f"services/{service}/src/{service}/app.py"
    app.write_text(app.read_text() + f"\n# {uuid.uuid4().hex}\n")


@pytest.fixture(scope="module")
def old_buildx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DOCKER_CONFIG whose cli-plugins hold Debian 13's own buildx 0.13.1 (the CLI prefers it)."""
    folder = tmp_path_factory.mktemp("old-buildx")
    run(["apt-get", "download", "docker-buildx/trixie"], cwd=folder)
    (deb,) = folder.glob("docker-buildx_0.13.*.deb")
    run(["dpkg", "-x", str(deb), "unpacked"], cwd=folder)
    plugins = folder / "config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (folder / "unpacked/usr/libexec/docker/cli-plugins/docker-buildx").rename(
        plugins / "docker-buildx"
    )
    return folder / "config"


def without_buildx(cmd: list[str]) -> list[str]:
    """`cmd` in a mount namespace where every system CLI plugin folder is empty: no buildx."""
    hidden = [d for d in host._plugin_dirs() if (d / "docker-buildx").is_file()]
    mounts = " && ".join(f"mount --bind /var/empty {d}" for d in hidden)
    return [
        "unshare",
        "--mount",
        "sh",
        "-c",
        f'mkdir -p /var/empty && {mounts} && exec "$@"',
        "sh",
        *cmd,
    ]


@pytest.mark.parametrize("path", ["bake", "old-buildx", "no-buildx"])
def test_every_build_path_builds(built_repo, old_buildx, tmp_path, path):
    """The host line says which path Compose took and why, and the build goes that way."""
    repo, _ = built_repo
    config = old_buildx if path == "old-buildx" else tmp_path  # an empty config: system plugins
    env = {"DOCKER_CONFIG": str(config), "BUILDKIT_PROGRESS": "plain"}
    cmd = [sys.executable, "-m", "nox", "-s", "build", "--", "core"]
    edit_code(repo, "core")
    out = run(without_buildx(cmd) if path == "no-buildx" else cmd, cwd=repo, env=env)
    said = {
        "bake": "builds through buildx bake on compose.yaml: buildx 0.29",
        "old-buildx": "builds through Compose and the engine: buildx 0.13.1 is older than 0.17",
        "no-buildx": "builds through Compose and the engine: no buildx plugin found",
    }[path]
    assert said in out.stderr
    assert ("load local bake definitions" in out.stdout) == (path == "bake")
    assert ("app", "COPY", "DONE") in steps(out.stdout)  # the code step ran: a real build


@pytest.fixture(scope="module")
def engine_b():
    """A second, empty engine on this host with the classic image store: another machine."""
    name = f"b{uuid.uuid4().hex[:6]}"
    url = second_engine.start(name, store="classic")
    try:
        yield docker.DockerClient(base_url=url, timeout=300), url
    finally:
        second_engine.stop(name)


@pytest.fixture(scope="module")
def mirror_repo(engine, registry, ca_bundle, tmp_path_factory) -> Path:
    """The default answers with every base image taken from the local registry (image_mirror),
    the stand-ins pushed there first, and the images named under it."""
    answers = {**OFFLINE_ANSWERS, "image_mirror": f"{registry.host}/"}
    repo = render(tmp_path_factory.mktemp("mirror") / "morgan", answers)
    write_env(repo, ca_bundle[0], IMAGE_PREFIX=f"{registry.host}/morgan", TAG="two")
    ensure_base_images(repo)
    for image in base_images(repo):
        repository, tag = image.rsplit(":", 1)
        for line in engine.api.push(repository, tag=tag, stream=True, decode=True):
            assert "error" not in line, line
    return repo


def test_a_second_machine_builds_from_the_registry_cache(mirror_repo, engine_b, registry):
    """Engine A pushes; engine B, empty, then builds every step from the registry cache (uv
    fetches nothing), and after a code change reruns only the code step."""
    client_b, url_b = engine_b
    nox_env(mirror_repo, "-s", "push", env={})  # every service, on A: the host's engine
    assert client_b.images.list() == []  # B has nothing: no base image, no layer, no cache
    env_b = {"DOCKER_HOST": url_b, "BUILDKIT_PROGRESS": "plain"}
    out = nox_env(mirror_repo, "-s", "build", "--", "core", env=env_b)
    assert "registry cache read" in out.stderr
    built = steps(out.stdout)
    assert {stage for stage, _, _ in built} == {"base", "export", "deps", "shared", "app"}
    assert all(status == "CACHED" for _, _, status in built), built  # deps included: no uv run
    assert client_b.images.get(f"{registry.host}/morgan/core:two")
    edit_code(mirror_repo, "core")
    out = nox_env(mirror_repo, "-s", "build", "--", "core", env=env_b)
    assert [(s, t) for s, t, status in steps(out.stdout) if status == "DONE"] == [("app", "COPY")]


def test_classic_store_pushes_an_inline_cache_and_says_so(mirror_repo, engine_b, registry):
    """B (classic store, docker driver) cannot export a registry cache: one line, and an inline
    cache instead (it still reads A's registry cache: B has no network for its RUN steps)."""
    _, url_b = engine_b
    env = {"DOCKER_HOST": url_b, "TAG": "inline"}
    out = nox_env(mirror_repo, "-s", "push", "--", "llm", env=env)
    (line,) = [line for line in out.stderr.splitlines() if "cannot export a registry cache" in line]
    assert "pushing with an inline cache" in line
    manifest = registry.image_manifest("morgan/llm", "inline")
    config = registry.blob("morgan/llm", manifest["config"]["digest"])
    assert b"moby.buildkit.cache.v0" in config  # the cache metadata travels in the image


def docker_config_with_context(folder: Path, name: str, endpoint: str) -> Path:
    """A DOCKER_CONFIG whose current context `name` points at `endpoint`, made by the CLI."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    cli = ["docker", "--config", str(folder)]
    subprocess.run(
        [*cli, "context", "create", name, "--docker", f"host={endpoint}"], env=base, check=True
    )
    subprocess.run([*cli, "context", "use", name], env=base, check=True, capture_output=True)
    return folder


def test_sessions_reach_the_engine_of_the_current_context(
    mirror_repo, engine_b, registry, tmp_path
):
    """No DOCKER_HOST: the current context of the Docker config says where build and du go."""
    client_b, url_b = engine_b
    config = docker_config_with_context(tmp_path / "config", "engine-b", url_b)
    env = {"DOCKER_CONFIG": str(config), "TAG": "ctx"}
    nox_env(mirror_repo, "-s", "build", "--", "llm", env=env)
    image = f"{registry.host}/morgan/llm:ctx"
    assert client_b.images.get(image)  # built on B, where the context points
    out = nox_env(mirror_repo, "-s", "du", "--", "llm", env=env)
    (row,) = [line.split() for line in out.stdout.splitlines() if line.startswith("llm ")]
    assert row[1] == image and row[3] in {"kB", "MB", "GB"}


# Every session that reaches the engine, with what it takes to get that far.
ENGINE_SESSIONS = [
    ("build",),
    ("push",),
    ("up", "--", "core"),
    ("dev", "--", "core"),
    ("watch", "--", "core"),
    ("down",),
    ("dive", "--", "core"),
    ("history", "--", "core"),
    ("du",),
    ("prune",),
    ("sbom", "--", "core"),
    ("cuda_check",),
]


def test_an_unreachable_context_is_one_line_naming_it(mirror_repo, tmp_path):
    """Each session that needs the engine ends with one line naming the endpoint it tried: no
    Compose error, no nox "Command ... failed", no traceback."""
    config = docker_config_with_context(tmp_path / "config", "gone", "unix:///nonexistent.sock")
    for session, *args in ENGINE_SESSIONS:
        env = {"DOCKER_CONFIG": str(config)}
        out = nox_env(mirror_repo, "-s", session, *args, env=env, check=False)
        said = out.stdout + out.stderr
        assert out.returncode != 0, said
        (line,) = [line for line in out.stderr.splitlines() if "aborted" in line]
        unreachable = "Docker Engine not reachable at unix:///nonexistent.sock: start it"
        assert line.startswith(f"nox > Session {session} aborted: {unreachable}"), line
        assert "Traceback" not in said and "failed with exit code" not in said, said
        if session != "build":  # bake says why first, in its own line
            assert said.count("nonexistent.sock") == 1, said


def test_build_flags_reach_compose(mirror_repo):
    """--no-cache reruns every step; --pull takes the bases from the registry again."""
    env = {"BUILDKIT_PROGRESS": "plain"}
    out = nox_env(mirror_repo, "-s", "build", "--", "llm", "--no-cache", "--pull", env=env)
    assert re.search(
        r"docker-buildx bake -f compose.yaml -f \S+ --progress rawjson .* --no-cache --pull llm",
        out.stderr,
    )
    assert {status for _, _, status in steps(out.stdout)} == {"DONE"}
    refused = nox_env(mirror_repo, "-s", "build", "--", "--squash", env=env, check=False)
    assert (
        "unknown option --squash: build takes services, --no-cache, --pull, --platform"
        in refused.stderr
    )
