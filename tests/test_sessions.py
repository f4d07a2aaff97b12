"""Every day-to-day nox session of the generated repo, run for real against the engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from noxtools import buildlog
from tests.conftest import COMPOSE, free_port, nox, run

pytestmark = pytest.mark.docker
SERVICES = ["core", "llm", "stt", "tts"]


def sizes_in_bytes(column: list[str]) -> list[float]:
    """'174.0 MB' style cells as bytes."""
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    return [float(value) * units[unit] for value, unit in (cell.split() for cell in column)]


def test_build_parallel_runs_shared_stages_once(built_repo):
    repo, _ = built_repo
    nox(repo, "-s", "build")  # warm: another test may have emptied the builder cache
    app = repo / "services/llm/src/llm/app.py"
    original = app.read_text()
    try:
        app.write_text(original + f"\n# {uuid.uuid4().hex}\n")
        out = nox(repo, "-s", "build_parallel")
    finally:
        app.write_text(original)
    assert re.search(r"^service\s+seconds\s+run\s+cached\s+size$", out.stdout, re.MULTILINE)
    for service in SERVICES:
        assert re.search(
            rf"^{service}\s+[\d.]+\s+\d+\s+\d+\s+[\d.]+ [kMG]?B$", out.stdout, re.MULTILINE
        ), service
    steps = buildlog.parse(out.stdout.splitlines())
    # Four services, two base images: each base step is one vertex, whoever needs it.
    assert len([s for s in steps if s.text.startswith("RUN groupadd")]) == 2
    assert [(s.stage, s.text.split()[1]) for s in steps if not s.cached] == [
        ("app", "services/llm/src")
    ]


def test_history_lists_layers_biggest_first(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "history", "--", "core").stdout
    lines = out[out.index("size  ") :].splitlines()
    rows = [line for line in lines[2:] if re.match(r"^\s*[\d.]+ [kMG]?B  ", line)]
    sizes = sizes_in_bytes([" ".join(row.split()[:2]) for row in rows])
    assert sizes == sorted(sizes, reverse=True) and len(rows) >= 4
    assert any("uv pip sync" in row for row in rows)  # the dependency layer, with its step
    assert any("COPY services/core/src" in row for row in rows)
    assert re.search(r"^total: [\d.]+ [kMG]?B in \d+ layers$", out, re.MULTILINE)


def test_du_reports_images_and_cache_mounts(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "du").stdout
    rows = [
        line.split() for line in out.splitlines() if line.split()[:1] in [[s] for s in SERVICES]
    ]
    assert sorted(row[0] for row in rows) == SERVICES
    sizes = sizes_in_bytes([" ".join(row[2:4]) for row in rows])
    assert sizes == sorted(sizes, reverse=True)
    assert "cache mount /root/.cache/uv" in out and "cache mount /var/cache/apt" in out


def test_lint_passes_and_fails_on_a_bad_dockerfile(built_repo):
    repo, _ = built_repo
    assert nox(repo, "-s", "lint").returncode == 0
    bad = repo / "services/bad"
    bad.mkdir()
    try:
        (bad / "Dockerfile").write_text("FROM python:latest\nRUN apt-get update\n")
        out = nox(repo, "-s", "lint", check=False)
    finally:
        shutil.rmtree(bad)
    assert out.returncode != 0
    assert "services/bad/Dockerfile" in out.stdout and "DL3007" in out.stdout


def test_dive_passes_on_service_images(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "dive", "--", "core", "tts")
    assert out.stdout.count("Result:PASS") == 2


def test_dive_reads_a_saved_archive_too(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "dive", "--", "llm", env={"DIVE_SOURCE": "archive"})
    assert "docker-archive" in out.stderr and out.stdout.count("Result:PASS") == 1


def test_dive_fails_on_a_wasteful_image(built_repo, engine, tmp_path):
    repo, _ = built_repo
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\nRUN head -c 40000000 /dev/urandom > /blob\nRUN rm /blob\n"
    )
    tag = f"wasteful:{uuid.uuid4().hex[:8]}"
    engine.images.build(path=str(tmp_path), tag=tag, rm=True)
    try:
        out = nox(repo, "-s", "dive", "--", f"--image={tag}", check=False)
    finally:
        engine.images.remove(tag, force=True)
    assert out.returncode != 0
    assert "Result:FAIL" in out.stdout and "dive found wasted space in " + tag in out.stderr


def test_history_and_dive_need_built_images(built_repo):
    repo, _ = built_repo
    env = {"IMAGE_PREFIX": f"never-built-{uuid.uuid4().hex[:6]}"}
    for session in ("history", "dive"):
        out = nox(repo, "-s", session, "--", "core", env=env, check=False)
        assert out.returncode != 0
        assert f"no image {env['IMAGE_PREFIX']}/core:latest for core: build it first" in out.stderr


def test_broken_compose_file_is_one_line(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "du", env={"COMPOSE_FILE": "nope.yaml"}, check=False)
    assert out.returncode != 0
    (line,) = [line for line in out.stderr.splitlines() if "aborted" in line]
    assert "docker compose config failed:" in line and "nope.yaml" in line
    assert "Traceback" not in out.stderr


def test_buildkit_off_is_refused(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "build", env={"DOCKER_BUILDKIT": "0"}, check=False)
    assert out.returncode != 0 and "DOCKER_BUILDKIT=0 turns BuildKit off" in out.stderr


def test_cuda_check_without_a_gpu(built_repo):
    """This host has no NVIDIA GPU: the session says so and exits 3, or 0/1 as .env asks."""
    repo, _ = built_repo
    out = nox(repo, "-s", "cuda_check", check=False)
    assert out.returncode == 3
    assert "no NVIDIA GPU on this host: nvidia-smi not found" in out.stdout
    assert nox(repo, "-s", "cuda_check", env={"CUDA_CHECK_NO_GPU": "pass"}).returncode == 0
    failing = nox(repo, "-s", "cuda_check", env={"CUDA_CHECK_NO_GPU": "fail"}, check=False)
    assert failing.returncode == 1
    bogus = nox(repo, "-s", "cuda_check", env={"CUDA_CHECK_NO_GPU": "maybe"}, check=False)
    assert bogus.returncode == 1 and "use one of status, pass, fail" in bogus.stderr
    cpu_only = nox(repo, "-s", "cuda_check", "--", "core", check=False)
    assert cpu_only.returncode == 1 and "no GPU service among those named" in cpu_only.stderr


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry serving on 127.0.0.1 at a free port."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def registry_json(url: str, accept: str = "") -> dict:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_push_to_a_local_registry_with_inline_cache(built_repo, registry):
    repo, _ = built_repo
    env = {"IMAGE_PREFIX": f"{registry}/morgan", "TAG": "ci"}
    nox(repo, "-s", "push", "--", "core", env=env)
    assert "morgan/core" in registry_json(f"http://{registry}/v2/_catalog")["repositories"]
    assert registry_json(f"http://{registry}/v2/morgan/core/tags/list")["tags"] == ["ci"]
    manifest = registry_json(
        f"http://{registry}/v2/morgan/core/manifests/ci",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    config = registry_json(f"http://{registry}/v2/morgan/core/blobs/{manifest['config']['digest']}")
    assert "moby.buildkit.cache.v0" in config  # inline cache metadata travels with the image


def test_push_without_registry_is_refused(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "push", env={"IMAGE_PREFIX": "morgan"}, check=False)
    assert out.returncode != 0 and "IMAGE_PREFIX=morgan names no registry" in out.stderr


def offline_rebuild(repo: Path) -> tuple[list[buildlog.Step], str]:
    """Build core with uv forbidden to touch the network: (its steps, why it failed or "")."""
    out = run(
        [COMPOSE, "--progress", "plain", "build", "core"],
        cwd=repo,
        env={"UV_OFFLINE": "1"},
        check=False,
    )
    lines = (out.stdout + out.stderr).splitlines()
    steps = buildlog.parse(lines, default_service="core")
    return steps, buildlog.failure(lines) or (f"exit {out.returncode}" if out.returncode else "")


def test_prune_keeps_cache_mounts_and_all_removes_them(built_repo):
    """Last in this file: it empties the builder cache, then rebuilds what it took."""
    repo, _ = built_repo
    # Every layer goes (none is younger than 0s, none of it is kept), the cache mounts stay.
    prune_layers = {"PRUNE_UNTIL": "0s", "PRUNE_KEEP_STORAGE": "0"}
    nox(repo, "-s", "prune", env=prune_layers)
    run([COMPOSE, "build", "core"], cwd=repo)  # reinstalls with the network: fills the uv cache
    out = nox(repo, "-s", "prune", env=prune_layers)
    assert "kept cache mounts" in out.stderr and "reclaimed:" in out.stdout
    assert "cache mount /root/.cache/uv" in out.stdout
    steps, why = offline_rebuild(repo)
    sync = [s for s in steps if "uv pip sync" in s.text]
    # The install really ran, with no network for uv: every wheel came from the kept cache mount.
    assert why == "" and [s.status for s in sync] == ["DONE"]

    out = nox(repo, "-s", "prune", "--", "--all")
    assert "removed all builder cache" in out.stderr
    after = out.stdout.split("reclaimed:")[0]
    uv_row = [line.split() for line in after.splitlines() if "/root/.cache/uv" in line]
    assert not uv_row or uv_row[0][-2:] == ["0", "B"]
    _, why = offline_rebuild(repo)  # now uv has nothing cached and may not download
    assert "uv pip sync" in why
    nox(repo, "-s", "build")  # leave the images and caches as the other tests expect
