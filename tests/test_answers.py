"""Answers are allow-listed: a bad or hostile one is refused with one line that says what is
allowed, and nothing is written; an unusual but valid one renders into files that Compose,
TOML, YAML and hadolint accept, with no instruction or key the answer did not ask for.

Answers come from people, data files, portals and the committed .copier-answers.yml that
`copier update` replays, and land unescaped in Dockerfiles, compose.yaml and TOML, so every
case here is something a careless user or an attacker could send.
"""

from __future__ import annotations

import importlib.metadata
import keyword
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.offline_images import ensure as ensure_base_images
from scripts.render import OFFLINE_ANSWERS, TEMPLATE, render, write_env
from tests.conftest import compose_config, hadolint_passes, nox
from uvdocker import host, rules

# What copier.yml allows for a service name (the validator holds the same pattern).
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9]*(?:__?[a-z0-9]+)*\Z")
IDENTIFIER = "lowercase Python identifier"
PORT_RANGE = "integer from 1 to 65535"
CHARS = "must not hold spaces, quotes, $, ; or control characters"  # uvdocker.host's words
APT = "must be a Debian package name"
REGISTRY = "must be a lowercase registry host"
MIRROR = "image_mirror must be a lowercase registry host"
NO_CREDENTIALS = "must hold no credentials"
HTTPS = "must be an https:// URL (http:// only on localhost)"
INJECT = "RUN touch /INJECTED"
TORCH = "must be none, cpu or cuda"
YAML_WORD = "is a YAML word for true, false or null"
TOKEN = "looks like a token"
TEXT = "must be text on one line"


def alias_bomb(depth: int = 9, width: int = 9) -> list:
    """What YAML aliases make of a few hundred bytes (`a1: &a1 [*a0, *a0, ...]`, nine deep):
    nested lists that share their items, billions of strings once turned into one."""
    bomb: list = ["lol"]
    for _ in range(depth):
        bomb = [bomb] * width
    return bomb


BOMB = alias_bomb()
DIGEST = "sha256:" + "0123456789abcdef" * 4


def svc(name: Any = "core", port: Any = 8000, **extra: Any) -> dict[str, Any]:
    """One service mapping, as the services answer holds it."""
    return {"services": [{"name": name, "port": port, **extra}]}


def apt(*packages: Any) -> dict[str, Any]:
    """A CPU service with these apt_packages."""
    return svc(apt_packages=list(packages))


# id: (answers, a part of the one-line refusal)
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    # Mistakes.
    "uppercase-name": (svc("Core"), IDENTIFIER),
    "hyphen-name": (svc("my-svc"), IDENTIFIER),
    "digit-first-name": (svc("1svc"), IDENTIFIER),
    "reserved-name": (svc("shared"), '"shared" is reserved'),
    "duplicate-names": (
        {"services": [{"name": "core", "port": 8000}, {"name": "core", "port": 8001}]},
        '"core" is used twice',
    ),
    "duplicate-ports": (
        {"services": [{"name": "core", "port": 8000}, {"name": "llm", "port": 8000}]},
        "port 8000 is used by two services",
    ),
    "empty-services": ({"services": []}, "non-empty YAML list"),
    "services-not-list": ({"services": "core"}, "non-empty YAML list"),
    "services-mapping": ({"services": {"name": "core", "port": 8000}}, "non-empty YAML list"),
    "port-not-int": (svc(port="http"), PORT_RANGE),
    "port-out-of-range": (svc(port=70000), PORT_RANGE),
    "port-bool": (svc(port=True), PORT_RANGE),
    "missing-name": ({"services": [{"port": 8000}]}, "at least a name"),
    # No port is a worker; a port of null is no port at all.
    "port-null": (svc(port=None), PORT_RANGE),
    "gpu-not-bool": (svc(port=1, gpu="yes"), "true or false"),
    "apt-not-list": (svc(port=1, apt_packages="curl"), "must be a list"),
    "apt-mapping": (svc(apt_packages={"curl": "7.88"}), "must be a list"),
    "python-3.10": ({"python_version": "3.10"}, "3.11"),
    "cuda-two-parts": ({"cuda_version": "13.0"}, "must look like 13.0.1"),
    "cuda-prefixed": ({"cuda_version": "v13.0.1"}, "must look like 13.0.1"),
    "registry-scheme": ({"registry": "https://registry.example.com"}, "without scheme"),
    "mirror-no-slash": ({"image_mirror": "harbor.example.com/proxy"}, 'must end with "/"'),
    "index-not-url": ({"pypi_index_url": "nexus.example.com/simple"}, HTTPS),
    "index-credentials": (
        {"pypi_index_url": "https://user:secret@nexus.example.com/simple"},
        NO_CREDENTIALS,
    ),
    "syntax-with-space": ({"dockerfile_syntax": "docker/dockerfile 1"}, CHARS),
    "slug-uppercase": ({"project_slug": "Morgan"}, "lowercase letters"),
    "slug-trailing-hyphen": ({"project_slug": "morgan-"}, "lowercase letters"),
    "slug-from-digit-name": ({"project_name": "3D Studio"}, "must start with a letter"),
    "apt-space-two-packages": (apt("curl wget"), APT),
    "apt-uppercase": (apt("Curl"), APT),
    "apt-target-release": (apt("curl/bookworm-backports"), APT),
    "apt-not-string": (apt(7), APT),
    "registry-uppercase": ({"registry": "Registry.example.com/team"}, REGISTRY),
    "registry-tag": ({"registry": "registry.example.com/team:latest"}, REGISTRY),
    "registry-trailing-slash": ({"registry": "registry.example.com/team/"}, REGISTRY),
    "registry-no-host": ({"registry": "team"}, REGISTRY),
    "registry-unicode": ({"registry": "regi\u017ftry.example.com/team"}, REGISTRY),
    "mirror-no-host": ({"image_mirror": "dockerhub/"}, MIRROR),
    "mirror-scheme": ({"image_mirror": "https://harbor.example.com/"}, MIRROR),
    "syntax-uppercase": ({"dockerfile_syntax": "Docker/Dockerfile:1"}, "image reference"),
    "syntax-url": ({"dockerfile_syntax": "https://example.com/frontend"}, "image reference"),
    "index-ftp": ({"pypi_index_url": "ftp://nexus.example.com/simple"}, HTTPS),
    "index-no-host": ({"pypi_index_url": "https:///simple"}, HTTPS),
    "index-unicode-host": ({"pypi_index_url": "https://nexu\u017f.example.com/simple"}, HTTPS),
    "cuda-arabic-digit": ({"cuda_version": "13.0.\u0661"}, "must look like 13.0.1"),
    "project-name-blank": ({"project_name": "   "}, "must not be empty"),
    "project-name-too-long": ({"project_name": "M" * 101}, "at most 100 characters"),
    # Service names that are no valid image path component, Python package or workspace member.
    "name-leading-underscore": (svc("_core"), IDENTIFIER),
    "name-trailing-underscore": (svc("core_"), IDENTIFIER),
    "name-triple-underscore": (svc("a___b"), IDENTIFIER),
    "name-non-ascii": (svc("c\u00f6re"), IDENTIFIER),
    "name-too-long": (svc("s" * 33), "at most 32 characters"),
    "name-not-string": (svc(123), IDENTIFIER),
    "name-path-traversal": (svc("../etc"), IDENTIFIER),
    "name-stdlib-json": (svc("json"), "standard-library module"),
    "name-stdlib-site": (svc("site"), "standard-library module"),
    "name-dependency": (svc("starlette"), "package the workspace depends on"),
    "name-dev-dependency": (svc("nox"), "package the workspace depends on"),
    "name-dependency-underscored": (svc("typing_extensions"), "package the workspace depends on"),
    "name-import-name": (svc("yaml"), "is reserved"),
    "name-keyword": (svc("class"), "is reserved"),
    "name-sitecustomize": (svc("sitecustomize"), "is reserved"),
    "name-project-slug": (svc("morgan"), "workspace's own package name"),
    "names-same-package": (
        {"services": [{"name": "web_api", "port": 1}, {"name": "web__api", "port": 2}]},
        '"web__api" is used twice',
    ),
    "service-unknown-key": (svc(privileged=True), "may only have the keys"),
    "torch-not-a-choice": (svc(torch="gpu"), TORCH),
    "torch-bool": (svc(torch=True), TORCH),
    "torch-list": (svc(torch=["cpu"]), TORCH),
    "torch-cuda-on-cpu-service": (svc(torch="cuda"), "torch: cuda of service core needs gpu: true"),
    "torch-cuda-too-old": (
        {
            "services": [{"name": "tts", "port": 1, "gpu": True, "torch": "cuda"}],
            "cuda_version": "11.7.1",
        },
        "older than PyTorch's oldest CUDA build (cu118)",
    ),
    "torch-index-injection": (
        {
            "services": [{"name": "tts", "port": 1, "gpu": True, "torch": "cuda"}],
            "torch_cuda_index": 'cu130"\nexplicit = false',
        },
        "torch_cuda_index must be one of cu118",
    ),
    # Injection: a newline, a shell metacharacter or an option where a value goes.
    "apt-shell-injection": (apt("curl; touch /INJECTED"), APT),
    "apt-allow-unauthenticated": (apt("--allow-unauthenticated", "curl"), APT),
    "apt-apt-option": (apt("-oAPT::Get::AllowUnauthenticated=true"), APT),
    "apt-command-substitution": (apt("$(touch /INJECTED)"), APT),
    "apt-backticks": (apt("`touch /INJECTED`"), APT),
    "apt-newline-instruction": (apt(f"curl\n{INJECT}"), APT),
    "apt-version-injection": (apt("curl=7.88;id"), APT),
    "name-newline-compose-key": (svc("core\n    privileged: true"), IDENTIFIER),
    "registry-newline-compose-key": (
        {"registry": "registry.example.com/team\n    privileged: true"},
        "registry " + CHARS,
    ),
    "registry-userinfo": ({"registry": "user:pass@registry.example.com/team"}, NO_CREDENTIALS),
    "registry-compose-variable": ({"registry": "registry.example.com/${EVIL}"}, CHARS),
    "mirror-newline-instruction": (
        {"image_mirror": f"harbor.example.com/\n{INJECT}\n"},
        "image_mirror " + CHARS,
    ),
    "mirror-userinfo": ({"image_mirror": "user:pass@harbor.example.com/"}, NO_CREDENTIALS),
    "index-newline-instruction": (
        {"pypi_index_url": f"https://nexus.example.com/simple\n{INJECT}"},
        "pypi_index_url " + CHARS,
    ),
    "index-toml-injection": (
        {"pypi_index_url": 'https://nexus.example.com/simple"\ndefault = false'},
        CHARS,
    ),
    "index-query-token": (
        {"pypi_index_url": "https://nexus.example.com/simple?private_token=abc"},
        NO_CREDENTIALS,
    ),
    "index-fragment": ({"pypi_index_url": "https://nexus.example.com/simple#x"}, NO_CREDENTIALS),
    "index-token-user": (
        {"pypi_index_url": "https://tok@nexus.example.com/simple"},
        NO_CREDENTIALS,
    ),
    "index-http": ({"pypi_index_url": "http://nexus.example.com/simple"}, HTTPS),
    "index-token-in-path": (
        {"pypi_index_url": "https://pypi.fury.io/1a2B3c4D5e6F7g8H9i0J/team/"},
        "looks like a token",
    ),
    "index-gitlab-token-in-path": (
        {"pypi_index_url": "https://gitlab.example.com/glpat-abcdefghij0123456789/simple"},
        "looks like a token",
    ),
    "syntax-newline-instruction": ({"dockerfile_syntax": f"docker/dockerfile:1\n{INJECT}"}, CHARS),
    "syntax-escape-directive": ({"dockerfile_syntax": "docker/dockerfile:1\n# escape=`"}, CHARS),
    "cuda-newline-instruction": ({"cuda_version": f"13.0.1\n{INJECT}"}, "must look like 13.0.1"),
    "cuda-os-newline": ({"cuda_os": f"ubuntu24.04\n{INJECT}"}, "Invalid choice"),
    "python-newline": ({"python_version": f"3.12\n{INJECT}"}, "Invalid choice"),
    "slug-newline-compose-key": ({"project_slug": "morgan\nprivileged: true"}, CHARS),
    "project-name-newline": ({"project_name": f"Morgan\n{INJECT}"}, "text on one line"),
    "project-name-carriage-return": ({"project_name": "Morgan\rX"}, "text on one line"),
    "project-name-nul": ({"project_name": "Morgan\x00"}, "text on one line"),
    "project-name-bidi-override": ({"project_name": "Morgan\u202eX"}, "text on one line"),
    "project-name-line-separator": ({"project_name": "Morgan\u2028X"}, "text on one line"),
    "project-name-trailing-backslash": ({"project_name": "Morgan \\"}, "end with a backslash"),
    "project-name-backslash-quote": ({"project_name": 'Morgan \\"Q"'}, "end with a backslash"),
    "uv-version-injection": ({"uv_version": f"0.13.9\n{INJECT}"}, "must look like 0.13.9"),
    # Round two (issue 20). YAML's words for true, false and null: compose.yaml would read them
    # as a boolean or null, not as a service or project name.
    **{
        f"name-yaml-{word}": (svc(word), f'service name "{word}" {YAML_WORD}')
        for word in ("true", "false", "null", "yes", "no", "on", "off", "y", "n")
    },
    "slug-yaml-true": ({"project_slug": "true"}, f'project_slug "true" {YAML_WORD}'),
    "slug-derived-yaml-null": ({"project_name": "Null"}, f'project_slug "null" {YAML_WORD}'),
    # Names apt would read as an operator or a regular expression when no package has them.
    "apt-trailing-minus-removes": (apt("curl-"), APT),
    "apt-trailing-dot-regex": (apt("zlib1g."), APT),
    "apt-trailing-plus-installs-the-rest": (apt("curl+"), APT),
    "apt-dot-plus-regex": (apt("gcc.+"), APT),
    "apt-minus-before-version": (apt("curl-=7.88.1-10"), APT),
    "apt-trailing-dot-before-version": (apt("zlib1g.=1:1.2.13"), APT),
    "apt-too-many": (apt(*[f"pkg{i}" for i in range(101)]), "a list of at most 100"),
    # A token in the index URL's path, in any of its forms.
    "index-token-16-chars": (
        {"pypi_index_url": "https://dl.cloudsmith.io/1a2b3c4d5e6f7g8h/acme/python/simple/"},
        TOKEN,
    ),
    "index-token-uppercase": (
        {"pypi_index_url": "https://x.example.com/A1B2C3D4E5F6G7H8/simple"},
        TOKEN,
    ),
    "index-token-inside-a-segment": (
        {"pypi_index_url": "https://x.example.com/team-a1b2c3d4e5f6g7h8i9/simple"},
        TOKEN,
    ),
    "index-token-uuid": (
        {"pypi_index_url": "https://x.example.com/3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c/simple"},
        TOKEN,
    ),
    "index-token-jwt": (
        {
            "pypi_index_url": "https://x.example.com/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln/simple"
        },
        TOKEN,
    ),
    "index-token-github-prefix": (
        {"pypi_index_url": "https://x.example.com/ghp_abcdef/simple"},
        TOKEN,
    ),
    "index-token-huggingface-prefix": (
        {"pypi_index_url": "https://x.example.com/hf_abcdef/s"},
        TOKEN,
    ),
    "index-token-percent-encoded": (
        {"pypi_index_url": "https://x.example.com/%67lpat-abcdef/simple"},
        "no percent-encoding",
    ),
    "index-percent-encoded-slash": (
        {"pypi_index_url": "https://x.example.com/a%2Fb/simple"},
        "no percent",
    ),
    # Ports past 65535 (or 0, or with a leading zero) wherever an answer holds one.
    "registry-port-65536": ({"registry": "registry.example.com:65536/team"}, REGISTRY),
    "registry-port-99999": ({"registry": "registry.example.com:99999/team"}, REGISTRY),
    "registry-port-leading-zero": ({"registry": "registry.example.com:08080/team"}, REGISTRY),
    "mirror-port-70000": ({"image_mirror": "harbor.example.com:70000/proxy/"}, MIRROR),
    "index-port-99999": ({"pypi_index_url": "https://nexus.example.com:99999/simple"}, HTTPS),
    "index-port-zero": ({"pypi_index_url": "https://nexus.example.com:0/simple"}, HTTPS),
    "index-loopback-port-70000": ({"pypi_index_url": "http://127.0.0.1:70000/simple"}, HTTPS),
    "syntax-port-99999": (
        {"dockerfile_syntax": "r.example.com:99999/dockerfile:1"},
        "image reference",
    ),
    # project_slug names the workspace's root package: not a member's or a locked package's name.
    "slug-shared": ({"project_slug": "shared"}, 'project_slug "shared" is reserved'),
    "slug-uvdocker": ({"project_slug": "uvdocker"}, 'project_slug "uvdocker" is reserved'),
    "slug-keyword": ({"project_slug": "class"}, 'project_slug "class" is reserved'),
    "slug-build-backend": ({"project_slug": "uv-build"}, 'project_slug "uv-build" is reserved'),
    "slug-dependency": ({"project_slug": "nox"}, "is a package the workspace depends on"),
    "slug-dependency-hyphenated": (
        {"project_slug": "charset-normalizer"},
        "is a package the workspace depends on",
    ),
    "slug-the-tooling": (
        {"project_slug": "copier-uv-docker-tools"},
        "is a package the workspace depends on",
    ),
    "slug-derived-dependency": ({"project_name": "Starlette"}, 'project_slug "starlette" is a'),
    # Huge values and YAML alias bombs: refused without turning them into strings.
    "services-too-many": (
        {"services": [{"name": f"s{i}", "port": 1000 + i} for i in range(101)]},
        "at most 100 services",
    ),
    "name-alias-bomb": (svc(BOMB), "service name #1 must be a lowercase"),
    "apt-alias-bomb": (apt("curl", BOMB), "apt package #2 of service core"),
    "services-alias-bomb": ({"services": BOMB}, "service #1 must be a mapping"),
    "registry-huge": ({"registry": "registry.example.com/" + "a" * 300}, "at most 255 characters"),
    "mirror-huge": ({"image_mirror": "harbor.example.com/" + "a/" * 150}, "at most 255 characters"),
    "index-huge": ({"pypi_index_url": "https://x.example.com/" + "a/" * 150}, "at most 255"),
    "syntax-huge": ({"dockerfile_syntax": "docker/" + "a" * 300}, "at most 255 characters"),
    "platforms-huge": ({"platforms": ",".join(["linux/amd64"] * 30)}, "at most 255 characters"),
    # Characters that show nothing, which the text rule promises to refuse.
    "project-name-arabic-letter-mark": ({"project_name": "Mor\u061cgan"}, TEXT),
    "project-name-tag-characters": ({"project_name": "Morgan\U000e0041\U000e007f"}, TEXT),
    "project-name-soft-hyphen": ({"project_name": "Mor\u00adgan"}, TEXT),
    "project-name-hangul-filler": ({"project_name": "Mor\u3164gan"}, TEXT),
    "project-name-halfwidth-hangul-filler": ({"project_name": "Mor\uffa0gan"}, TEXT),
    "project-name-mongolian-vowel-separator": ({"project_name": "Mor\u180egan"}, TEXT),
    "project-name-combining-grapheme-joiner": ({"project_name": "Mor\u034fgan"}, TEXT),
    "project-name-variation-selector-17": ({"project_name": "Morgan\U000e0100"}, TEXT),
    "project-name-interlinear-annotation": ({"project_name": "Mor\ufff9gan\ufffb"}, TEXT),
    "project-name-private-use": ({"project_name": "Morgan\ue000"}, TEXT),
    "project-name-first-strong-isolate": ({"project_name": "Morgan\u2068X"}, TEXT),
    # Surrogates (a data file's "\ud800"): refused in one line, never a UnicodeEncodeError.
    "project-name-surrogate": ({"project_name": "Mor\ud800gan"}, TEXT),
    "registry-surrogate": ({"registry": "registry.example.com/\udc00"}, CHARS),
    "platforms-surrogate": ({"platforms": "linux/amd64,\ud800"}, CHARS),
    "name-surrogate": (svc("c\ud800re"), IDENTIFIER),
    "apt-surrogate": (apt("curl\ud800"), APT),
    "cuda-surrogate": ({"cuda_version": "13.0.\ud800"}, "must look like 13.0.1"),
}

# Refusals worded as uvdocker.host words the same rule for the .env setting they become.
SAME_AS_HOST = {
    "registry-newline-compose-key": "IMAGE_PREFIX",
    "registry-compose-variable": "IMAGE_PREFIX",
    "mirror-newline-instruction": "UV_IMAGE",
    "index-newline-instruction": "UV_DEFAULT_INDEX",
    "index-not-url": "UV_DEFAULT_INDEX",
    "index-credentials": "UV_DEFAULT_INDEX",
    "index-query-token": "UV_DEFAULT_INDEX",
    "index-fragment": "UV_DEFAULT_INDEX",
    "index-token-user": "UV_DEFAULT_INDEX",
    "index-http": "UV_DEFAULT_INDEX",
    "index-ftp": "UV_DEFAULT_INDEX",
}


@pytest.mark.parametrize(("answers", "message"), REFUSED.values(), ids=list(REFUSED))
def test_bad_answer_is_refused(request, tmp_path, answers, message):
    dest = tmp_path / "repo"
    with pytest.raises(ValueError, match=r"(?s)Valid|Invalid") as refused:
        render(dest, answers)
    assert message in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert not dest.exists()
    key = SAME_AS_HOST.get(request.node.callspec.id)
    if key:
        (value,) = answers.values()
        why = host._problem(key, value)
        assert why and why in str(refused.value)


# Unusual but valid answers. Each renders once; every check below reads that render.
HOSTILE_NAME = 'Acme "Q" \\ $HOME ${X} `id` <img src=x onerror=alert(1)> [a](javascript:x) # *'
RENDERED_SAFE: dict[str, dict[str, Any]] = {
    "project-name-quotes-dollar-markdown": {"project_name": HOSTILE_NAME, "project_slug": "acme"},
    "project-name-jinja-yaml": {
        "project_name": "Morgan {{ 7*7 }} {% raw %} &a *a !!python/object: - {#"
    },
    "project-name-backslashes": {"project_name": "C:\\Temp \\$x \\\\ Labs"},
    "project-name-unicode": {"project_name": "\u00c6r\u00f8sk\u00f8bing Caf\u00e9 \U0001f600"},
    "apt-pinned-versions": apt(
        "curl=7.88.1-10+deb12u12",
        "g++",
        "libstdc++6",
        "tzdata=2024a-0+deb12u1",
        "libfoo1=1:2.3~rc1-1",
    ),
    "registry-with-port": {"registry": "registry.example.com:5000/team"},
    "registry-localhost": {"registry": "localhost:5000"},
    "mirror-with-path": {"image_mirror": "harbor.example.com/proxy/dockerhub/"},
    "index-https-port-path": {
        "pypi_index_url": "https://nexus.example.com:8443/repository/pypi-proxy/simple/"
    },
    "index-loopback-http": {"pypi_index_url": "http://127.0.0.1:3141/root/pypi/+simple/"},
    "syntax-with-digest": {"dockerfile_syntax": f"docker/dockerfile:1.7@{DIGEST}"},
    "edge-service-names": {
        "services": [
            {"name": "a__b", "port": 1},
            {"name": "x1", "port": 65535, "gpu": True},
            {"name": "s" * 32, "port": 8000, "apt_packages": ["curl"]},
        ],
        "cuda_version": "12.6.3",
    },
    # Round two's controls: close to what is refused, and valid.
    "apt-names-with-dots-and-plus": apt(
        "libglib2.0-0", "libstdc++6", "python3.11-venv", "gir1.2-glib-2.0", "g++"
    ),
    "service-names-near-yaml-words": {
        "services": [
            {"name": "yes_api", "port": 8000},
            {"name": "on_call", "port": 8001},
            {"name": "nulls", "port": 8002},
            {"name": "true2", "port": 8003},
        ]
    },
    "slug-near-reserved-names": {"project_slug": "shared-services"},
    "index-gitlab-project-path": {
        "pypi_index_url": "https://gitlab.example.com/api/v4/projects/12345678/packages/pypi/simple"
    },
    "index-codeartifact": {
        "pypi_index_url": (
            "https://acme-111122223333.d.codeartifact.us-west-2.amazonaws.com/pypi/acme-pypi/simple/"
        )
    },
    "registry-port-65535": {"registry": "registry.example.com:65535/team"},
    "project-name-emoji-and-scripts": {
        "project_name": "Morgan \u2764\ufe0f \u30e2\u30fc\u30ac\u30f3 "
        "\u0645\u0631\u062d\u0628\u0627",
        "project_slug": "morgan",
    },
}
# One service of each kind (gpu, has apt packages): what every rendered-safe Dockerfile is
# compared with. Rendered with its tasks, so it also has the uv.lock the drift test reads.
BASELINE = {
    "services": [
        {"name": "core", "port": 8000, "gpu": False, "apt_packages": []},
        {"name": "web", "port": 8001, "gpu": False, "apt_packages": ["curl"]},
        {"name": "tts", "port": 8002, "gpu": True, "apt_packages": ["libsndfile1"]},
        {"name": "stt", "port": 8003, "gpu": True, "apt_packages": []},
    ]
}
DEFAULT_SERVICES = [{"name": n, "port": 8000 + i} for i, n in enumerate(["core", "llm"])] + [
    {"name": n, "port": 8002 + i, "gpu": True, "apt_packages": ["libsndfile1"]}
    for i, n in enumerate(["tts", "stt"])
]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("baseline") / "repo", BASELINE)


@pytest.fixture(scope="module", params=list(RENDERED_SAFE), ids=list(RENDERED_SAFE))
def safe(request, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    answers = RENDERED_SAFE[request.param]
    repo = render(tmp_path_factory.mktemp(request.param) / "repo", answers, skip_tasks=True)
    return repo, answers


def services_of(answers: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"gpu": False, "apt_packages": [], **s} for s in answers.get("services", DEFAULT_SERVICES)
    ]


def slug_of(answers: dict[str, Any], repo: Path) -> str:
    return yaml.safe_load((repo / ".copier-answers.yml").read_text())["project_slug"]


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) as BuildKit reads them: comments dropped, continuations joined."""
    found, pending = [], ""
    for line in dockerfile.splitlines():
        if line.lstrip().startswith("#") or not (pending or line.strip()):
            continue  # BuildKit skips comment lines, even inside a continuation
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        keyword_, _, args = (pending + line).strip().partition(" ")
        found.append((keyword_.upper(), args.strip()))
        pending = ""
    assert not pending, "a continuation runs off the end"
    return found


def directives(dockerfile: str) -> dict[str, str]:
    """The parser directives: `# key=value` lines before anything else."""
    found = {}
    for line in dockerfile.splitlines():
        match = re.match(r"^#\s*([a-z]+)\s*=\s*(\S*)\s*$", line)
        if not match:
            break
        found[match[1]] = match[2]
    return found


def words(args: str) -> list[tuple[str, bool]]:
    """BuildKit's words of LABEL/ENV arguments, unquoted: (word, whether it expands a $)."""
    found: list[tuple[str, bool]] = []
    word, expands, quote, i = "", False, "", 0
    while i < len(args):
        ch = args[i]
        if ch == "\\" and quote != "'" and i + 1 < len(args):
            escaped = args[i + 1]
            if quote == '"' and escaped not in '"$\\':
                word += ch  # in double quotes a backslash escapes only " $ and itself
            word, i = word + escaped, i + 2
            continue
        if ch in "\"'" and quote in ("", ch):
            quote = "" if quote else ch
        elif ch == "$" and quote != "'":
            word, expands = word + ch, True
        elif ch.isspace() and not quote:
            if word:
                found.append((word, expands))
            word, expands = "", False
        else:
            word += ch
        i += 1
    assert not quote, f"unterminated quote in {args!r}"
    return [*found, (word, expands)] if word else found


def shape(instruction: tuple[str, str], name: str) -> tuple[str, str]:
    """An instruction with the parts answers fill in taken out: what must never change."""
    kw, args = instruction
    args = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "<service>", args)
    args = " ".join(args.replace("--link ", "").split())
    if kw == "ARG":
        return kw, args.partition("=")[0]
    if kw in ("ENV", "LABEL"):
        return kw, " ".join(word.partition("=")[0] for word, _ in words(args))
    if kw == "EXPOSE":
        return kw, "<port>"
    if kw == "RUN" and "apt-get install" in args:
        return kw, args.rpartition("--no-install-recommends")[0]
    return kw, args


def test_stdlib_names_are_refused(validator_lists):
    """Every standard-library module of the Pythons found here (3.11-3.13) that could be a
    service name is in the list; with all three found, nothing else is."""
    found = {sys.version_info[:2]: set(sys.stdlib_module_names)}
    for minor in (11, 12, 13):
        python = shutil.which(f"python3.{minor}")
        if (3, minor) in found or not python:
            continue
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.stdlib_module_names)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0:
            found[(3, minor)] = set(out.stdout.split())
    names = {n for names in found.values() for n in names if SERVICE_NAME.match(n)}
    listed = set(validator_lists["stdlib_module_names"])
    assert not names - listed, f"add to rules.yml (names): {sorted(names - listed)}"
    if len(found) == 3:
        assert not listed - names, f"remove from rules.yml (names): {sorted(listed - names)}"


def test_keywords_are_reserved(validator_lists):
    kws = {k for k in keyword.kwlist if SERVICE_NAME.match(k)}
    assert kws <= set(validator_lists["reserved_service_names"])


def test_workspace_dependencies_match_a_rendered_lock(baseline, validator_lists):
    lock = tomllib.loads((baseline / "uv.lock").read_text())
    members = set(lock["manifest"]["members"])
    locked = {p["name"] for p in lock["package"]} - members
    listed = set(validator_lists["workspace_dependencies"])
    assert locked == listed, (
        f"rules.yml's workspace_dependencies drifted from uv.lock: add {sorted(locked - listed)}"
        f", remove {sorted(listed - locked)}"
    )


def test_import_names_of_locked_packages_are_refused(baseline, validator_lists):
    """A service package named like a locked package's module would shadow it in the venv."""
    lock = tomllib.loads((baseline / "uv.lock").read_text())
    locked = {p["name"] for p in lock["package"]}
    modules = {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        for owner in owners
        if re.sub(r"[-_.]+", "-", owner).lower() in locked and SERVICE_NAME.match(module)
    }
    assert {"yaml", "dotenv", "nox"} <= modules  # the dev env holds most locked packages
    refused = set(validator_lists["reserved_service_names"]) | set(
        validator_lists["stdlib_module_names"]
    )
    deps = set(validator_lists["workspace_dependencies"])
    unrefused = {m for m in modules if m not in refused and m.replace("_", "-") not in deps}
    assert not unrefused, f"add to reserved_service_names in rules.yml: {sorted(unrefused)}"


@pytest.fixture(scope="module")
def validator_lists() -> dict[str, list[str]]:
    """The name lists rules.yml holds (`names`), which the services and project_slug
    validators read; each is a string of names, split in the validator."""
    lists = rules.loaded()["names"]
    assert set(lists) == {"stdlib_module_names", "workspace_dependencies", "reserved_service_names"}
    validator = yaml.safe_load((TEMPLATE / "copier.yml").read_text())["services"]["validator"]
    assert all(f"loaded.names.{name}.split()" in validator for name in lists)
    return {name: names.split() for name, names in lists.items()}


def test_validator_lists_hold_service_names(validator_lists):
    for name in validator_lists["stdlib_module_names"] + validator_lists["reserved_service_names"]:
        assert SERVICE_NAME.match(name), name


def test_valid_answers_render_their_values(safe):
    """Each answer lands where it should, readable back through the file's own syntax."""
    repo, answers = safe
    saved = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    for key, value in answers.items():
        assert saved[key] == value
    name = answers.get("project_name", "Morgan")
    heading = (repo / "README.md").read_text().splitlines()[0]
    assert re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", heading) == f"# {name}"
    root = tomllib.loads((repo / "pyproject.toml").read_text())
    assert root["project"]["description"].startswith(f"{name}: ")
    assert (
        name
        in tomllib.loads((repo / "shared/pyproject.toml").read_text())["project"]["description"]
    )
    index = answers.get("pypi_index_url")
    assert root["tool"]["uv"].get("index", [{}])[0].get("url") == index
    for service in services_of(answers):
        project = tomllib.loads((repo / f"services/{service['name']}/pyproject.toml").read_text())
        assert project["project"]["name"] == service["name"]
        assert project["project"]["description"] == f"The {service['name']} service of {name}"


def test_dockerfiles_have_only_the_default_instructions(safe, baseline):
    """Same instructions, in the same order, as the baseline's service of the same kind; the
    answers only fill in values (image references, the index URL, apt packages, labels)."""
    repo, answers = safe
    kinds = {(s["gpu"], bool(s["apt_packages"])): s["name"] for s in services_of(BASELINE)}
    slug = slug_of(answers, repo)
    name = answers.get("project_name", "Morgan")
    for service in services_of(answers):
        text = (repo / f"services/{service['name']}/Dockerfile").read_text()
        theirs = instructions(text)
        model = kinds[(service["gpu"], bool(service["apt_packages"]))]
        ours = instructions((baseline / f"services/{model}/Dockerfile").read_text())
        assert [shape(i, service["name"]) for i in theirs] == [shape(i, model) for i in ours]
        syntax = answers.get("dockerfile_syntax", "docker/dockerfile:1")
        assert directives(text) == ({"syntax": syntax} if syntax else {})
        for kw, args in theirs:
            if kw == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                assert not host._problem(key, value), (key, value)
            elif kw == "RUN" and "apt-get install" in args and "apt-cache" not in args:
                packages = args.rpartition("--no-install-recommends")[2].split()
                assert packages == service["apt_packages"]
            elif kw == "LABEL":
                labels = {w.partition("=")[0]: (w.partition("=")[2], x) for w, x in words(args)}
                assert labels == {
                    "org.opencontainers.image.title": (f"{slug}-{service['name']}", False),
                    "org.opencontainers.image.description": (
                        f"The {service['name']} service of {name}",
                        False,
                    ),
                    "org.opencontainers.image.vendor": (name, False),
                    "org.opencontainers.image.version": ("${IMAGE_VERSION}", True),
                }
            elif kw == "EXPOSE":
                assert args == str(service["port"])


def test_hadolint_passes(safe):
    hadolint_passes(safe[0])


def keys(value: Any, prefix: str = "") -> set[str]:
    """Every key path in nested mappings (list items by their position)."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in {f"{prefix}{k}"} | keys(v, f"{prefix}{k}.")}
    if isinstance(value, list):
        return {p for i, v in enumerate(value) for p in keys(v, f"{prefix}{i}.")}
    return set()


def test_compose_config_has_only_the_default_keys(safe, baseline):
    repo, answers = safe
    config, model = compose_config(repo), compose_config(baseline)
    assert set(config) == set(model)
    kinds = {s["gpu"]: s["name"] for s in services_of(BASELINE)}
    registry, slug = answers.get("registry"), slug_of(answers, repo)
    prefix = f"{registry}/{slug}" if registry else slug
    for service in services_of(answers):
        spec = config["services"][service["name"]]
        expected = model["services"][kinds[service["gpu"]]]
        assert keys(spec) == keys(expected), service["name"]
        assert spec["image"] == f"{prefix}/{service['name']}:latest"
        assert not rules.problem(spec["image"], "image")
        assert [p["target"] for p in spec["ports"]] == [service["port"]]


def test_env_example_passes_the_host_checks(safe):
    """Every key .env.example writes or suggests is one uvdocker.host knows (a setting of
    rules.yml, or a service's port), every value one it accepts, and a copy of it loads with
    no warning."""
    repo, _ = safe
    text = (repo / ".env.example").read_text()
    # Set values whole; suggested ones (commented out) where a line holds just KEY=value.
    settings = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.MULTILINE)
    settings += re.findall(r"^# ([A-Z][A-Z0-9_]*)=(\S*)$", text, re.MULTILINE)
    assert {"IMAGE_PREFIX", "UV_IMAGE", "UV_DEFAULT_INDEX"} <= {key for key, _ in settings}
    known = {*host.CHECKED, *host.service_ports(repo)}
    for key, value in settings:
        assert key in known, key
        assert not host._problem(key, value), (key, value)
    gpu_only = {"CUDA_IMAGE", "UV_PYTHON_INSTALL_MIRROR"}  # documented with a GPU service
    assert set(host.CHECKED) - gpu_only <= {key for key, _ in settings}  # each one documented
    shutil.copy(repo / ".env.example", repo / ".env")
    saved = dict(os.environ)
    try:
        assert host.load_settings(repo) == []
    finally:
        os.environ.clear()
        os.environ.update(saved)
        (repo / ".env").unlink()


@pytest.mark.docker
def test_unusual_but_valid_answers_build(engine, ca_bundle, tmp_path):
    """A sample of the controls builds with nox -s build: apt names with dots and ++ installed as
    themselves, a service named like a YAML word but not one, a slug near a reserved name."""
    slug = f"shared-{uuid.uuid4().hex[:6]}"
    packages = ["libglib2.0-0", "libstdc++6"]
    service = {"name": "yes_api", "port": 8000, "apt_packages": packages}
    repo = render(
        tmp_path / "repo", {**OFFLINE_ANSWERS, "project_slug": slug, "services": [service]}
    )
    write_env(repo, ca_bundle[0])
    ensure_base_images(repo)
    image = f"{slug}/yes_api:latest"
    try:
        nox(repo, "-s", "build")
        query = ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages]
        out = engine.containers.run(image, query, remove=True).decode()
        assert out.splitlines() == [f"{name} installed" for name in packages]
    finally:
        for found in engine.images.list(name=f"{slug}/*"):
            engine.images.remove(found.id, force=True)


@pytest.mark.parametrize(
    ("cuda_version", "index"),
    [
        ("11.8.0", "cu118"),
        ("12.0.1", "cu118"),
        ("12.3.2", "cu121"),
        ("12.4.1", "cu124"),
        ("12.6.3", "cu126"),
        ("12.9.1", "cu128"),
        ("13.0.1", "cu130"),
        ("13.1.1", "cu130"),
        ("13.2.0", "cu132"),
        ("14.0.0", "cu132"),
    ],
)
def test_torch_cuda_index_is_the_newest_the_cuda_version_runs(tmp_path, cuda_version, index):
    """torch: cuda takes PyTorch's newest CUDA build not newer than cuda_version, and the GPU
    base defaults to `base`: torch's wheels bring the CUDA libraries cudnn-runtime would add."""
    services = [{"name": "tts", "port": 1, "gpu": True, "torch": "cuda"}]
    answers = {"services": services, "cuda_version": cuda_version}
    repo = render(tmp_path / "repo", answers, skip_tasks=True)
    root = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["uv"]
    urls = {i["name"]: i["url"] for i in root["index"]}
    assert urls["pytorch-cuda"] == f"https://download.pytorch.org/whl/{index}"
    assert yaml.safe_load((repo / ".copier-answers.yml").read_text())["cuda_flavor"] == "base"
    assert (
        f"nvidia/cuda:{cuda_version}-base-ubuntu24.04\n"
        in (repo / "services/tts/Dockerfile").read_text()
    )


def test_cuda_flavor_answered_wins_over_the_torch_default(tmp_path):
    services = [{"name": "tts", "port": 1, "gpu": True, "torch": "cuda"}]
    answers = {"services": services, "cuda_flavor": "cudnn-runtime"}
    repo = render(tmp_path / "repo", answers, skip_tasks=True)
    assert "cudnn-runtime-ubuntu24.04\n" in (repo / "services/tts/Dockerfile").read_text()
    plain = {"services": [{"name": "tts", "port": 1, "gpu": True}]}
    gpu_only = render(tmp_path / "plain", plain, skip_tasks=True)
    assert "-cudnn-runtime-" in (gpu_only / "services/tts/Dockerfile").read_text()


def test_cuda_questions_only_asked_with_gpu_services(tmp_path):
    repo = render(tmp_path / "repo", {"services": [{"name": "api", "port": 9000}]}, skip_tasks=True)
    answers = (repo / ".copier-answers.yml").read_text()
    assert "cuda_version" not in answers
    assert "CUDA_IMAGE" not in (repo / ".env.example").read_text()
