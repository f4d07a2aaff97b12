"""rules.yml, the one definition of the allow-lists: each rule as uvdocker.rules applies it to
.env settings, and the same verdicts from rules.jinja, as copier.yml's validators apply it."""

from __future__ import annotations

import re
import sys

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
            "https://x.example.com/%67lpat-abc/simple",
            "https://x.example.com:99999/simple",
            "https://x.example.com/" + "a/" * 150,
        ],
    ),
    "service_name": (
        ["core", "web_api", "a__b", "x1"],
        ["Core", "my-svc", "1svc", "_core", "core_", "a___b", "c\u00f6re"],
    ),
    "apt_package": (
        ["curl", "curl=7.88.1-10+deb12u12", "g++", "libfoo1=1:2.3~rc1-1", "libglib2.0-0"],
        [
            "Curl",
            "curl wget",
            "--allow-unauthenticated",
            "curl/bookworm-backports",
            "curl-",
            "zlib1g.",
            "curl+",
            "gcc.+",
            "curl-=7.88",
            "a",
        ],
    ),
    "version": (["13.0.1", "0.13.9"], ["13.0", "v13.0.1", "13.0.\u0661"]),
    "size": (["5GB", "500mb", "0"], ["5 GB", "lots"]),
    "duration": (["72h", "1h30m"], ["3d", "72"]),
    "port": (
        ["1", "80", "8000", "65535"],
        ["0", "65536", "99999", "08080", "\uff18\uff10", "\u00b2", ""],
    ),
    "yaml_word": (
        ["core", "yes_api", "nulls", "true2", "on-call"],
        ["true", "False", "NULL", "yes", "no", "on", "off", "y", "n", "~"],
    ),
    "long": (["a" * 255, ""], ["a" * 256, "x" * 10_000]),
    "text": (
        [
            "Morgan",
            'Acme "Q" Labs',
            "Caf\u00e9 \U0001f600",
            "\u2764\ufe0f",
            "\u0645\u0631\u062d\u0628\u0627",
        ],
        [
            "a\nb",
            "\u061c",
            "\u00ad",
            "\u3164",
            "\uffa0",
            "\u180e",
            "\u034f",
            "\U000e0041",
            "\U000e0100",
            "\ue000",
            "\ud800",
            "\u202e",
            "\u2066",
            "\ufff9",
        ],
    ),
    "url_token": (
        [
            "https://nexus.example.com/repository/pypi-proxy/simple/",
            "https://gitlab.example.com/api/v4/projects/12345678/packages/pypi/simple",
            "https://acme-111122223333.d.codeartifact.us-west-2.amazonaws.com/pypi/acme/simple/",
            "https://download.pytorch.org/whl/cu130",
            "https://pkgs.dev.azure.com/org/project/_packaging/feed/pypi/simple/",
            "https://github.com/astral-sh/python-build-standalone/releases/download",
        ],
        [
            "https://dl.cloudsmith.io/1a2b3c4d5e6f7g8h/acme/python/simple/",
            "https://x.example.com/team-a1b2c3d4e5f6g7h8i9/simple",
            "https://x.example.com/3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c/simple",
            "https://x.example.com/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln/simple",
            "https://x.example.com/ghp_abc/simple",
            "https://x.example.com/pypi-AgEIcHlwaS5vcmc/simple",
            "https://x.example.com/AKCp8abc/simple",
        ],
    ),
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


# Unicode's categories no text answer may hold: controls, format characters (bidi, zero-width,
# tags...), surrogates, private use, line and paragraph separators.
HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
# Characters of other categories that show nothing, refused all the same.
HIDDEN_OTHERS = [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164]
HIDDEN_OTHERS += [0xFFA0, *range(0xFE00, 0xFE0F), *range(0xE0100, 0xE01F0)]


def test_text_refuses_every_invisible_code_point():
    """Every code point of those categories (in this Python's Unicode), and the others listed;
    visible text of every script, emoji with their presentation selector, passes."""
    import unicodedata

    text, chars = rules.pattern("text"), rules.pattern("chars")
    hidden = [
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in HIDDEN_CATEGORIES
    ]
    missed = [f"U+{c:04X}" for c in [*hidden, *HIDDEN_OTHERS] if not text.search(chr(c))]
    assert not missed, missed
    assert not [f"U+{c:04X}" for c in [*hidden, *HIDDEN_OTHERS] if not chars.search(chr(c))]
    shown = [c for c in range(0x20, 0x30000) if unicodedata.category(chr(c))[0] in "LNPS"]
    refused = [f"U+{c:04X}" for c in shown if text.search(chr(c)) and c not in HIDDEN_OTHERS]
    assert refused == [], refused  # no letter, digit, mark of punctuation or symbol
