"""template_update's replay: which template it runs, and what it passes Copier as data. A
refused answers file or argument is one line, and Copier is never started."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from uvdocker import template_update

TEMPLATE = "gh:acme/copier-uv-docker"
TOOLS = "https://github.com/acme/copier-uv-docker.git"
ANSWERS = (
    f"_commit: v0.4.0\n_src_path: {TEMPLATE}\nproject_name: Morgan\n"
    "services:\n- {name: core, port: 8000}\n"
)


def bomb(depth: int = 9) -> str:
    """A few hundred bytes of YAML aliases that expand to 9**depth strings."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth + 1)]
    return "\n".join(lines) + f"\nproject_name: *a{depth}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A generated repo's answers and pyproject.toml (its tooling from the template's git), and a
    stand-in for `python -m copier` that records how it was called."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".copier-answers.yml").write_text(ANSWERS)
    source = (
        f'copier-uv-docker-tools = {{ git = "{TOOLS}", rev = "0123abc", subdirectory = "tools" }}'
    )
    (root / "pyproject.toml").write_text(f"[tool.uv.sources]\n{source}\n")
    (tmp_path / "python").write_text(
        f"#!{sys.executable}\nimport json, sys, pathlib\n"
        "args = sys.argv[1:]\n"
        "data = pathlib.Path(args[args.index('--data-file') + 1]).read_text()\n"
        f"pathlib.Path({str(tmp_path / 'ran.json')!r}).write_text(json.dumps([args, data]))\n"
    )
    (tmp_path / "python").chmod(0o755)
    return root


def update(repo: Path, *args: str) -> tuple[str, list[str], list | None]:
    """template_update.update with the stand-in Copier: (its error line, what it printed, how
    Copier was called or None). The tree is not a git repository, so no report follows."""
    printed: list[str] = []
    python = repo.parent / "python"
    try:
        problem = template_update.update(repo, list(args), printed.append, python=str(python))
    except Exception as error:  # the report needs git; the call itself is what counts here
        problem = f"report: {error}"
    ran = repo.parent / "ran.json"
    return problem, printed, json.loads(ran.read_text()) if ran.is_file() else None


# id -> (what .copier-answers.yml holds, or None to keep it; the arguments; part of the line)
REFUSED = {
    "another-template": (
        ANSWERS.replace(TEMPLATE, "gh:evil/template"),
        [],
        "names the template gh:evil/template, but the tooling in pyproject.toml comes from",
    ),
    "another-template-confirmed-wrongly": (
        ANSWERS.replace(TEMPLATE, "gh:evil/template"),
        ["--template-source", TEMPLATE],
        "--template-source gh:acme/copier-uv-docker is not the template",
    ),
    "a-lookalike-template": (
        ANSWERS.replace(TEMPLATE, "gh:acme/copier-uv-dockr"),
        [],
        "rerun with -- --template-source gh:acme/copier-uv-dockr",
    ),
    "another-host": (
        ANSWERS.replace(TEMPLATE, "https://evil.example.com/acme/copier-uv-docker.git"),
        [],
        "names the template https://evil.example.com",
    ),
    "a-local-folder": (
        ANSWERS.replace(TEMPLATE, "/tmp/somewhere"),
        [],
        "names the template /tmp/somewhere",
    ),
    "no-template": (
        ANSWERS.replace(f"_src_path: {TEMPLATE}\n", ""),
        [],
        "names no template (_src_path)",
    ),
    "copier-conf-key": (
        ANSWERS + "_copier_conf: {dst_path: /}\n",
        [],
        "holds '_copier_conf': keys starting with _ are Copier's own",
    ),
    "copier-answers-key": (ANSWERS + "_copier_answers: {}\n", [], "holds '_copier_answers'"),
    "copier-python-key": (ANSWERS + "_copier_python: /bin/sh\n", [], "holds '_copier_python'"),
    "alias-bomb": (ANSWERS + bomb(), [], "expands to more than 10000 values (YAML aliases)"),
    "recursive-alias": (ANSWERS + "x: &x [*x]\n", [], "expands to more than 10000 values"),
    "deep-nesting": ("[" * 50_000, [], "is not a YAML mapping of answers"),
    "not-a-mapping": ("- a\n- b\n", [], "is not a YAML mapping of answers"),
    "not-yaml": ("project_name: [\n", [], "is not a YAML mapping of answers"),
    "huge": (ANSWERS + "# " + "x" * 1_000_000 + "\n", [], "is larger than 1000 kB"),
    "data-copier-key": (
        None,
        ["-d", "_copier_conf=x"],
        "-d _copier_conf: keys starting with _ are Copier's own",
    ),
    "data-src-path": (None, ["--data=_src_path=gh:evil/template"], "-d _src_path: keys starting"),
    "data-glued": (None, ["-d_commit=v9.9.9"], "-d _commit: keys starting"),
    "answers-file-elsewhere": (
        None,
        ["-a", "evil-answers.yml"],
        "updates .copier-answers.yml only",
    ),
    "data-file-with-copier-key": (None, ["--data-file", "data.yml"], "data.yml holds '_src_path'"),
}


@pytest.mark.parametrize(("answers", "args", "said"), REFUSED.values(), ids=list(REFUSED))
def test_refused_in_one_line_and_copier_never_runs(repo, answers, args, said):
    if answers is not None:
        (repo / ".copier-answers.yml").write_text(answers)
    (repo / "data.yml").write_text("_src_path: gh:evil/template\nproject_name: X\n")
    before = sorted(p.name for p in repo.iterdir())
    problem, printed, ran = update(repo, *args)
    assert said in problem and len(problem.splitlines()) == 1, problem
    assert problem.endswith("(nothing was run)")
    assert ran is None and printed == []
    assert sorted(p.name for p in repo.iterdir()) == before


# id -> (the template .copier-answers.yml names, pyproject.toml's tooling source, arguments)
RUNS = {
    "gh-shorthand": (TEMPLATE, TOOLS, []),
    "https": ("https://github.com/acme/copier-uv-docker.git", TOOLS, []),
    "scp-like": (
        "git@github.com:acme/copier-uv-docker.git",
        "ssh://git@github.com/acme/copier-uv-docker.git",
        [],
    ),
    "absolute-path": ("/srv/templates/t", "file:///srv/templates/t", []),
    "moved-and-confirmed": ("gh:acme/mirror", TOOLS, ["--template-source", "gh:acme/mirror"]),
    "confirmed-glued": ("gh:acme/mirror", TOOLS, ["--template-source=gh:acme/mirror"]),
    "wheel-index-confirmed": (TEMPLATE, "", ["--template-source", TEMPLATE]),
}


@pytest.mark.parametrize(("src", "tools", "args"), RUNS.values(), ids=list(RUNS))
def test_runs_the_template_the_repo_was_made_from(repo, src, tools, args):
    (repo / ".copier-answers.yml").write_text(ANSWERS.replace(TEMPLATE, src))
    source = f'{{ git = "{tools}", rev = "0" }}' if tools else '{ index = "internal" }'
    (repo / "pyproject.toml").write_text(f"[tool.uv.sources]\ncopier-uv-docker-tools = {source}\n")
    problem, printed, ran = update(repo, *args, "--vcs-ref", "v0.5.0", "-d", "x=1")
    assert ran is not None, problem
    called, data = ran
    assert printed[0] == f"Template: {src}"
    assert called[:4] == ["-m", "copier", "update", "--trust"]
    assert called[-4:] == ["--vcs-ref", "v0.5.0", "-d", "x=1"]  # passed on, the flag taken out
    assert "--template-source" not in " ".join(called)
    assert yaml.safe_load(data) == {
        "project_name": "Morgan",
        "services": [{"name": "core", "port": 8000}],
    }


def test_a_data_file_is_checked_and_merged(repo):
    (repo / "more.yml").write_text("project_name: Other\nregistry: r.example.com/team\n")
    _, _, ran = update(repo, "--data-file", "more.yml")
    called, data = ran
    assert "more.yml" not in " ".join(called)
    assert yaml.safe_load(data)["project_name"] == "Other"
    assert yaml.safe_load(data)["registry"] == "r.example.com/team"


def test_a_surrogate_answer_reaches_the_validators_escaped(repo):
    """A stored "\\ud800" goes to Copier as YAML can write it, for the validators to refuse in
    one line, never as a UnicodeEncodeError here."""
    (repo / ".copier-answers.yml").write_text(ANSWERS.replace("Morgan", '"Mor\\ud800gan"'))
    _, _, ran = update(repo)
    assert yaml.safe_load(ran[1])["project_name"] == "Mor\ud800gan"


def test_tools_url_follows_copier_yml():
    """The same expansion as copier.yml's tools_git (tests/test_render.py checks that one on
    the same addresses)."""
    assert template_update.tools_url("gh:acme/t") == "https://github.com/acme/t.git"
    assert template_update.tools_url("gl:/acme/t.git") == "https://gitlab.com/acme/t.git"
    assert (
        template_update.tools_url("git+https://x.example.com/t.git")
        == "https://x.example.com/t.git"
    )
    assert (
        template_update.tools_url("git@x.example.com:a/t.git") == "ssh://git@x.example.com/a/t.git"
    )
    assert template_update.tools_url("/srv/t") == "file:///srv/t"
    assert template_update.tools_url("../t") == ""
