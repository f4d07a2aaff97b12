"""`copier update` of generated repos: the team's edits survive, the template's changes arrive,
conflicts are reported by `nox -s template_update` (also when the relock fails), services come
and go through an update, and the migrations in migrations/ run: the 0.2.0 move (.dive-ci ->
.config/dive-ci.yaml) once, on update only, and the relock on every update.

Template versions are built in a temporary clone of this repo, since tags may not survive a push:
each commit whose subject is exactly "Release X.Y.Z" is tagged vX.Y.Z, and the working tree's
copier.yml, CHANGELOG.md, migrations/, template/ and tools/ (uncommitted changes included) are
committed on top of HEAD and tagged as the minor version after the newest release
(`versions.newest`, v0.4.0 once 0.3.0 is released): what is tested is the working tree, as the
next release would ship it. Repos made from it take the tooling package from that clone.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from copier import run_update
from packaging.version import Version

from scripts.render import TEMPLATE, render
from tests.conftest import BIN, nox, run
from uvdocker import template_update

UV = str(BIN / "uv")
RELEASE = re.compile(r"^(?P<sha>[0-9a-f]{40}) Release (?P<version>\d+\.\d+\.\d+)$")
# The version before .dive-ci moved: the migration and the real conflict below start from it.
BEFORE_MOVE = "v0.1.0"
CPU = {"gpu": False, "apt_packages": []}
ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "single-cpu": {"python_version": "3.11", "services": [{"name": "api", "port": 9000, **CPU}]},
    "gpu-only": {
        "python_version": "3.11",
        "services": [{"name": "tts", "gpu": True, "port": 8002, "apt_packages": ["libsndfile1"]}],
    },
}
SINGLE_CPU = ANSWER_SETS["single-cpu"]
TEAM_APT = """\
# Team: ffmpeg, to convert uploaded audio.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\
    --mount=type=cache,target=/var/lib/apt,sharing=locked \\
    apt-get update && apt-get install -y --no-install-recommends ffmpeg
"""
TEAM_CODE = '"""Routes the team wrote."""\n\nROUTES = ["/transcribe"]\n'


def release_tags(repo: Path) -> list[tuple[str, str]]:
    """(vX.Y.Z, commit) of each commit whose subject is exactly "Release X.Y.Z", oldest first."""
    log = run(["git", "log", "--format=%H %s"], cwd=repo).stdout.splitlines()
    found = [(f"v{m['version']}", m["sha"]) for m in map(RELEASE.match, log) if m]
    return sorted(found, key=lambda tag: Version(tag[0]))


RELEASES = [tag for tag, _ in release_tags(TEMPLATE)]


@dataclass(frozen=True)
class Versions:
    src: Path  # the temporary clone that copier copies and updates from
    releases: list[str]  # vX.Y.Z, oldest first
    newest: str  # the working tree's tag


def git(repo: Path, *args: str) -> str:
    """git in `repo` with a fixed identity (machines running the tests may have none)."""
    ident = ["-c", "user.name=Team", "-c", "user.email=team@example.com"]
    return run(["git", *ident, "-c", "commit.gpgsign=false", *args], cwd=repo).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """A clone of this repo with a tag per release and the working tree as the newest version."""
    src = tmp_path_factory.mktemp("template") / "copier-uv-docker"
    run(["git", "clone", "--quiet", "--no-tags", str(TEMPLATE), str(src)], cwd=src.parent)
    releases = release_tags(src)
    for tag, sha in releases:
        git(src, "tag", tag, sha)
    paths = ["copier.yml", "CHANGELOG.md", "migrations", "template", "tools"]
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=TEMPLATE,
    ).stdout.split("\0")
    for path in ("template", "tools"):
        shutil.rmtree(src / path, ignore_errors=True)
    for path in listed:
        if path and (TEMPLATE / path).is_file():  # a deleted file stays listed until staged
            (src / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / path, src / path)
    commit_all(src, "The working tree under test")
    last = Version(releases[-1][0]) if releases else Version("0.0.0")
    newest = f"v{last.major}.{last.minor + 1}.0"
    git(src, "tag", newest)
    return Versions(src, [tag for tag, _ in releases], newest)


def copy(versions: Versions, dest: Path, answers: dict[str, Any], ref: str | None = None) -> Path:
    """`copier copy` at `ref` (the newest version by default), committed as a team would."""
    render(dest, answers, vcs_ref=ref or versions.newest, template=versions.src)
    if not (dest / ".git").exists():  # versions before 0.2.0 left `git init` to the team
        git(dest, "init", "--quiet")
    commit_all(dest, f"copier copy {ref or versions.newest}")
    return dest


def update(repo: Path, ref: str | None = None, **answers: Any) -> None:
    """`copier update --defaults` to `ref` (the newest version by default)."""
    run_update(
        str(repo),
        data=answers,
        defaults=True,
        unsafe=True,
        overwrite=True,
        vcs_ref=ref,
        quiet=True,
    )


def tree(repo: Path) -> dict[str, bytes]:
    """Every file of a repo but .git, by relative path."""
    return {
        path.relative_to(repo).as_posix(): path.read_bytes()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and path.relative_to(repo).parts[0] != ".git"
    }


def differences(actual: dict[str, bytes], expected: dict[str, bytes]) -> list[str]:
    """Paths that differ between two trees, each with a short diff."""
    result = []
    for path in sorted(set(actual) | set(expected)):
        if path not in actual or path not in expected:
            result.append(f"{path}: only in {'expected' if path in expected else 'actual'}")
        elif actual[path] != expected[path]:
            diff = difflib.unified_diff(
                expected[path].decode(errors="replace").splitlines(),
                actual[path].decode(errors="replace").splitlines(),
                "expected",
                "actual",
                lineterm="",
            )
            result.append(f"{path}:\n" + "\n".join(list(diff)[:40]))
    return result


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in a file, which must hold it."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def first_service(answers: dict[str, Any]) -> str:
    return answers["services"][0]["name"] if "services" in answers else "core"


def team_edits(repo: Path, service: str) -> None:
    """What a team does in a generated repo, on lines the template does not change."""
    pkg = repo / "services" / service
    edit(pkg / "Dockerfile", "FROM shared AS app\n", "FROM shared AS app\n" + TEAM_APT)
    edit(pkg / "pyproject.toml", '    "shared",\n', '    "shared",\n    "idna>=3",\n')
    edit(repo / "compose.yaml", "${NETRC_FILE:-/dev/null}", "${NETRC_FILE:-/etc/team/netrc}")
    edit(pkg / "src" / service / "app.py", 'MESSAGE = "hello"', 'MESSAGE = "hello from the team"')
    (pkg / "src" / service / "routes.py").write_text(TEAM_CODE)
    dive = repo / ".dive-ci"
    dive = dive if dive.exists() else repo / ".config" / "dive-ci.yaml"
    edit(dive, "lowestEfficiency: 0.95", "lowestEfficiency: 0.9")
    (repo / ".env").write_text("CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt\n")
    run([UV, "lock", "--quiet"], cwd=repo)  # the new dependency, locked


def assert_team_edits(repo: Path, service: str) -> None:
    pkg = repo / "services" / service
    assert TEAM_APT in (pkg / "Dockerfile").read_text()
    assert '"idna>=3"' in (pkg / "pyproject.toml").read_text()
    compose = yaml.safe_load((repo / "compose.yaml").read_text())
    assert compose["secrets"]["netrc"]["file"] == "${NETRC_FILE:-/etc/team/netrc}"
    assert 'MESSAGE = "hello from the team"' in (pkg / "src" / service / "app.py").read_text()
    assert (pkg / "src" / service / "routes.py").read_text() == TEAM_CODE
    assert "lowestEfficiency: 0.9\n" in (repo / ".config" / "dive-ci.yaml").read_text()
    assert not (repo / ".dive-ci").exists()
    assert (repo / ".env").read_text() == "CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt\n"
    run([UV, "lock", "--locked", "--quiet"], cwd=repo)  # uv.lock matches every pyproject.toml


def no_conflicts(repo: Path) -> None:
    """No conflict markers, no .rej or .orig files, and uv.lock relocked."""
    lines: list[str] = []
    assert template_update.report(repo, lines.append) == "", lines
    assert not [p for p in tree(repo) if p.endswith((".rej", ".orig"))]


@pytest.mark.parametrize("old", RELEASES)
@pytest.mark.parametrize("answer_set", list(ANSWER_SETS))
def test_update_keeps_team_edits(versions, tmp_path, answer_set, old):
    """Edits on lines the template leaves alone survive; the template's changes arrive."""
    answers, service = ANSWER_SETS[answer_set], first_service(ANSWER_SETS[answer_set])
    repo = copy(versions, tmp_path / "team", answers, old)
    team_edits(repo, service)
    commit_all(repo, "Team edits")
    update(repo)
    assert_team_edits(repo, service)
    no_conflicts(repo)
    # The template's changes arrived: the repo is now a fresh copy with the same edits made.
    expected = copy(versions, tmp_path / "expected", answers)
    team_edits(expected, service)
    assert differences(tree(repo), tree(expected)) == []


@pytest.mark.parametrize("old", RELEASES)
@pytest.mark.parametrize("answer_set", list(ANSWER_SETS))
def test_update_gives_a_fresh_copy(versions, tmp_path, answer_set, old):
    """Without edits, an update from a release is exactly a copy at the newest version."""
    answers = ANSWER_SETS[answer_set]
    repo = copy(versions, tmp_path / "old", answers, old)
    update(repo)
    assert yaml.safe_load((repo / ".copier-answers.yml").read_text())["_commit"] == versions.newest
    fresh = copy(versions, tmp_path / "fresh", answers)
    assert differences(tree(repo), tree(fresh)) == []


# The release whose repos hold noxtools/, which 0.4.0 made the uvdocker package.
NOXTOOLS = "v0.3.0"
KEPT = "noxtools/ stays: you edited it, and from template 0.4.0"


@pytest.mark.skipif(NOXTOOLS not in RELEASES, reason=f"no {NOXTOOLS} release commit in this clone")
def test_update_removes_the_unedited_noxtools(versions, tmp_path):
    """From 0.3.0 by its own template_update session, with the team's edits elsewhere: the old
    tooling folder goes (listed as removed), the team's edits stay, and the repo is a fresh copy
    with the same edits."""
    repo = copy(versions, tmp_path / "team", SINGLE_CPU, NOXTOOLS)
    assert (repo / "noxtools/build.py").is_file()
    team_edits(repo, "api")
    commit_all(repo, "Team edits")
    out = nox(repo, "-s", "template_update")  # 0.3.0's own session runs
    assert "Updated without conflicts" in out.stdout
    removed = out.stdout.split("Removed by the update")[1].split("\n\n")[0]
    assert "  noxtools/build.py\n" in removed and "  noxtools/host.py\n" in removed
    assert not (repo / "noxtools").exists() and KEPT not in out.stderr
    assert_team_edits(repo, "api")
    no_conflicts(repo)
    expected = copy(versions, tmp_path / "expected", SINGLE_CPU)
    team_edits(expected, "api")
    assert differences(tree(repo), tree(expected)) == []


@pytest.mark.skipif(NOXTOOLS not in RELEASES, reason=f"no {NOXTOOLS} release commit in this clone")
def test_update_keeps_an_edited_noxtools_and_says_so(versions, tmp_path):
    """The team changed noxtools/build.py and added a module there: the folder stays whole,
    template_update says so in one line (and lists it on every later run), nothing conflicts,
    and everything else is what a fresh copy with the same edits holds."""
    repo = copy(versions, tmp_path / "team", SINGLE_CPU, NOXTOOLS)
    team_edits(repo, "api")
    edit(repo / "noxtools/build.py", "COUNTED = (", "COUNTED = (  # the team's note\n    ")
    (repo / "noxtools/ours.py").write_text(TEAM_CODE)
    ours = {path: text for path, text in tree(repo).items() if path.startswith("noxtools/")}
    commit_all(repo, "Team edits, the tooling too")
    out = nox(repo, "-s", "template_update")  # 0.3.0's own session runs
    assert "Updated without conflicts" in out.stdout and "Removed by the update" not in out.stdout
    (said,) = [line for line in out.stderr.splitlines() if line.startswith(KEPT)]
    assert said.endswith("then delete noxtools/")
    assert {path: text for path, text in tree(repo).items() if path.startswith("noxtools/")} == ours
    assert_team_edits(repo, "api")
    no_conflicts(repo)
    lines: list[str] = []
    assert template_update.report(repo, lines.append) == ""  # a note, not a failure
    assert any(line.startswith("noxtools/: the tooling before template 0.4.0") for line in lines)
    expected = copy(versions, tmp_path / "expected", SINGLE_CPU)
    team_edits(expected, "api")
    assert differences(tree(repo), {**tree(expected), **ours}) == []


def test_the_noxtools_migration_knows_the_released_files():
    """Its table is 0.3.0's noxtools/, file for file."""
    sha = dict(release_tags(TEMPLATE)).get(NOXTOOLS)
    if not sha:
        pytest.skip(f"no {NOXTOOLS} release commit in this clone")
    listed = run(["git", "ls-tree", "--name-only", sha, "template/noxtools/"], cwd=TEMPLATE)
    released = {
        Path(path).name: hashlib.sha256(
            run(["git", "show", f"{sha}:{path}"], cwd=TEMPLATE).stdout.encode()
        ).hexdigest()
        for path in listed.stdout.split()
    }
    script = (MIGRATIONS / "v0_4_0_noxtools.py").read_text()
    table = dict(re.findall(r'^    "([\w.]+)": "([0-9a-f]{64})",$', script, re.MULTILINE))
    assert table == released


def test_same_lines_conflict_is_found(versions, tmp_path):
    """The team changed the dive session's config line, which 0.2.0 changed too (and 0.4.0 made one
    line over uvdocker): a conflict, not a pick."""
    repo = copy(versions, tmp_path / "team", SINGLE_CPU, BEFORE_MOVE)
    edit(repo / "noxfile.py", 'str(ROOT / ".dive-ci")', 'str(ROOT / "ci" / "dive.yaml")')
    edit(repo / "services/api/src/api/app.py", 'MESSAGE = "hello"', 'MESSAGE = "ours"')
    commit_all(repo, "Team edits")
    update(repo)  # 0.1.0 repos have no template_update session yet: plain copier update
    noxfile = (repo / "noxfile.py").read_text()
    assert "<<<<<<< before updating" in noxfile
    assert 'ROOT / "ci" / "dive.yaml"' in noxfile and "repo.dive(session)" in noxfile
    assert 'MESSAGE = "ours"' in (repo / "services/api/src/api/app.py").read_text()
    lines: list[str] = []
    assert (
        template_update.report(repo, lines.append) == "1 file(s) with update conflicts: noxfile.py"
    )


@pytest.fixture(scope="module")
def later(versions: Versions, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """`versions` plus one more version (the newest's next patch) that changes the line setting
    MESSAGE in each service's app.py and the description in its pyproject.toml, with a CHANGELOG
    entry: repos at `versions.newest` have the template sessions, so they update to it by nox."""
    src = tmp_path_factory.mktemp("later") / "copier-uv-docker"
    run(["git", "clone", "--quiet", str(versions.src), str(src)], cwd=src.parent)
    edit(
        next((src / "template" / "services").glob("*/src/*/*app.py{% endif %}")),  # not workers
        'MESSAGE = "hello"',
        'MESSAGE = "hello from the template"',
    )
    edit(
        next((src / "template" / "services").glob("*/pyproject.toml.jinja")), " service of ", " of "
    )
    newest = Version(versions.newest)
    tag = f"v{newest.major}.{newest.minor}.{newest.micro + 1}"
    entry = f"## {tag[1:]}\n- Each service's MESSAGE and description changed. Do: nothing.\n\n"
    edit(src / "CHANGELOG.md", "\n## ", f"\n{entry}## ")
    commit_all(src, f"Release {tag[1:]}")
    git(src, "tag", tag)
    return Versions(src, [*versions.releases, versions.newest], tag)


@pytest.mark.parametrize("mode", ["inline", "rej"])
def test_template_update_reports_conflicts(later, tmp_path, mode):
    """Same lines touched by team and template: nox -s template_update lists it and fails."""
    repo = copy(later, tmp_path / "team", SINGLE_CPU, later.releases[-1])
    app = repo / "services/api/src/api/app.py"
    edit(app, 'MESSAGE = "hello"', 'MESSAGE = "ours"')
    edit(repo / "compose.yaml", "restart: unless-stopped", "restart: always")
    commit_all(repo, "Team edits")
    args = ["--", "--conflict", "rej"] if mode == "rej" else []
    out = nox(repo, "-s", "template_update", *args, check=False)
    output = out.stdout + out.stderr
    assert out.returncode != 0, output
    listed = "services/api/src/api/app.py" + (".rej" if mode == "rej" else "")
    assert f"then commit:\n  {listed}\n\n" in out.stdout  # the list, one file a line
    assert f"Session template_update aborted: 1 file(s) with update conflicts: {listed} (" in output
    if mode == "inline":
        assert "<<<<<<< before updating" in app.read_text()
        assert 'MESSAGE = "ours"' in app.read_text()
        assert 'MESSAGE = "hello from the template"' in app.read_text()
    else:
        # The template's line is in the file, the team's rejected hunk in the .rej beside it.
        assert 'MESSAGE = "hello from the template"' in app.read_text()
        assert "<<<<<<<" not in app.read_text()
        assert '+MESSAGE = "ours"' in (repo / listed).read_text()
    # The edit on other lines merged cleanly and is not reported.
    assert "restart: always" in (repo / "compose.yaml").read_text()
    assert "compose.yaml" not in output.split("update conflicts:")[-1]


def test_failed_relock_still_lists_conflicts(later, tmp_path):
    """Team and template changed a pyproject.toml's same line: uv cannot lock the markers, yet
    template_update lists every conflict, then fails with one line saying uv.lock is stale."""
    repo = copy(later, tmp_path / "team", SINGLE_CPU, later.releases[-1])
    pyproject = repo / "services/api/pyproject.toml"
    edit(pyproject, 'description = "The api service', 'description = "Our api service')
    edit(repo / "services/api/src/api/app.py", 'MESSAGE = "hello"', 'MESSAGE = "ours"')
    commit_all(repo, "Team edits")
    lock = (repo / "uv.lock").read_text()
    out = nox(repo, "-s", "template_update", check=False)
    output = out.stdout + out.stderr
    assert out.returncode != 0, output
    assert "<<<<<<< before updating" in pyproject.read_text()
    assert "warning: uv.lock not relocked (uv lock exited 2, its error is above)" in out.stderr
    listed = ["services/api/pyproject.toml", "services/api/src/api/app.py"]
    assert "then commit:\n" + "".join(f"  {path}\n" for path in sorted(listed)) in out.stdout
    assert (
        f"Session template_update aborted: 2 file(s) with update conflicts: {', '.join(listed)}; "
        "uv.lock not relocked (uv lock --check fails): fix the above, run uv lock ("
    ) in output
    assert (repo / "uv.lock").read_text() == lock
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["_commit"] == later.newest  # why template_check now says "up to date"


def test_a_stored_answer_the_new_version_refuses_stops_the_update(versions, tmp_path):
    """0.2.0 took a service named json, which shadows the standard library. Copier alone would
    silently put the default services in its place; the update stops instead, in one line,
    with nothing changed, and goes through once a new value is given."""
    answers = {"python_version": "3.11", "services": [{"name": "json", "port": 9000, **CPU}]}
    repo = copy(versions, tmp_path / "team", answers, "v0.2.0")  # 0.3.0 refuses it already
    out = nox(repo, "-s", "template_update", check=False)  # 0.2.0's own session runs
    assert out.returncode != 0
    said = (out.stdout + out.stderr).splitlines()
    (line,) = [line for line in said if line.startswith("error: this template version refuses")]
    assert line.startswith("error: this template version refuses the stored answer services=")
    assert line.endswith("give a new value with -d services=... (the update was undone)")
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""
    renamed = "services=[{name: json_api, port: 9000}]"
    nox(repo, "-s", "template_update", "--", "-d", renamed)
    assert (repo / "services/json_api/Dockerfile").is_file()
    assert not (repo / "services/json").exists()


def test_template_update_runs_only_the_template_the_repo_was_made_from(later, tmp_path):
    """A replayed answers file naming another template (a branch edited `_src_path`): the update
    stops in one line and runs nothing of it; confirmed with --template-source, it runs, and
    pyproject.toml follows the new address."""
    repo = copy(later, tmp_path / "team", SINGLE_CPU, later.releases[-1])
    other = tmp_path / "other" / "copier-uv-docker"
    run(["git", "clone", "--quiet", str(later.src), str(other)], cwd=tmp_path)
    marker = tmp_path / "the-other-templates-task-ran"
    edit(other / "copier.yml", "_tasks:\n", f"_tasks:\n  - command: [touch, {marker}]\n")
    commit_all(other, "A task of its own")
    git(other, "tag", "--force", later.newest)
    edit(repo / ".copier-answers.yml", f"_src_path: {later.src}", f"_src_path: {other}")
    commit_all(repo, "A branch points the answers elsewhere")
    out = nox(repo, "-s", "template_update", check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    (line,) = [line for line in out.stderr.splitlines() if "aborted" in line]
    assert f"names the template {other}, but the tooling in pyproject.toml comes from " in line
    assert f"rerun with -- --template-source {other} (nothing was run)" in line
    assert not marker.exists()
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""

    # Confirmed, it runs (its task too). Copier renders the version the repo was on from the new
    # address, so pyproject.toml's tooling line, where the repo still names the old one, is a
    # conflict to resolve once, as docs/updating.md says.
    confirm = ["--", "--template-source", str(other)]
    out = nox(repo, "-s", "template_update", *confirm, check=False)
    assert f"Template: {other}" in out.stdout and marker.exists()
    assert f'git = "file://{other}"' in (repo / "pyproject.toml").read_text()
    assert "update conflicts: pyproject.toml" in out.stderr


def test_template_update_checks_the_stored_answers(later, tmp_path):
    """From 0.3.0 on, template_update gives Copier the stored answers to validate."""
    repo = copy(later, tmp_path / "team", SINGLE_CPU, later.releases[-1])
    edit(repo / ".copier-answers.yml", "registry: ''", "registry: Registry.Example.com/team")
    commit_all(repo, "A hand-edited answer")
    out = nox(repo, "-s", "template_update", check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    (line,) = [line for line in out.stderr.splitlines() if "aborted" in line]
    assert "Validation error for question 'registry': registry must" in line
    assert "give a new value with -- -d KEY=VALUE (nothing was changed)" in line
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""


def test_adding_a_service(versions, tmp_path):
    """-d services=... through template_update: folder, Dockerfile, compose entry, lock."""
    repo = copy(versions, tmp_path / "team", SINGLE_CPU)
    services = [*SINGLE_CPU["services"], {"name": "worker", "gpu": True, "port": 9001}]
    flow = yaml.safe_dump(services, default_flow_style=True).strip()
    out = nox(repo, "-s", "template_update", "--", "--data", f"services={flow}")
    assert "Updated without conflicts" in out.stdout
    assert (repo / "services/worker/Dockerfile").is_file()
    assert "FROM ${CUDA_IMAGE} AS base" in (repo / "services/worker/Dockerfile").read_text()
    compose = yaml.safe_load((repo / "compose.yaml").read_text())
    assert list(compose["services"]) == ["api", "worker"]
    assert 'name = "worker"' in (repo / "uv.lock").read_text()
    run([UV, "lock", "--locked", "--quiet"], cwd=repo)
    fresh = copy(versions, tmp_path / "fresh", {**SINGLE_CPU, "services": services})
    assert differences(tree(repo), tree(fresh)) == []


TWO_CPU = {
    "python_version": "3.11",
    "services": [{"name": "api", "port": 9000, **CPU}, {"name": "worker", "port": 9001, **CPU}],
}


def test_removing_a_service(versions, tmp_path):
    """As documented: every file generated for it goes, edited or not, and template_update
    lists them; its compose entry goes and uv.lock is relocked."""
    repo = copy(versions, tmp_path / "team", TWO_CPU)
    app = repo / "services/worker/src/worker/app.py"
    edit(app, 'MESSAGE = "hello"', 'MESSAGE = "edited"')
    commit_all(repo, "Team edits")
    flow = yaml.safe_dump(TWO_CPU["services"][:1], default_flow_style=True).strip()
    out = nox(repo, "-s", "template_update", "--", "--data", f"services={flow}")
    assert "Updated without conflicts" in out.stdout
    removed = out.stdout.split("Removed by the update")[1]
    assert (
        "services/worker/Dockerfile" in removed and "services/worker/src/worker/app.py" in removed
    )
    assert not (repo / "services/worker").exists()
    assert list(yaml.safe_load((repo / "compose.yaml").read_text())["services"]) == ["api"]
    assert 'name = "worker"' not in (repo / "uv.lock").read_text()
    assert git(repo, "show", "HEAD:services/worker/src/worker/app.py").count("edited") == 1
    fresh = copy(versions, tmp_path / "fresh", {**TWO_CPU, "services": TWO_CPU["services"][:1]})
    assert differences(tree(repo), tree(fresh)) == []


def test_removing_a_service_keeps_files_the_team_added(versions, tmp_path):
    """Files the team added stay; without its pyproject.toml the folder blocks uv lock, so the
    relock fails with a warning and template_update says what to do, exiting non-zero."""
    repo = copy(versions, tmp_path / "team", TWO_CPU)
    added = repo / "services/worker/src/worker/routes.py"
    added.write_text(TEAM_CODE)
    commit_all(repo, "Team code")
    lock = (repo / "uv.lock").read_text()
    out = nox(
        repo, "-s", "template_update", "--", "-d", "services=[{name: api, port: 9000}]", check=False
    )
    output = out.stdout + out.stderr
    assert out.returncode != 0, output
    assert added.read_text() == TEAM_CODE
    assert not (repo / "services/worker/pyproject.toml").exists()
    assert not (repo / "services/worker/Dockerfile").exists()
    assert "services/worker` is missing a `pyproject.toml`" in out.stderr  # uv's own error
    assert "warning: uv.lock not relocked (uv lock exited 2, its error is above)" in out.stderr
    assert "services/worker: a removed service's folder holds your files" in out.stdout
    assert "Session template_update aborted: uv.lock not relocked (" in output
    assert "update conflicts" not in output
    assert (repo / "uv.lock").read_text() == lock


def test_migration_runs_once_on_update_only(versions, tmp_path):
    """0.2.0 moved .dive-ci: an update from before moves the team's file (thresholds kept),
    a later update leaves a new .dive-ci alone, and a copy never moves anything."""
    original = (versions.src / "template/.config/dive-ci.yaml").read_text()
    repo = copy(versions, tmp_path / "team", SINGLE_CPU, BEFORE_MOVE)
    assert (repo / ".dive-ci").read_text() == original  # 0.2.0 kept its content
    edit(repo / ".dive-ci", "highestWastedBytes: 20MB", "highestWastedBytes: 50MB")
    commit_all(repo, "Team thresholds")
    update(repo)
    assert not (repo / ".dive-ci").exists()
    moved = (repo / ".config/dive-ci.yaml").read_text()
    assert moved == original.replace("highestWastedBytes: 20MB", "highestWastedBytes: 50MB")
    commit_all(repo, "Update to the newest template")
    # Once: the team's next .dive-ci (any file of that name) is not moved by a later update.
    (repo / ".dive-ci").write_text("# something else\n")
    commit_all(repo, "Another file named .dive-ci")
    update(repo, python_version="3.12")
    assert (repo / ".dive-ci").read_text() == "# something else\n"
    assert (repo / ".config/dive-ci.yaml").read_text() == moved
    # Copy only: a .dive-ci already in the destination stays, the template's file is added.
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / ".dive-ci").write_text("# kept\n")
    copy(versions, dest, SINGLE_CPU)
    assert (dest / ".dive-ci").read_text() == "# kept\n"
    assert (dest / ".config/dive-ci.yaml").read_text() == original


def test_migration_is_a_no_op_without_the_old_file(versions, tmp_path):
    repo = copy(versions, tmp_path / "team", SINGLE_CPU, BEFORE_MOVE)
    git(repo, "rm", "--quiet", ".dive-ci")
    commit_all(repo, "We do not use dive")
    update(repo)
    assert not (repo / ".dive-ci").exists()
    no_conflicts(repo)


def test_copy_runs_git_init_only_outside_a_repo(versions, tmp_path):
    """The copy-only task: a git repo (nothing committed) unless already inside one."""
    repo = tmp_path / "new"
    render(repo, SINGLE_CPU, vcs_ref=versions.newest, template=versions.src)
    assert (repo / ".git").is_dir() and (repo / "uv.lock").is_file()
    assert run(["git", "rev-parse", "--verify", "HEAD"], cwd=repo, check=False).returncode != 0
    inner = repo / "deploy" / "services-repo"
    render(inner, SINGLE_CPU, vcs_ref=versions.newest, template=versions.src)
    assert not (inner / ".git").exists() and (inner / "uv.lock").is_file()


def test_a_failed_first_lock_keeps_the_render_and_the_answers(versions, tmp_path):
    """copier copy whose `uv lock` cannot succeed (offline, nothing cached): Copier would delete
    the new folder and every answer typed; instead both stay, one line says what failed and the
    commands that finish the job, and the first of them locks once uv can reach the index."""
    cache, dest = tmp_path / "empty-uv-cache", tmp_path / "my-services"
    cache.mkdir()
    answers = ["-d", "project_name=Kept", "-d", "python_version=3.11"]
    cmd = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", *answers]
    cmd += ["-r", versions.newest, str(versions.src), str(dest)]
    out = run(cmd, cwd=tmp_path, env={"UV_OFFLINE": "1", "UV_CACHE_DIR": str(cache)})
    kept = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert (kept["project_name"], kept["python_version"]) == ("Kept", "3.11")
    assert (dest / "compose.yaml").is_file() and not (dest / "uv.lock").exists()
    (line,) = [line for line in out.stderr.splitlines() if "uv.lock not written" in line]
    assert line.startswith("warning: uv.lock not written (uv lock exited 1, its error is above)")
    assert line.endswith(f"finish with: cd {dest} && uv lock && uv run nox -s build")
    run([UV, "lock"], cwd=dest)
    assert (dest / "uv.lock").is_file()


def test_template_check(later, tmp_path):
    """nox -s template_check: exit 1 naming the newer version and its CHANGELOG entry, 0 when
    current, and 2 with one line when the template cannot be reached."""
    behind = copy(later, tmp_path / "behind", SINGLE_CPU, later.releases[-1])
    out = nox(behind, "-s", "template_check", check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"on template version {later.releases[-1]}; newer: {later.newest}." in out.stdout
    assert f"## {later.newest[1:]}\n- Each service's MESSAGE and description changed." in out.stdout

    current = copy(later, tmp_path / "current", SINGLE_CPU)
    out = nox(current, "-s", "template_check")
    assert f"Up to date: this repo is on template version {later.newest}" in out.stdout

    edit(current / ".copier-answers.yml", str(later.src), str(tmp_path / "moved-away"))
    out = nox(current, "-s", "template_check", check=False)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "template_check:" in line]
    assert len(errors) == 1, out.stderr  # and Copier's reason after the template's address
    assert errors[0].startswith(f"template_check: cannot compare with {tmp_path / 'moved-away'}: ")


def test_template_check_lists_every_newer_version(versions, tmp_path):
    """From 0.1.0 (which has no template_check session yet), with the 0.2.0 CHANGELOG entry."""
    old = copy(versions, tmp_path / "old", SINGLE_CPU, BEFORE_MOVE)
    lines: list[str] = []
    assert template_update.check(old, lines.append, lines.append) == 1
    text = "\n".join(lines)
    newer = [tag for tag in [*versions.releases, versions.newest] if tag != BEFORE_MOVE]
    assert f"newer: {', '.join(newer)}." in text
    assert "## 0.2.0" in text and ".config/dive-ci.yaml" in text
    assert f"-- --vcs-ref {newer[0]}" in text


def test_excluded_files_never_reach_a_repo(tmp_path):
    """_exclude: caches and merge leftovers in template/ are not copied."""
    src = tmp_path / "template"  # a plain folder (no git): copier copies it as it is
    shutil.copytree(TEMPLATE / "template", src / "template")
    shutil.copytree(TEMPLATE / "tools/src", src / "tools/src")  # the validators' rules.yml
    shutil.copy2(TEMPLATE / "copier.yml", src / "copier.yml")
    junk = ["__pycache__/x.cpython-311.pyc", ".ruff_cache/CACHEDIR.TAG", "Makefile.rej", "~x"]
    junk += ["noxtools/build.py"]  # the tooling before 0.4.0: never copied
    for path in junk:
        (src / "template" / path).parent.mkdir(parents=True, exist_ok=True)
        (src / "template" / path).write_text("junk\n")
    dest = tmp_path / "repo"
    render(dest, SINGLE_CPU, vcs_ref=None, template=src, skip_tasks=True)
    assert (dest / "noxfile.py").is_file()
    assert not [path for path in junk if (dest / path).exists()]
    # Not a git repository: the tooling comes from the folder's own tools/.
    pyproject = tomllib.loads((dest / "pyproject.toml").read_text())
    assert pyproject["tool"]["uv"]["sources"] == {
        "copier-uv-docker-tools": {"path": str(src / "tools")}
    }


# The helper module and the migration scripts on their own.

MIGRATIONS = TEMPLATE / "migrations"


def test_changelog_sections_between_two_versions(tmp_path):
    """The CHANGELOG at v<latest>: sections after the current version, up to the latest."""
    src = tmp_path / "tpl"
    src.mkdir()
    run(["git", "init", "--quiet"], cwd=src)
    text = "# Changelog\n\n## Unreleased\n- Soon.\n\n## 0.10.0\nTen.\n\n## 0.2.0\nTwo.\n- a\n"
    (src / "CHANGELOG.md").write_text(text + "\n## 0.1.0\nOne.\n")
    commit_all(src, "Release 0.10.0")
    git(src, "tag", "v0.10.0")
    found = template_update.changelog(str(src), "0.1.0.post3", "0.10.0", tmp_path)
    assert found == {Version("0.10.0"): "## 0.10.0\nTen.", Version("0.2.0"): "## 0.2.0\nTwo.\n- a"}
    assert template_update.changelog(str(src), "0.10.0", "0.11.0", tmp_path) == {}  # no tag


def test_update_command_passes_arguments_on():
    cmd = template_update.update_command("py", ["-d", "services=[]"], "/tmp/answers.yml")
    assert cmd == [
        *("py", "-m", "copier", "update", "--trust", "--data-file", "/tmp/answers.yml"),
        *("--defaults", "--conflict", "inline", "-d", "services=[]"),
    ]
    rej = template_update.update_command("py", ["--conflict", "rej"], "a.yml")
    assert rej[-2:] == ["--conflict", "rej"]
    assert "inline" not in template_update.update_command("py", ["--conflict=rej"], "a.yml")


def test_report_finds_markers_rejects_deletions_and_a_stale_lock(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "--quiet"], cwd=repo)
    for name in ("kept.py", "gone.py", "clash.py"):
        (repo / name).write_text("x = 1\n")
    (repo / ".gitignore").write_text("*.rej\n")
    commit_all(repo, "init")
    (repo / "gone.py").unlink()
    (repo / "clash.py").write_text(
        "<<<<<<< before updating\nx = 2\n=======\nx = 3\n>>>>>>> after\n"
    )
    (repo / "kept.py").write_text("x = '<<<<<<< not a marker'\n")
    (repo / "new" / "deep").mkdir(parents=True)
    (repo / "new" / "deep" / "file.py.rej").write_text("@@ -1 +1 @@\n")
    (repo / "services" / "old" / "src").mkdir(parents=True)
    (repo / "services" / "old" / "src" / "mine.py").write_text("")
    lines: list[str] = []
    problem = template_update.report(repo, lines.append, ["first"])
    assert lines[0].startswith("Removed by the update") and lines[0].endswith(":\n  gone.py\n")
    assert lines[1].endswith("then commit:\n  clash.py\n  new/deep/file.py.rej\n")
    assert lines[2].startswith("services/old: a removed service's folder holds your files")
    assert problem == (
        "first; 2 file(s) with update conflicts: clash.py, new/deep/file.py.rej; "
        "uv.lock not relocked (uv lock --check fails): fix the above, run uv lock"
    )  # no pyproject.toml here, so no lock either


def test_update_lists_what_a_failed_copier_update_left(tmp_path):
    """copier failing after it wrote the new version: the listing comes all the same; failing
    before it changed anything (a dirty tree, say): nothing to list."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "--quiet"], cwd=repo)
    (repo / ".copier-answers.yml").write_text("_commit: v0.1.0\n_src_path: /srv/tpl\n")
    tools = 'copier-uv-docker-tools = { git = "file:///srv/tpl", rev = "0" }'
    (repo / "pyproject.toml").write_text(f"[tool.uv.sources]\n{tools}\n")
    commit_all(repo, "init")
    fake = tmp_path / "python"  # stands in for `python -m copier update ...`
    fake.write_text(
        "#!/bin/sh\n[ -e fail-early ] && exit 1\necho '_commit: v0.2.0' > .copier-answers.yml\n"
        "printf '<<<<<<< before updating\\n' > clash.py\nexit 3\n"
    )
    fake.chmod(0o755)
    lines: list[str] = []
    problem = template_update.update(repo, [], lines.append, python=str(fake))
    assert problem.startswith("copier update exited 3 (see above); 1 file(s) with update conflicts")
    assert lines[0] == "Template: /srv/tpl"  # the one pyproject.toml takes the tooling from
    assert "then commit:\n  clash.py\n" in lines[1]
    git(repo, "checkout", "--quiet", ".")
    (repo / "fail-early").write_text("")
    problem = template_update.update(repo, [], lines.append, python=str(fake))
    assert problem == "copier update exited 1 before changing the repo (its error is above)"


def migrate(script: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess:
    """A migration script as Copier runs it: its Python, in the repo, with PATH as given."""
    env = {"PATH": path} if path is not None else None
    return run([sys.executable, str(MIGRATIONS / script)], cwd=cwd, env=env)


def test_move_dive_ci_migration(tmp_path):
    """Moves .dive-ci to .config/dive-ci.yaml; a no-op without it, or when both exist."""
    (tmp_path / ".dive-ci").write_text("ours\n")
    migrate("v0_2_0_move_dive_ci.py", tmp_path)
    assert not (tmp_path / ".dive-ci").exists()
    assert (tmp_path / ".config/dive-ci.yaml").read_text() == "ours\n"
    (tmp_path / ".dive-ci").write_text("another\n")
    migrate("v0_2_0_move_dive_ci.py", tmp_path)
    assert (tmp_path / ".dive-ci").read_text() == "another\n"
    assert (tmp_path / ".config/dive-ci.yaml").read_text() == "ours\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    migrate("v0_2_0_move_dive_ci.py", empty)
    assert list(empty.iterdir()) == []


def test_relock_migration_warns_but_never_fails(tmp_path):
    """uv lock failing (a broken pyproject.toml, or no uv at all) is one warning line, exit 0."""
    (tmp_path / "pyproject.toml").write_text("<<<<<<< before updating\n")
    out = migrate("relock.py", tmp_path)
    assert "TOML parse error" in out.stderr
    assert out.stderr.splitlines()[-1].startswith(
        "warning: uv.lock not relocked (uv lock exited 2, its error is above): "
    )
    out = migrate("relock.py", tmp_path, path=str(tmp_path / "no-uv-here"))
    assert out.stderr.startswith("warning: uv.lock not relocked (cannot run uv: ")
    assert len(out.stderr.splitlines()) == 1


def test_noxtools_migration_removes_only_an_unedited_folder(tmp_path):
    """0.3.0's files exactly (bytecode caches aside): gone, from the index too; anything else
    (an edit, a file added): kept, with one line saying what to do."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "--quiet"], cwd=repo)
    sha = dict(release_tags(TEMPLATE)).get(NOXTOOLS)
    if not sha:
        pytest.skip(f"no {NOXTOOLS} release commit in this clone")
    listed = run(["git", "ls-tree", "--name-only", sha, "template/noxtools/"], cwd=TEMPLATE)
    (repo / "noxtools").mkdir()
    for path in listed.stdout.split():
        shown = run(["git", "show", f"{sha}:{path}"], cwd=TEMPLATE).stdout
        (repo / "noxtools" / Path(path).name).write_text(shown)
    commit_all(repo, "0.3.0's tooling")
    (repo / "noxtools/build.py").write_text("# edited\n")
    out = migrate("v0_4_0_noxtools.py", repo)
    assert out.stderr.startswith(KEPT) and len(out.stderr.splitlines()) == 1
    assert (repo / "noxtools/build.py").read_text() == "# edited\n"
    git(repo, "checkout", "--quiet", "--", "noxtools")
    (repo / "noxtools/__pycache__").mkdir()
    (repo / "noxtools/__pycache__/build.cpython-311.pyc").write_bytes(b"\0")
    out = migrate("v0_4_0_noxtools.py", repo)
    assert out.stderr == "" and not (repo / "noxtools").exists()
    assert git(repo, "ls-files", "noxtools") == ""
    assert migrate("v0_4_0_noxtools.py", repo).stderr == ""  # no folder: nothing to do


def test_the_tooling_package_has_the_template_version_to_come():
    """tools/pyproject.toml's version is the one this tree will be released as: the minor version
    after the last release while CHANGELOG.md opens with `## Unreleased` (what
    `versions.newest` tags), and at a release commit that release's own."""
    version = tomllib.loads((TEMPLATE / "tools/pyproject.toml").read_text())["project"]["version"]
    text = (TEMPLATE / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (\S+)", text, re.MULTILINE)
    if headings[0] != "Unreleased":
        assert version == headings[0], "a release commit: tools/ must carry its version"
        return
    last = Version(RELEASES[-1][1:]) if RELEASES else Version("0.0.0")
    assert Version(headings[1]) == last  # the newest entry is the last release's
    assert version == f"{last.major}.{last.minor + 1}.0", "set it in tools/pyproject.toml"
