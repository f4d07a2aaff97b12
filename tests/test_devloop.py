"""The generated repo's own development loop: `nox -s lint tests` on a clean clone of a default
render, the tests' environments (a service's locked dependencies and the test group, nothing
else), a test of those tests (a broken /health fails them), lint that fails and fixes, and a
worker that builds, runs healthy under `nox -s up`, passes its test and turns unhealthy when it
hangs, with its runtime settings from its own settings.env."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import docker
import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from scripts.local_registry import free_port
from scripts.offline_images import ensure as ensure_base_images
from scripts.render import HOST_CA_BUNDLE, OFFLINE_ANSWERS, render, write_env
from tests.conftest import BIN, COMPOSE, nox, run

UV = str(BIN / "uv")
# What points uv and nox at this repository's own environment: a clone starts without them.
OURS = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "NOX_DEFAULT_VENV_BACKEND"}
DEFAULT_PACKAGES = ["shared", "core", "llm", "stt", "tts"]


def git(repo: Path, *args: str) -> str:
    ident = ["-c", "user.name=Team", "-c", "user.email=team@example.com"]
    return run(["git", *ident, "-c", "commit.gpgsign=false", *args], cwd=repo).stdout


def in_clone(clone: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`uv run --frozen nox ARGS` in the clone, as a developer runs it there."""
    base = {key: value for key, value in os.environ.items() if key not in OURS}
    return run([UV, "run", "--frozen", "nox", *args], cwd=clone, base=base, check=check)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A default render (with its tasks: git init, uv lock), committed, then cloned: the clone
    has what git holds and nothing else (no .venv, .nox or .env)."""
    base = tmp_path_factory.mktemp("devloop")
    made = render(base / "made", {})
    git(made, "add", "--all")
    git(made, "commit", "--quiet", "-m", "copier copy")
    run(["git", "clone", "--quiet", str(made), str(base / "clone")], cwd=base)
    return base / "clone"


def test_a_clean_clone_passes_lint_and_tests(clone):
    """`uv run nox -s lint tests` right after `git clone`: ruff, hadolint, then each package's
    tests in an environment of its own, all passing."""
    out = in_clone(clone, "-s", "lint", "tests")
    output = out.stdout + out.stderr
    assert "Session lint was successful" in output and "Session tests was successful" in output
    assert "ruff check ." in output and "ruff format --check ." in output
    ran = re.findall(r"uv run --frozen --exact --package (\w+) --group test ", output)
    assert ran == DEFAULT_PACKAGES
    # shared: its app, the worker loop, the healthcheck; each service: /health and /.
    assert re.findall(r"=+ (\d+) passed", output) == ["3", "2", "2", "2", "2"]


def test_a_services_tests_have_its_images_packages_and_the_test_group(clone):
    """core's test environment holds exactly what uv.lock gives core (what its image installs),
    the test group, and the two workspace packages: none of the dev tools, no other service's."""
    env = clone / ".nox/tests/core"
    listed = run(
        [UV, "pip", "list", "--python", str(env / "bin/python"), "--format", "json"], clone
    )
    have = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    export = ["export", "--frozen", "--package", "core", "--group", "test", "--no-hashes"]
    lines = run([UV, *export, "--no-header", "--no-annotate"], cwd=clone).stdout.splitlines()
    want = {"core": "0.1.0", "shared": "0.1.0"}
    for line in lines:
        requirement, _, marker = line.partition(" ; ")
        if "==" in requirement and (not marker or Marker(marker).evaluate()):
            name, version = requirement.split("==")
            want[canonicalize_name(name)] = version
    assert have == want
    assert "nox" not in have and "starlette" in have and "pytest" in have


def test_a_broken_health_route_fails_the_tests(clone):
    """The test of the tests: /health answering 500 fails every service's health test, in one
    line that names the services; pytest's own options pass through after a second --."""
    app = clone / "shared/src/shared/app.py"
    original = app.read_text()
    healthy = 'return JSONResponse({"status": "ok", "service": service})'
    assert healthy in original
    app.write_text(original.replace(healthy, healthy[:-1] + ", status_code=500)"))
    try:
        broken = in_clone(clone, "-s", "tests", "--", "core", "llm", check=False)
        others = in_clone(clone, "-s", "tests", "--", "core", "--", "-k", "not health")
    finally:
        app.write_text(original)
    assert broken.returncode != 0
    for name in ("core", "llm"):
        assert f"FAILED services/{name}/tests/test_{name}.py::test_health_answers_ok" in (
            broken.stdout
        )
    (line,) = [line for line in broken.stderr.splitlines() if "aborted" in line]
    assert "Session tests aborted: tests failed in core, llm: see above" in line
    assert "1 passed, 1 deselected" in others.stdout  # the rest of core's tests still pass
    assert in_clone(clone, "-s", "tests", "--", "core").returncode == 0  # as it was


def test_lint_fails_on_unformatted_code_and_fixes_it(clone):
    """ruff's check and format check both run and are named; -- --fix mends what it can."""
    extra = clone / "services/core/src/core/extra.py"
    extra.write_text("import os\nimport sys\nVALUE=1\nprint(sys.argv)\n")
    try:
        failed = in_clone(clone, "-s", "lint", check=False)
        fixed = in_clone(clone, "-s", "lint", "--", "--fix")
        text = extra.read_text()
        again = in_clone(clone, "-s", "lint")
    finally:
        extra.unlink()
    assert failed.returncode != 0 and "F401" in failed.stdout
    assert "lint found problems (ruff check, ruff format): see above; nox -s lint -- --fix" in (
        failed.stderr
    )
    assert fixed.returncode == again.returncode == 0
    assert text == "import sys\n\nVALUE = 1\nprint(sys.argv)\n"


# --- a worker, for real ---------------------------------------------------------------------

WORKERS = {
    **OFFLINE_ANSWERS,
    "services": [{"name": "api", "port": 8000}, {"name": "jobs"}],
}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def health(container) -> str:
    """A container's health status, read afresh."""
    container.reload()
    return container.attrs["State"]["Health"]["Status"]


def wait_for(check, seconds: float) -> bool:
    """Whether `check()` came true within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(1)
    return False


@pytest.mark.docker
def test_a_worker_builds_runs_healthy_and_hangs_unhealthy(engine, tmp_path):
    """A service without a port: built with the same stages, up and healthy by its heartbeat
    with nothing published, its runtime settings from services/jobs/settings.env (none of them
    in the image), its test passing; stopped mid-loop (SIGSTOP), its healthcheck says so."""
    repo = render(tmp_path / "repo", WORKERS)
    prefix = f"devloop{uuid.uuid4().hex[:8]}"  # images of its own on a shared engine
    write_env(repo, HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None, IMAGE_PREFIX=prefix)
    ensure_base_images(repo)
    (repo / "services/jobs/settings.env").write_text(
        "MODEL_NAME='tiny $model'\nHEARTBEAT_MAX_AGE=3\nWORK_INTERVAL=1\n"
    )
    (repo / "services/api/settings.env").write_text("MODEL_NAME=from-settings\n")
    port = free_port()
    env = {"COMPOSE_PROJECT_NAME": f"t{uuid.uuid4().hex[:10]}", "API_PORT": str(port)}
    nox(repo, "-s", "build")
    assert "2 passed" in nox(repo, "-s", "tests", "--", "jobs").stdout
    try:
        nox(repo, "-s", "up", env=env)
        ps = run([COMPOSE, "ps", "--format", "json"], cwd=repo, env=env).stdout
        states = {s["Service"]: s for s in map(json.loads, filter(None, ps.splitlines()))}
        assert {name: s["Health"] for name, s in states.items()} == {
            "api": "healthy",
            "jobs": "healthy",
        }
        assert states["jobs"]["Publishers"] in ([], None)  # a worker publishes no port
        assert get_json(f"http://127.0.0.1:{port}/")["model"] == "from-settings"
        worker = engine.containers.get(states["jobs"]["ID"])
        image_env = engine.images.get(f"{prefix}/jobs:latest").attrs["Config"]["Env"]
        assert not [item for item in image_env if item.startswith("MODEL_NAME=")]
        assert "HEARTBEAT_FILE=/tmp/heartbeat" in image_env
        assert "MODEL_NAME=tiny $model" in worker.attrs["Config"]["Env"]  # single-quoted: as is
        assert wait_for(
            lambda: "hello from jobs (model: tiny $model)" in worker.logs().decode(), 30
        )

        worker.kill(signal="SIGSTOP")  # hung: the loop no longer beats
        try:
            assert wait_for(lambda: health(worker) == "unhealthy", 90)
            said = worker.attrs["State"]["Health"]["Log"][-1]["Output"]
            assert said.startswith("unhealthy: last heartbeat ") and "HEARTBEAT_MAX_AGE=3" in said
        finally:
            worker.kill(signal="SIGCONT")
        assert wait_for(lambda: health(worker) == "healthy", 60)  # beating again
    finally:
        nox(repo, "-s", "down", env=env, check=False)
        for name in ("api", "jobs"):
            with contextlib.suppress(docker.errors.NotFound):  # none if the build failed
                engine.images.remove(f"{prefix}/{name}:latest", force=True)
