"""Cache-correct builds: which steps each kind of change reruns, on the benchmark's sample.

The benchmark (scripts/bench.py) times these scenarios against a naive baseline; here the
same edits and builds assert structure only: which steps ran, which were cached, which bytes
are new. Times belong in the benchmark's report.
"""

from __future__ import annotations

import re

import pytest

from scripts import sample as bench

pytestmark = pytest.mark.docker
PREFIX = "cachetest"


def build_one(sample: bench.Variant, scenario: str, service: str) -> bench.Measure:
    (measure,) = bench.build(sample, scenario, [service])
    assert measure.failure == ""
    return measure


@pytest.fixture(scope="module")
def sample(engine, ca_bundle, tmp_path_factory) -> bench.Variant:
    """The benchmark's sample (default answers, an ML team's dependencies, data and logs), built
    once from an empty builder cache, with image names of its own."""
    repo = bench.make_sample(
        tmp_path_factory.mktemp("cache") / "sample", ca_bundle[0], IMAGE_PREFIX=PREFIX
    )
    variant = bench.Variant(
        "optimized", repo, "compose.yaml", PREFIX, tooling=True
    )  # as nox builds
    # The builder starts empty, so each edit below is new to it: a cache left by an earlier
    # run (which ended with these very edits built) would otherwise answer for them.
    bench.empty_builder_cache()
    variant.first = [build_one(variant, "first", name) for name in bench.SERVICES]
    return variant


def test_context_leaves_data_and_logs_out(sample):
    assert (sample.repo / "data/samples.bin").stat().st_size >= 20_000_000
    for measure in sample.first:
        assert 0 < measure.context_bytes < 1_000_000, measure


def test_code_only_change_reruns_only_the_code_step(sample):
    bench.edit_code(sample.repo, "core")
    measure = build_one(sample, "code-only", "core")
    assert measure.ran == ["app: COPY services/core/src /app/services/core/src"]
    code = sample.repo / "services/core/src"
    code_bytes = sum(p.stat().st_size for p in code.rglob("*") if p.is_file())
    assert 0 < measure.new_bytes <= code_bytes + 1_000_000


def test_shared_change_reruns_shared_and_code_steps_only(sample):
    bench.edit_shared(sample.repo)
    stages = {}
    for service in bench.SERVICES:
        stages[service] = sorted(
            step.split(":")[0] for step in build_one(sample, "shared", service).ran
        )
    # Every service rebuilds its shared layer and its code; its dependency layers stay cached.
    # stt's deps are tts's to the byte (the same packages, apt packages and base; requirement
    # files name no service), so the shared layer tts just built is stt's too.
    expected = {service: ["app", "shared"] for service in bench.SERVICES} | {"stt": ["app"]}
    assert stages == expected


def test_added_dependency_fetches_only_the_new_wheel(sample):
    """A small package added: the big packages' layer stays cached, uv fetches the one wheel."""
    bench.add_dependency(sample.repo, "tts", "humanize")
    measure = build_one(sample, "dependency", "tts")
    assert sorted(step.split(":")[0] for step in measure.ran) == [
        "app",
        "deps",
        "deps",
        "export",
        "shared",
    ]
    deps = [step for step in measure.ran if step.startswith("deps:")]
    # The small packages' COPY and install ran; the big ones' (numpy, scipy) stayed cached.
    assert len(deps) == 2 and "requirements/light" in "".join(deps) and "heavy" not in "".join(deps)
    assert measure.prepared == 1  # humanize; uv's cache mount served every other wheel
    assert measure.apt_fetched == 0 and not any("apt-get" in step for step in measure.ran)


def test_version_bump_keeps_the_dependency_layer(sample):
    before = sample.repo / "uv.lock"
    lock_before = before.read_text()
    bench.bump_version(sample.repo, "core")
    assert before.read_text() != lock_before  # the lock file did change
    measure = build_one(sample, "version-bump", "core")
    assert [step.split(":")[0] for step in measure.ran] == ["export"]
    assert measure.new_bytes == 0


def test_export_splits_the_big_packages_from_the_rest(sample, engine):
    """deps installs the big third-party packages apart from the rest, and no workspace package;
    each file from the one index uv locked its packages from (here PyPI, for all)."""
    names = {}
    for part in ("heavy", "light"):
        script = f"ls /app/requirements/{part} && cat /app/requirements/{part}/*.txt"
        text = engine.containers.run(
            f"{PREFIX}/tts:latest", ["sh", "-c", script], remove=True
        ).decode()
        lines = text.splitlines()
        assert lines[0] == "pypi.txt" and "--index-url https://pypi.org/simple" in lines
        names[part] = {
            re.match(r"[\w.-]+", line)[0] for line in lines if re.match(r"[\w.-]+==", line)
        }
        assert not [line for line in lines if line.startswith(("-e", "."))]
    assert names["heavy"] == {"numpy", "scipy"}
    assert {"starlette", "uvicorn", "humanize"} <= names["light"]
    assert not (names["heavy"] | names["light"]) & {"shared", "core", "llm", "tts", "stt"}


def test_all_services_together_run_shared_stages_once(sample):
    """Last: it empties the builder cache (images stay)."""
    bench.empty_builder_cache()
    measures = bench.build(sample, "all-together", bench.SERVICES)
    total = measures[-1]
    assert total.service == "(all)" and total.failure == ""
    # four services, two base images (CPU and GPU): each base step executed once per image
    assert sum("RUN groupadd" in step for step in total.ran) == 2
    assert sum(step.startswith("export:") for step in total.ran) == 4  # one per service
