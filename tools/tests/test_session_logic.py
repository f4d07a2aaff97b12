"""The sessions' own logic, without nox or an engine: options, refusals, the commands run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uvdocker import registry_cache, sessions


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
    with pytest.raises(stopped, match="unknown argument core: lint takes no arguments"):
        repo.lint(session("core"))
    with pytest.raises(stopped, match="unknown option --x: template_check takes no arguments"):
        repo.template_check(session("--x"))


def test_lint_runs_hadolint_on_every_dockerfile(session, tmp_path):
    for name in ("tts", "core"):
        (tmp_path / "services" / name).mkdir(parents=True)
        (tmp_path / "services" / name / "Dockerfile").write_text("FROM scratch\n")
    ran = session()
    sessions.Repo(tmp_path).lint(ran)
    ((hadolint, *args),) = ran.ran
    assert hadolint.endswith("hadolint")
    assert args == [
        "--config",
        ".hadolint.yaml",
        "services/core/Dockerfile",
        "services/tts/Dockerfile",
    ]


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
