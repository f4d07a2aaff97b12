"""Other platforms: an arm64 image built by `nox -s build` and run under qemu, on stand-in base
images that hold linux/amd64 and linux/arm64, locally and in a registry.

Emulated steps are slow: the test builds one small service, once.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request

import docker
import pytest

from scripts import offline_images
from scripts.local_registry import free_port
from scripts.render import OFFLINE_ANSWERS
from tests.conftest import missing, nox

pytestmark = pytest.mark.docker
ARM64 = ["linux/arm64"]
TAG = "arm64"  # morgan/core:arm64, beside the morgan/core:latest other tests build
MACHINE = "import platform, sys; print(platform.machine(), *sys.version_info[:2])"


@pytest.fixture(scope="module")
def arm64_repo(offline_repo, engine):
    """The offline repo, its stand-ins (under the names its Dockerfiles use) holding arm64 too.
    Without the containerd image store or qemu for arm64, a skip that says so (CI fails)."""
    try:
        offline_images.check_emulation("arm64")
        if not offline_images.containerd_store(engine):
            raise offline_images.StandInError("arm64 stand-ins need the containerd image store")
    except offline_images.StandInError as error:
        missing(f"{error}: run scripts/setup-host.sh")
    offline_images.ensure(offline_repo, platforms=ARM64)
    return offline_repo


def wait_for_health(port: int, container, timeout: float = 120) -> tuple[int, dict]:
    """GET /health on loopback until it answers; the container's logs if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            url = f"http://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except OSError:
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                pytest.fail(f"/health never answered:\n{container.logs().decode()[-3000:]}")
            time.sleep(1)


def test_build_session_builds_and_runs_core_for_arm64(arm64_repo, engine):
    nox(arm64_repo, "-s", "build", "--", "core", "--platform", "linux/arm64", env={"TAG": TAG})
    image = engine.images.get(f"morgan/core:{TAG}")
    assert (image.attrs["Os"], image.attrs["Architecture"]) == ("linux", "arm64")

    probe = f"uname -m && python -c '{MACHINE}'"
    out = engine.containers.run(image.id, ["sh", "-c", probe], platform="linux/arm64", remove=True)
    assert out.decode().split() == ["aarch64", "aarch64", "3", "11"]

    port = free_port()
    container = engine.containers.run(
        image.id, detach=True, platform="linux/arm64", ports={"8000/tcp": ("127.0.0.1", port)}
    )
    try:
        assert wait_for_health(port, container) == (200, {"status": "ok", "service": "core"})
    finally:
        container.remove(force=True)


def test_stand_ins_in_a_registry_are_one_index_for_both_platforms(
    arm64_repo, registry, engine, rendered
):
    """Pushed under the names a repo with image_mirror uses (a folder of the session's
    registry of their own); each platform pulled back from it runs its arch's Python 3.11."""
    mirror = f"{registry.host}/multi-platform/"
    answers = {**OFFLINE_ANSWERS, "image_mirror": mirror}
    repo = rendered(answers | {"services": [{"name": "core", "port": 8000}]}, skip_tasks=True)
    images = offline_images.base_images(repo)
    assert f"{mirror}python:3.11-slim-bookworm" in images
    try:
        offline_images.ensure(repo, platforms=ARM64, push=True)
        for image in images:
            repository, tag = image.removeprefix(f"{registry.host}/").rsplit(":", 1)
            index = registry.manifest(repository, tag)
            assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
            platforms = [
                (m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]
            ]
            assert sorted(platforms) == [("linux", "amd64"), ("linux", "arm64")]
            for _, arch in platforms:
                config = registry.image_manifest(repository, tag, arch)["config"]["digest"]
                assert json.loads(registry.blob(repository, config))["architecture"] == arch
        python = f"{mirror}python:3.11-slim-bookworm"
        for arch, machine in (("amd64", "x86_64"), ("arm64", "aarch64")):
            engine.images.remove(python)  # the local name goes: the run pulls it back
            cmd = ["python", "-c", MACHINE]
            out = engine.containers.run(python, cmd, platform=f"linux/{arch}", remove=True)
            assert out.decode().split() == [machine, "3", "11"]
    finally:
        for image in images:  # only these names: the content is the local stand-ins' own
            with contextlib.suppress(docker.errors.ImageNotFound):
                engine.images.remove(image)
