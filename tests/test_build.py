"""The generated repo against a real Docker Engine: builds, caching, serving, secrets."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid

import pytest

from scripts import saved_image
from scripts.local_registry import free_port
from tests.conftest import BIN, COMPOSE, compose_build, nox, run
from tests.processes import Tree

pytestmark = pytest.mark.docker
SERVICES = ["core", "llm", "tts", "stt"]
GPU_SERVICES = {"tts", "stt"}


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of the build table a nox build session printed, by service."""
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if re.match(r"^service\s+seconds\s+run", line))
    rows = {}
    for line in lines[start + 2 :]:
        if line.startswith("wall time"):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def get_json(url: str, timeout: float = 5) -> tuple[int, dict]:
    """GET a URL on loopback; (status, parsed JSON body)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def project_env(**ports: int) -> dict[str, str]:
    """A Compose project of its own and the given host ports, so tests never collide."""
    env = {"COMPOSE_PROJECT_NAME": f"t{uuid.uuid4().hex[:10]}"}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    return env


def test_build_session_builds_every_service(built_repo, engine):
    _, output = built_repo
    # the build path, said once: bake with this host's buildx 0.29
    assert re.search(
        r"builds through buildx bake on compose.yaml: buildx 0\.\d+\.\d+ found", output
    )
    rows = table_rows(output)
    assert sorted(rows) == sorted(SERVICES)
    for name in SERVICES:
        seconds, steps_run, steps_cached = rows[name]
        assert float(seconds) >= 0 and int(steps_run) + int(steps_cached) >= 8
        image = engine.images.get(f"morgan/{name}:latest")
        labels = image.labels or {}
        assert labels["org.opencontainers.image.title"] == f"morgan-{name}"
        env = dict(item.split("=", 1) for item in image.attrs["Config"]["Env"])
        assert image.attrs["Config"]["User"] == "10001"
        assert env["HOME"] == "/home/app" and env["XDG_CACHE_HOME"] == "/home/app/.cache"
        if name in GPU_SERVICES:  # built on the CUDA stand-in, with Python added by the Dockerfile
            assert "no CUDA libraries" in labels["org.copier-uv-docker.stand-in"]
            assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
        else:
            assert "NVIDIA_VISIBLE_DEVICES" not in env


def saved_layers(engine, image: str) -> list[dict]:
    """The layers of `image` as the engine stores them: its saved OCI layout's manifest."""
    saved = io.BytesIO(b"".join(engine.images.get(image).save()))
    with tarfile.open(fileobj=saved) as tar:

        def blob(digest: str) -> dict:
            return json.load(tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}"))

        found = json.load(tar.extractfile("index.json"))
        while "manifests" in found:  # an index (and attestations): the image's own manifest
            entry = next(
                m
                for m in found["manifests"]
                if m.get("platform", {}).get("os") != "unknown"
                and "attestation" not in str(m.get("annotations", {}))
            )
            found = blob(entry["digest"])
        return found["layers"]


def test_gpu_image_runs_python_with_its_dependencies(built_repo, engine):
    out = engine.containers.run(
        "morgan/tts:latest",
        ["python", "-c", "import sys, starlette, uvicorn, tts.app; print(sys.version_info[:2])"],
        remove=True,
    )
    assert out.decode().strip() == "(3, 11)"


def test_cpu_service_answers_health_under_compose(built_repo, engine):
    """Up with the safe defaults: loopback port, read-only root, no capabilities, yet healthy,
    with a writable $HOME and a model cache on a volume."""
    repo, _ = built_repo
    port = free_port()
    env = project_env(core=port)
    try:
        nox(repo, "-s", "up", "--", "core", env=env)
        status, body = get_json(f"http://127.0.0.1:{port}/health")
        assert (status, body) == (200, {"status": "ok", "service": "core"})
        ps = run([COMPOSE, "ps", "--format", "json"], cwd=repo, env=env).stdout
        states = [json.loads(line) for line in ps.splitlines() if line.strip()]
        assert [(s["Service"], s["Health"]) for s in states] == [("core", "healthy")]
        container = engine.containers.get(states[0]["ID"])
        config = container.attrs["HostConfig"]
        binding = {"HostIp": "127.0.0.1", "HostPort": str(port)}
        assert config["PortBindings"] == {"8000/tcp": [binding]}
        assert config["ReadonlyRootfs"] is True and config["CapDrop"] == ["ALL"]
        assert config["SecurityOpt"] == ["no-new-privileges:true"]
        mounts = {m["Destination"]: m["Type"] for m in container.attrs["Mounts"]}
        assert mounts["/home/app/.cache"] == "volume"
        probe = "touch $HOME/x $XDG_CACHE_HOME/y && id -u && touch /app/z"
        code, out = container.exec_run(["sh", "-c", probe])
        assert code != 0 and out.decode().splitlines()[0] == "10001"
        assert "Read-only file system" in out.decode()  # /app is not writable, the rest was
    finally:
        nox(repo, "-s", "down", env=env, check=False)


def test_dev_overlay_reloads_code_without_rebuild(built_repo, engine):
    repo, _ = built_repo
    app = repo / "services/llm/src/llm/app.py"
    original = app.read_text()
    image_before = engine.images.get("morgan/llm:latest").id
    port = free_port()
    env = project_env(llm=port)
    try:
        nox(repo, "-s", "dev", "--", "llm", env=env)
        assert get_json(f"http://127.0.0.1:{port}/")[1]["message"] == "hello"
        edited = f"edited-{uuid.uuid4().hex[:8]}"
        app.write_text(original.replace('MESSAGE = "hello"', f'MESSAGE = "{edited}"'))
        message, deadline = None, time.monotonic() + 60
        while message != edited and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                message = get_json(f"http://127.0.0.1:{port}/", timeout=2)[1]["message"]
            except OSError:  # the server is restarting
                continue
        assert message == edited
        assert engine.images.get("morgan/llm:latest").id == image_before  # nothing was rebuilt
    finally:
        app.write_text(original)
        nox(repo, "-s", "down", env=env, check=False)


def wait_for(check, seconds: float) -> bool:
    """Whether `check()` came true within `seconds` (errors count as not yet)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    return False


def test_watch_syncs_code_and_rebuilds_on_a_new_lock(built_repo, engine, tmp_path):
    """nox -s watch: saved code reaches the running container (synced, then restarted), and a
    dependency added with uv (a new uv.lock) rebuilds the image and reaches it too. Stopped with
    SIGINT to nox alone, it leaves no Compose or build behind (any would be killed, then fail
    the test): a watch left running would rebuild core with the other tests' changes."""
    repo, _ = built_repo
    port = free_port()
    env = {**project_env(core=port), "TAG": "watch"}  # an image of its own: :latest stays
    app, pyproject = repo / "services/core/src/core/app.py", repo / "services/core/pyproject.toml"
    originals = {path: path.read_text() for path in (app, pyproject, repo / "uv.lock")}
    log = (tmp_path / "watch.log").open("w")
    cmd = [sys.executable, "-m", "nox", "-s", "watch", "--", "core"]
    watch = Tree(subprocess.Popen(cmd, cwd=repo, env={**os.environ, **env}, stdout=log, stderr=log))
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: get_json(f"{url}/health")[0] == 200, 300), log.name
        edited = f"watched-{uuid.uuid4().hex[:8]}"
        app.write_text(originals[app].replace('MESSAGE = "hello"', f'MESSAGE = "{edited}"'))
        assert wait_for(lambda: get_json(f"{url}/")[1]["message"] == edited, 120)
        added = originals[pyproject].replace('    "shared",\n', '    "shared",\n    "humanize",\n')
        pyproject.write_text(added)
        run([str(BIN / "uv"), "lock", "--quiet"], cwd=repo)

        def has_humanize() -> bool:
            ps = run([COMPOSE, "ps", "-q", "core"], cwd=repo, env=env).stdout.split()
            if not ps:  # between the old container and the rebuilt one
                return False
            probe = ["python", "-c", "import humanize"]
            return engine.containers.get(ps[0]).exec_run(probe).exit_code == 0

        assert wait_for(has_humanize, 300), (tmp_path / "watch.log").read_text()[-3000:]
    finally:
        survivors = watch.stop(signal.SIGINT)
        for path, text in originals.items():
            path.write_text(text)
        nox(repo, "-s", "down", env=env, check=False)
    assert survivors == {}, survivors


def test_code_only_change_reruns_no_dependency_step(built_repo, engine):
    repo, _ = built_repo
    app = repo / "services/core/src/core/app.py"
    original = app.read_text()
    layers_before = engine.images.get("morgan/core:latest").attrs["RootFS"]["Layers"]
    try:
        app.write_text(original + f"\n# a code-only change {uuid.uuid4().hex}\n")
        out = nox(repo, "-s", "build", "--", "core")
    finally:
        app.write_text(original)
    assert "[app 1/1] COPY services/core/src /app/services/core/src  DONE" in out.stdout
    rows = table_rows(out.stdout)
    assert list(rows) == ["core"] and rows["core"][1:] == ["1", "9"]
    layers_after = engine.images.get("morgan/core:latest").attrs["RootFS"]["Layers"]
    # Only the code layer differs: every layer below it is byte-for-byte the same.
    assert layers_after[:-1] == layers_before[:-1] and layers_after[-1] != layers_before[-1]
    # The new layer is stored as nox -s build exports local images: uncompressed (pushed images
    # are gzip: test_sessions). Layers built before keep the compression they were stored with.
    assert saved_layers(engine, "morgan/core:latest")[-1]["mediaType"].endswith(".tar")


def test_ca_bundle_never_reaches_a_layer(built_repo, ca_bundle, engine, tmp_path):
    repo, _ = built_repo
    _, marker = ca_bundle
    # --no-cache makes the download steps run now, with the bundle mounted as a secret.
    logged = compose_build(repo, "--no-cache", "core")
    installs = [s for s in logged.build.of("core") if "uv pip install" in s.text]
    assert logged.build.error == "" and [s.cached for s in installs] == [False, False]
    image = engine.images.get("morgan/core:latest")
    saved = saved_image.save(engine, "morgan/core:latest", tmp_path / "core.tar")
    files = 0
    for layer, path, data in saved_image.layer_files(saved):
        files += 1
        assert marker not in data, f"CA bundle found in {layer}: {path}"
        assert "ca_bundle" not in path and not path.startswith("run/secrets/"), path
    assert files > 1000  # the scan really read the image's files
    config = json.dumps(image.attrs["Config"]) + json.dumps(image.history())
    assert marker.decode() not in config and "ca_bundle" not in json.dumps(image.attrs["Config"])


def test_unknown_service_is_refused(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "build", "--", "core", "nosuch", check=False)
    assert out.returncode != 0
    assert "unknown service nosuch: known services are core, llm, stt, tts" in out.stderr


def test_engine_down_is_reported(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "build", env={"DOCKER_HOST": "unix:///nonexistent.sock"}, check=False)
    assert out.returncode != 0
    assert "Docker Engine not reachable at unix:///nonexistent.sock" in out.stderr
