"""The sessions' own logic, without nox or an engine: options, refusals, the commands run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from uvdocker import build, registry_cache, sessions


def test_build_options_mix_services_and_flags(session):
    args = sessions.build_options(session("core", "--no-cache", "tts", "--platform", "linux/arm64"))
    assert (args.services, args.flags, args.platform) == (
        ["core", "tts"],
        ["--no-cache"],
        "linux/arm64",
    )
    args = sessions.build_options(session("--pull", "--platform=linux/amd64,linux/arm64"))
    assert (args.services, args.flags, args.platform) == ([], ["--pull"], "linux/amd64,linux/arm64")


@pytest.mark.parametrize(
    ("posargs", "said"),
    [
        (
            ["--squash"],
            "unknown option --squash: build takes services, --no-cache, --pull, --platform",
        ),
        (["--no"], "unknown option --no: build takes"),  # no abbreviations
        (["--platform", "windows"], "--platform 'windows': give one like linux/arm64"),
        (["--platform"], "build: argument --platform: expected one argument"),
    ],
)
def test_build_options_refused_in_one_line(session, stopped, posargs, said):
    with pytest.raises(stopped) as stopped:
        sessions.build_options(session(*posargs))
    assert str(stopped.value).startswith(said)


def test_sessions_without_arguments_refuse_them(session, stopped, tmp_path):
    repo = sessions.Repo(tmp_path)
    with pytest.raises(stopped, match="unknown argument core: lint takes --fix"):
        repo.lint(session("core"))
    with pytest.raises(stopped, match="unknown option --x: template_check takes no arguments"):
        repo.template_check(session("--x"))


def dockerfiles(root: Path, *names: str) -> None:
    for name in names:
        (root / "services" / name).mkdir(parents=True)
        (root / "services" / name / "Dockerfile").write_text("FROM scratch\n")


def test_lint_runs_ruff_and_hadolint_on_the_workspace(session, tmp_path):
    dockerfiles(tmp_path, "tts", "core")
    ran = session()
    sessions.Repo(tmp_path).lint(ran)
    ruff_check, ruff_format, (hadolint, *args) = ran.ran
    assert [Path(ruff_check[0]).name, *ruff_check[1:]] == ["ruff", "check", "."]
    assert [Path(ruff_format[0]).name, *ruff_format[1:]] == ["ruff", "format", "--check", "."]
    assert hadolint.endswith("hadolint")
    assert args == [
        "--config",
        ".hadolint.yaml",
        "services/core/Dockerfile",
        "services/tts/Dockerfile",
    ]


def test_lint_fix_lets_ruff_fix_and_format(session, tmp_path):
    ran = session("--fix")
    sessions.Repo(tmp_path).lint(ran)
    assert [cmd[1:] for cmd in ran.ran[:2]] == [["check", "--fix", "."], ["format", "."]]


def test_lint_runs_every_check_and_names_those_that_failed(session, stopped, tmp_path):
    dockerfiles(tmp_path, "core")
    ran = session()
    ran.fails = {"ruff", "hadolint"}
    with pytest.raises(stopped) as said:
        sessions.Repo(tmp_path).lint(ran)
    assert len(ran.ran) == 3  # a failed check does not hide the next one's problems
    assert str(said.value) == (
        "lint found problems (ruff check, ruff format, hadolint): see above; "
        "nox -s lint -- --fix fixes what ruff can"
    )


def workspace(root: Path, services: dict[str, str]) -> None:
    """A workspace whose services have tests: name -> the groups of its pyproject.toml."""
    (root / "uv.lock").write_text("")
    for name, groups in {"shared": "", **services}.items():
        folder = root / ("shared" if name == "shared" else f"services/{name}")
        (folder / "tests").mkdir(parents=True)
        (folder / "pyproject.toml").write_text(f"[project]\nname = '{name}'\n{groups}")
        (folder / "tests" / f"test_{name}.py").write_text("def test_it():\n    pass\n")


TORCH_GROUPS = "[dependency-groups]\ncpu = ['torch']\ncuda = ['torch']\n"


@pytest.fixture
def locked(monkeypatch):
    """check_lock passes: the lock is not what these tests are about."""
    monkeypatch.setattr(sessions.Repo, "check_lock", lambda self, session: None)


def test_tests_run_each_package_in_an_environment_of_its_own(session, tmp_path, locked):
    workspace(tmp_path, {"core": "", "tts": TORCH_GROUPS})
    ran = session()
    sessions.Repo(tmp_path).tests(ran)
    uv = [[Path(cmd[0]).name, *cmd[1:]] for cmd in ran.ran]
    common = ["uv", "run", "--frozen", "--exact", "--package"]
    python = ["--python", sys.executable, "pytest"]
    assert uv == [
        [*common, "shared", "--group", "test", *python, "shared"],
        [*common, "core", "--group", "test", *python, "services/core"],
        [*common, "tts", "--group", "test", "--group", "cpu", *python, "services/tts"],
    ]
    environments = [kwargs["env"]["UV_PROJECT_ENVIRONMENT"] for kwargs in ran.kwargs]
    assert environments == [
        str(tmp_path / ".nox/tests" / name) for name in ("shared", "core", "tts")
    ]
    assert all(kwargs["env"]["VIRTUAL_ENV"] is None for kwargs in ran.kwargs)


def test_tests_of_those_named_with_cuda_and_pytest_options(session, tmp_path, locked):
    """Only tts, with its `cuda` group; what follows the second `--` reaches pytest."""
    workspace(tmp_path, {"core": "", "tts": TORCH_GROUPS})
    ran = session("tts", "--cuda", "--", "-k", "health", "-x")
    sessions.Repo(tmp_path).tests(ran)
    ((_, *cmd),) = ran.ran
    assert cmd[:10] == [
        "run", "--frozen", "--exact", "--package", "tts", "--group", "test", "--group", "cuda",
        "--python",
    ]  # fmt: skip
    assert cmd[-5:] == ["pytest", "services/tts", "-k", "health", "-x"]


def test_tests_refuse_an_unknown_service_and_name_the_failed_ones(
    session, stopped, tmp_path, locked
):
    workspace(tmp_path, {"core": "", "llm": ""})
    with pytest.raises(stopped, match="unknown service nope: known are shared, core, llm"):
        sessions.Repo(tmp_path).tests(session("core", "nope"))
    (tmp_path / "services/llm/tests/test_llm.py").unlink()  # a service without tests is said
    ran = session()
    ran.fails = {"uv"}
    with pytest.raises(stopped, match=r"^tests failed in shared, core: see above$"):
        sessions.Repo(tmp_path).tests(ran)
    assert "llm: no tests (test_*.py) in services/llm" in ran.logged


def test_no_registry_cache_without_a_registry(session, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_PREFIX", "morgan")
    assert sessions.Repo(tmp_path).registry_cache(session(), None, write=False) == ()
    monkeypatch.setenv("IMAGE_PREFIX", "registry.example.com/team")
    monkeypatch.setenv("REGISTRY_CACHE", "off")
    assert sessions.Repo(tmp_path).registry_cache(session(), None, write=False) == ()


def fake_buildx(folder: Path, printed: dict, status: int = 0) -> str:
    """A buildx plugin whose `bake --print` prints `printed`, and writes its environment."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / "docker-buildx"
    (folder / "printed.json").write_text(json.dumps(printed))
    plugin.write_text(
        "#!/bin/sh\n"
        f'env > "{folder}/env"; echo "$@" > "{folder}/args"\n'
        f"[ {status} = 0 ] || {{ echo 'ERROR: failed to parse docker-bake.hcl' >&2; "
        f"exit {status}; }}\n"
        f'cat "{folder}/printed.json"\n'
    )
    plugin.chmod(0o755)
    return str(plugin)


def test_registry_cache_refs_are_bakes(tmp_path, monkeypatch):
    """Both forms bake prints (objects from buildx 0.29, strings from 0.13), asked for the
    default branch's cache with CI's variables, written only when asked."""
    monkeypatch.setenv("BRANCH", "feature")  # a CI variable in the shell is not what counts
    printed = {
        "target": {
            "core": {
                "cache-from": [{"type": "registry", "ref": "r.example.com/t/core:buildcache"}],
                "cache-to": [
                    {"type": "registry", "ref": "r.example.com/t/core:buildcache", "mode": "max"}
                ],
            },
            "llm": {
                "cache-from": ["type=registry,ref=r.example.com/t/llm:buildcache"],
                "cache-to": ["type=registry,ref=r.example.com/t/llm:buildcache,mode=max"],
            },
        }
    }
    plugin = fake_buildx(tmp_path / "bin", printed)
    refs = registry_cache.refs(tmp_path, plugin, write=True)
    assert refs == {
        "core": {
            "cache_from": ["type=registry,ref=r.example.com/t/core:buildcache"],
            "cache_to": ["type=registry,ref=r.example.com/t/core:buildcache,mode=max"],
        },
        "llm": {
            "cache_from": ["type=registry,ref=r.example.com/t/llm:buildcache"],
            "cache_to": ["type=registry,ref=r.example.com/t/llm:buildcache,mode=max"],
        },
    }
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "bin/env").read_text().splitlines()
        if "=" in line
    )
    assert (env["CACHE"], env["BRANCH"], env["CACHE_WRITE"]) == ("registry", "", "true")
    assert (tmp_path / "bin/args").read_text().split() == [
        "bake",
        "-f",
        "compose.yaml",
        "-f",
        "docker-bake.hcl",
        "--print",
    ]
    assert "cache_to" not in registry_cache.refs(tmp_path, plugin, write=False)["core"]


def test_registry_cache_from_a_broken_bake_file_is_one_line(tmp_path):
    plugin = fake_buildx(tmp_path / "bin", {}, status=1)
    with pytest.raises(sessions.HostError) as refused:
        registry_cache.refs(tmp_path, plugin, write=False)
    assert str(refused.value) == (
        "the registry cache refs come from docker-bake.hcl, and bake cannot read it (failed to "
        "parse docker-bake.hcl): fix it, or set REGISTRY_CACHE=off in .env"
    )


@pytest.mark.parametrize(
    ("prefix", "under"),
    [
        ("morgan", False),
        ("registry.example.com/t", True),
        ("localhost/x", True),
        ("team/x", False),
        ("h:5000/x", True),
    ],
)
def test_under_registry(prefix, under):
    assert registry_cache.under_registry(prefix) is under


def test_setup_warns_of_unknown_env_keys_and_stops_on_refused_ones(session, stopped, tmp_path):
    """The session's first step: a key no setting uses is a warning of the session; a key never
    taken from .env ends it in one line, before any command runs."""
    (tmp_path / ".copier-answers.yml").write_text("services:\n- {name: core, port: 8000}\n")
    (tmp_path / ".env").write_text("CORE_PORT=8001\nPRUNE_UNTL=1h\n")
    repo, warned = sessions.Repo(tmp_path), session()
    repo.setup(warned)
    assert warned.warned == [
        ".env line 2: PRUNE_UNTL is not a setting of this repo, so the sessions ignore it; did "
        "you mean PRUNE_UNTIL? (.env.example lists them)"
    ]
    (tmp_path / ".env").write_text("DOCKER_HOST=tcp://other-host:2375\n")
    ran = session()
    with pytest.raises(stopped) as refused:
        repo.setup(ran)
    assert str(refused.value).startswith(".env line 1: DOCKER_HOST is never taken from .env")
    assert ran.ran == []


@pytest.mark.parametrize(
    ("name", "posargs", "said"),
    [
        ("build", [], "nox -s build"),
        ("push", ["core", "--no-cache"], "nox -s push -- core --no-cache"),
        (
            "build",
            ["--platform", "linux/arm64", "a b"],
            "nox -s build -- --platform linux/arm64 'a b'",
        ),
    ],
)
def test_rerun_is_the_command_as_it_was_run(name, posargs, said):
    assert sessions.rerun(name, posargs) == said


def test_a_build_whose_engine_went_away_is_one_line(session, stopped, monkeypatch):
    """The build had started, and the engine no longer answers: the endpoint, what the client
    said, and the command to run once it is back."""

    def gone():
        raise sessions.HostError("Docker Engine not reachable at unix:///run/x.sock")

    monkeypatch.setattr(sessions, "engine", gone)
    monkeypatch.setattr(sessions, "endpoint", lambda: "unix:///run/x.sock")
    result = build.Build(started=True, error="failed to receive status: rpc error: EOF")
    with pytest.raises(stopped) as said:
        sessions.Repo(Path(".")).engine_gone(
            session(), result, "build of core", "nox -s build -- core"
        )
    assert str(said.value) == (
        "build of core failed: the Docker Engine at unix:///run/x.sock stopped answering during "
        "the build (failed to receive status: rpc error: EOF): start it, then rerun "
        "nox -s build -- core"
    )
    # Never started: the engine was out of reach from the start, which engine() says itself.
    sessions.Repo(Path(".")).engine_gone(session(), build.Build(error="x"), "build of core", "")


def test_a_build_the_engine_dropped_and_answers_again_says_so(session, stopped, monkeypatch):
    monkeypatch.setattr(sessions, "engine", lambda: None)
    monkeypatch.setattr(sessions, "endpoint", lambda: "ssh://me@gpu-box")
    error = "failed to receive status: rpc error: code = Unavailable desc = error reading from"
    with pytest.raises(stopped) as said:
        sessions.Repo(Path(".")).engine_gone(
            session(),
            build.Build(started=True, error=error),
            "build of every service",
            "nox -s build",
        )
    assert str(said.value).endswith("it answers again now): rerun nox -s build")
    # An engine that answers and a build that failed on its own: not the engine's doing.
    failed = build.Build(started=True, error="process did not complete successfully")
    sessions.Repo(Path(".")).engine_gone(session(), failed, "build of core", "")


def fake_docker(folder: Path, version: str) -> str:
    """A docker CLI whose `docker version` says `version`, first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    cli = folder / "docker"
    cli.write_text(f"#!/bin/sh\necho {version}\n")
    cli.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize(("version", "warned"), [("26.1.5+dfsg1", True), ("28.0.1", False)])
def test_no_cache_hazard_before_engine_28(tmp_path, monkeypatch, version, warned):
    monkeypatch.setenv("PATH", fake_docker(tmp_path, version))
    said = sessions.no_cache_hazard()
    assert bool(said) is warned
    assert not warned or said.startswith(f"--no-cache on Docker Engine {version}: before 28")
