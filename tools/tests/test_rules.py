"""rules.yml, the one definition of the allow-lists: each rule as uvdocker.rules applies it to
.env settings, and the same verdicts from rules.jinja, as copier.yml's validators apply it."""

from __future__ import annotations

import re

import pytest
from jinja2 import DictLoader
from jinja2.sandbox import SandboxedEnvironment

from uvdocker import rules

# rule or group: (values it accepts, values it refuses)
CASES = {
    "chars": (
        ["registry.example.com/team", "a-b_c.d:1"],
        ["a b", "a\nb", 'a"b', "a'b", "$X", "a;b", "a\\b", "a`b", "a\x85b"],
    ),
    "registry": (
        ["registry.example.com/team", "localhost:5000", "localhost/x", "127.0.0.1:5000/a/b"],
        [
            "team",
            "Registry.example.com/x",
            "registry.example.com/team/",
            "r.example.com/t:latest",
            "https://r.example.com",
            "regi\u017ftry.example.com/t",
        ],
    ),
    "mirror": (
        ["harbor.example.com/proxy/", "localhost:5000/"],
        ["dockerhub/", "https://h.example.com/"],
    ),
    "repository": (
        ["morgan", "registry.example.com/team/morgan", "127.0.0.1:5000/morgan"],
        ["Morgan", "morgan/", ""],
    ),
    "image": (
        [
            "python:3.12-slim",
            "harbor.example.com:8443/proxy/python:3.12-slim",
            f"docker/dockerfile:1.7@sha256:{'0' * 64}",
        ],
        ["Docker/Dockerfile:1", "python:3.12 AS evil", "https://example.com/frontend"],
    ),
    "tag": (["latest", "v1.2.3", "sha-0f3c2a1"], ["", "-v", "latest;rm", "lat\u00e9st"]),
    "url": (
        [
            "https://nexus.example.com/repository/pypi/simple",
            "http://127.0.0.1:3141/root/pypi/+simple/",
            "https://github.com/astral-sh/python-build-standalone/releases/download",
        ],
        [
            "nexus.example.com/simple",
            "http://nexus.example.com/simple",
            "ftp://x.example.com/",
            "https://u:p@x.example.com/",
            "https://x.example.com/s?t=1",
            "https:///simple",
            "https://nexu\u017f.example.com/s",
            "https://pypi.fury.io/1a2B3c4D5e6F7g8H9i0J/team/",
            "https://x.example.com/glpat-abc/simple",
        ],
    ),
    "service_name": (
        ["core", "web_api", "a__b", "x1"],
        ["Core", "my-svc", "1svc", "_core", "core_", "a___b", "c\u00f6re"],
    ),
    "apt_package": (
        ["curl", "curl=7.88.1-10+deb12u12", "g++", "libfoo1=1:2.3~rc1-1"],
        ["Curl", "curl wget", "--allow-unauthenticated", "curl/bookworm-backports"],
    ),
    "version": (["13.0.1", "0.13.9"], ["13.0", "v13.0.1", "13.0.\u0661"]),
    "size": (["5GB", "500mb", "0"], ["5 GB", "lots"]),
    "duration": (["72h", "1h30m"], ["3d", "72"]),
    "git_url": (
        [
            "https://github.com/org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "file:///srv/git/template",
        ],
        ["github.com/org/repo", "file://relative", "ftp://x/y"],
    ),
}


def jinja_problem():
    """rules.jinja's problem macro, loaded as Copier loads it (sandboxed, ansible filters)."""
    files = {
        "tools/src/uvdocker/rules.yml": rules.RULES_FILE.read_text(),
        "tools/src/uvdocker/rules.jinja": rules.RULES_FILE.with_suffix(".jinja").read_text(),
    }
    env = SandboxedEnvironment(
        loader=DictLoader(files), extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"]
    )
    module = env.get_template("tools/src/uvdocker/rules.jinja").module
    return lambda value, *names: str(module.problem(value, *names))


@pytest.mark.parametrize("name", CASES)
def test_each_rule_accepts_and_refuses(name):
    good, bad = CASES[name]
    for value in good:
        assert rules.problem(value, name) == "", (name, value)
    for value in bad:
        assert rules.problem(value, name), (name, value)


@pytest.mark.parametrize("name", CASES)
def test_copier_validators_get_the_same_verdicts(name):
    """The Jinja side, on the same file: the same message for every value, good or bad."""
    problem = jinja_problem()
    for value in [*CASES[name][0], *CASES[name][1]]:
        assert problem(value, name) == rules.problem(value, name), (name, value)


def test_the_first_broken_rule_speaks():
    assert rules.problem("https://u@x.example.com/ a", "url").startswith("must not hold spaces")
    assert rules.problem("http://x.example.com/", "url").startswith("must be an https:// URL")
    assert rules.problem("x", "tag", "chars") == ""


def test_every_rule_compiles_and_has_one_kind_and_a_message():
    loaded = rules.loaded()
    for name, spec in loaded["rules"].items():
        assert ("refuse" in spec) != ("require" in spec), name
        assert spec["message"] and "\n" not in spec["message"], name
        assert isinstance(rules.pattern(name), re.Pattern)
    for group, members in loaded["groups"].items():
        assert set(members) <= set(loaded["rules"]), group
