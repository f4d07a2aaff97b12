"""Every day-to-day nox session of the generated repo, run for real against the engine."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import uuid
from pathlib import Path

import pytest

from tests.conftest import COMPOSE, compose_build, nox, run
from uvdocker import build

pytestmark = pytest.mark.docker
SERVICES = ["core", "llm", "stt", "tts"]


def sizes_in_bytes(column: list[str]) -> list[float]:
    """'174.0 MB' style cells as bytes."""
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    return [float(value) * units[unit] for value, unit in (cell.split() for cell in column)]


def test_build_runs_every_service_in_one_build(built_repo):
    """One Compose build: a step that several services share runs once (build_parallel alike)."""
    repo, _ = built_repo
    nox(repo, "-s", "build")  # warm: another test may have emptied the builder cache
    app = repo / "services/llm/src/llm/app.py"
    original = app.read_text()
    try:
        app.write_text(original + f"\n# {uuid.uuid4().hex}\n")
        out = nox(repo, "-s", "build_parallel", env={"BUILDKIT_PROGRESS": "plain"})
    finally:
        app.write_text(original)
    assert re.search(r"^service\s+seconds\s+run\s+cached$", out.stdout, re.MULTILINE)
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.stdout.splitlines()
        if line.split()[:1] in [[s] for s in SERVICES]
    }
    assert {s: rows[s][1] for s in SERVICES} == {"core": "0", "llm": "1", "stt": "0", "tts": "0"}
    assert out.stderr.count("docker-buildx bake") == 1  # one build for all, logged
    # plain progress: every step, cached ones too, and the output of the step that ran
    assert "[llm app 1/1] COPY services/llm/src /app/services/llm/src  DONE" in out.stdout
    assert "[core base 3/4] RUN groupadd" in out.stdout and "CACHED" in out.stdout


def test_history_lists_layers_biggest_first(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "history", "--", "core").stdout
    lines = out[out.index("size  ") :].splitlines()
    rows = [line for line in lines[2:] if re.match(r"^\s*[\d.]+ [kMG]?B  ", line)]
    sizes = sizes_in_bytes([" ".join(row.split()[:2]) for row in rows])
    assert sizes == sorted(sizes, reverse=True) and len(rows) >= 4
    assert any("uv pip install" in row for row in rows)  # the dependency layers, with their steps
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
    assert not list((repo / ".nox").rglob("*.tar"))  # the archive is gone again


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


def test_a_stale_lock_is_refused_before_building(built_repo):
    """A dependency added to a pyproject.toml without `uv lock`: one line naming uv lock, no
    build (Compose would build the old dependency set, from the stale lock)."""
    repo, _ = built_repo
    pyproject = repo / "services/llm/pyproject.toml"
    original = pyproject.read_text()
    try:
        pyproject.write_text(original.replace('    "shared",\n', '    "shared",\n    "idna>=3",\n'))
        out = nox(repo, "-s", "build", "--", "llm", check=False)
    finally:
        pyproject.write_text(original)
    assert out.returncode != 0 and "--progress json build" not in out.stderr  # nothing built
    (line,) = [line for line in out.stderr.splitlines() if "aborted" in line]
    assert "uv.lock does not match the pyproject.toml files (" in line and "run uv lock" in line
    assert nox(repo, "-s", "build", "--", "llm").returncode == 0  # as it was: builds again


def test_buildkit_off_is_refused(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "build", env={"DOCKER_BUILDKIT": "0"}, check=False)
    assert out.returncode != 0
    assert "DOCKER_BUILDKIT='0' (in the shell) must be one of 1, true" in out.stderr


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
    assert bogus.returncode == 1 and "must be one of status, pass, fail" in bogus.stderr
    cpu_only = nox(repo, "-s", "cuda_check", "--", "core", check=False)
    assert cpu_only.returncode == 1 and "no GPU service among those named" in cpu_only.stderr


def test_push_writes_a_registry_cache_with_every_stage(built_repo, registry, ca_bundle, tmp_path):
    """push: the image, and beside it <image>:buildcache in mode=max, holding the stages the
    image leaves out (the export stage's requirements) and no secret of the build."""
    repo, _ = built_repo
    _, ca_marker = ca_bundle
    netrc_marker = f"netrc-marker-{uuid.uuid4().hex}"
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine example.invalid login team password {netrc_marker}\n")
    env = {"IMAGE_PREFIX": f"{registry.host}/pushed", "TAG": "ci", "NETRC_FILE": str(netrc)}
    # A new line of code, so the steps run and the cache is written now, with the secrets mounted.
    app = repo / "services/core/src/core/app.py"
    original = app.read_text()
    try:
        app.write_text(original + f"\n# {uuid.uuid4().hex}\n")
        out = nox(repo, "-s", "push", "--", "core", env={**env, "BUILDKIT_PROGRESS": "plain"})
    finally:
        app.write_text(original)
    assert "registry cache read and written" in out.stderr
    assert registry.get("/v2/pushed/core/tags/list")["tags"] == ["buildcache", "ci"]
    cache = registry.manifest("pushed/core", "buildcache")
    assert cache["config"]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    image_layers = {
        layer["digest"] for layer in registry.image_manifest("pushed/core", "ci")["layers"]
    }
    cache_layers = {layer["digest"] for layer in cache["layers"]}
    # Pushed layers and cache layers are gzip, though the local images' own are uncompressed.
    pushed = registry.image_manifest("pushed/core", "ci")["layers"] + cache["layers"]
    assert {layer["mediaType"].rsplit(".", 1)[-1] for layer in pushed} == {"tar+gzip"}
    assert image_layers <= cache_layers and cache_layers - image_layers  # mode=max: more stages
    blobs = [registry.blob("pushed/core", layer["digest"]) for layer in cache["layers"]]
    blobs.append(registry.blob("pushed/core", cache["config"]["digest"]))
    for blob in blobs:
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        assert ca_marker not in data and netrc_marker.encode() not in data


def test_push_without_registry_is_refused(built_repo):
    repo, _ = built_repo
    out = nox(repo, "-s", "push", env={"IMAGE_PREFIX": "morgan"}, check=False)
    assert out.returncode != 0 and "IMAGE_PREFIX=morgan names no registry" in out.stderr


def offline_rebuild(repo: Path) -> tuple[list[build.Step], str]:
    """Build core with uv forbidden to touch the network: (its steps, why it failed or "")."""
    logged = compose_build(repo, "core", env={"UV_OFFLINE": "1"})
    return logged.build.of("core"), logged.build.error


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
    installs = [s for s in steps if "uv pip install" in s.text]
    # The installs really ran, with no network for uv: every wheel came from the kept cache mount.
    assert why == "" and [s.cached for s in installs] == [False, False]

    out = nox(repo, "-s", "prune", "--", "--all")
    assert "removed all builder cache" in out.stderr
    after = out.stdout.split("reclaimed:")[0]
    uv_row = [line.split() for line in after.splitlines() if "/root/.cache/uv" in line]
    assert not uv_row or uv_row[0][-2:] == ["0", "B"]
    _, why = offline_rebuild(repo)  # now uv has nothing cached and may not download
    assert "uv pip install" in why
    nox(repo, "-s", "build")  # leave the images and caches as the other tests expect


def test_sbom_lists_the_locked_dependencies(built_repo):
    """nox -s sbom: an SPDX JSON per image, whose Python packages are core's, as uv.lock pins."""
    repo, _ = built_repo
    nox(repo, "-s", "sbom", "--", "core")
    sbom = json.loads((repo / "sbom/core.spdx.json").read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    found = {
        (package["name"].lower().replace("_", "-"), package["versionInfo"])
        for package in sbom["packages"]
        if any("pkg:pypi/" in ref.get("referenceLocator", "") for ref in package["externalRefs"])
    }
    export = ["uv", "export", "--frozen", "--package", "core", "--no-emit-workspace", "--no-dev"]
    locked = run([*export, "--no-hashes", "--no-header", "--no-annotate"], cwd=repo).stdout
    requirements = [line.split(" ;")[0] for line in locked.splitlines() if "==" in line]
    pinned = {tuple(line.lower().split("==")) for line in requirements}  # markers left out
    assert pinned and found == pinned
