"""`nox -s template_check` on `copier check-update`; `nox -s template_update` and what it left."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

from uvdocker import process
from uvdocker.rules import problem

ANSWERS = ".copier-answers.yml"
_SHORT = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}  # as Copier expands them
# The answers' own keys Copier writes; any other `_` key is Copier's to set, never data.
_OWN = ("_src_path", "_commit")
# An answers file holds some dozens of values; YAML aliases can make a few hundred bytes expand
# to billions, which Copier and the validators would turn into strings.
MAX_VALUES = 10_000
MAX_BYTES = 1_000_000
CONFIRM = "--template-source"
_MARKER = re.compile(rb"^<<<<<<<(?: |$)", re.MULTILINE)
_STDERR = partial(print, file=sys.stderr)
# What puts the repo back to its last commit when an update stopped half-way: copier update runs
# on a clean tree only, so every change in it is the update's, and ignored files (.env) are not
# touched. The half-done update stays in the stash (`git stash drop` deletes it).
UNDO = "git stash --include-untracked"
Out = Callable[[str], None]


def changelog(src: str, current: str, latest: str, root: Path) -> dict[Version, str]:
    """The releases after `current`: `## X.Y.Z` sections of the CHANGELOG.md at tag v<latest>."""
    for short, url in _SHORT.items():
        src = url + src.removeprefix(short) if src.startswith(short) else src
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["git", "clone", "-q", "--depth=1", "-b", f"v{latest}", src.removeprefix("git+"), tmp]
        subprocess.run(cmd, cwd=root, capture_output=True)
        path = Path(tmp, "CHANGELOG.md")
        text = path.read_text(errors="replace") if path.is_file() else ""
    found = {}
    for section in re.split(r"^(?=## )", text, flags=re.MULTILINE)[1:]:
        try:
            version = Version(section.split()[1])
        except InvalidVersion:
            continue  # "## Unreleased"
        if Version(current) < version <= Version(latest) and not version.is_prerelease:
            found[version] = section.strip()
    return found


def _quiet(line: str) -> None:
    """Where the commands run are logged when no session logs them."""


def tools_url(src: str) -> str:
    """The git URL of a template address as copier.yml's tools_git makes it (gh:, gl: and git+
    as Copier expands them, scp-like as ssh://, an absolute path as file://); "" for none."""
    if src[:3] in _SHORT:
        url = _SHORT[src[:3]] + src[3:].lstrip("/")
        return url if url.endswith(".git") else url + ".git"
    if src.startswith("git+"):
        return src[4:]
    if re.match(r"^[a-z][a-z0-9+.-]*://", src):
        return src
    if re.match(r"^[^/@:]+@[^/:]+:", src):
        return re.sub(r"^([^/@:]+@[^/:]+):/?", r"ssh://\1/", src)
    return f"file://{src}" if src.startswith("/") else ""


def tooling_source(root: Path) -> str:
    """Where pyproject.toml takes the tooling from, as a URL (its git source, or file:// for a
    folder); "" when it names none (a wheel index, say)."""
    try:
        sources = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
        source = sources["copier-uv-docker-tools"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if isinstance(source, dict) and isinstance(source.get("git"), str):
        return source["git"]
    if isinstance(source, dict) and isinstance(source.get("path"), str):
        return "file://" + source["path"].removesuffix("/tools")
    return ""


def _values(node: yaml.Node) -> int:
    """How many values a composed YAML document expands to, each alias counted as often as it
    is used; MAX_VALUES + 1 as soon as it is more (a recursive alias too)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        if id(current) in sizes and not done:
            continue
        children = (
            [part for pair in current.value for part in pair]
            if isinstance(current, yaml.MappingNode)
            else current.value
            if isinstance(current, yaml.SequenceNode)
            else []
        )
        if done:
            total = 1 + sum(sizes.get(id(child), MAX_VALUES + 1) for child in children)
            sizes[id(current)] = min(total, MAX_VALUES + 1)
            continue
        sizes[id(current)] = MAX_VALUES + 1  # until it is known: a cycle stays too big
        stack.append((current, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(node)]


def load_answers(path: Path, own: Sequence[str] = ()) -> tuple[dict, str]:
    """The answers (or data) of a YAML file, and why it is refused ("" when it is not): too big,
    not YAML, not a mapping of names, aliases expanding past MAX_VALUES, or a `_` key other than
    `own` (Copier's own: it would pass them into its render context, or crash on them)."""
    name = path.name
    try:
        text = path.read_bytes()
    except OSError as error:
        return {}, f"{name} cannot be read ({error.strerror})"
    if len(text) > MAX_BYTES:
        return {}, f"{name} is larger than {MAX_BYTES // 1000} kB, which no answers file is"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _values(node) > MAX_VALUES:
            return {}, f"{name} expands to more than {MAX_VALUES} values (YAML aliases)"
        data = yaml.safe_load(text) if node is not None else {}
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as error:
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        return {}, f"{name} is not a YAML mapping of answers ({why})"
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        return {}, f"{name} is not a YAML mapping of answers"
    hidden = [key for key in data if key.startswith("_") and key not in own]
    if hidden:
        return {}, f"{name} holds {hidden[0][:40]!r}: keys starting with _ are Copier's own"
    return data, ""


def check(root: Path, out: Out = print, err: Out = _STDERR, *, log: Out = _quiet) -> int:
    """Say whether a newer template version exists: 0 current, 1 behind, 2 cannot tell."""
    path = root / ANSWERS
    answers = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    cmd = [sys.executable, "-m", "copier", "check-update", "--output-format", "json"]
    log(" ".join(cmd))
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    try:  # {"update_available": bool, "current_version": "0.2.0", "latest_version": "0.3.0"}
        state = json.loads(proc.stdout.strip().rpartition("\n")[2])
    except ValueError:
        why = proc.stderr.strip().rpartition("\n")[2].strip() or f"copier exited {proc.returncode}"
        err(f"template_check: cannot compare with {answers.get('_src_path')}: {why}")
        return 2
    commit, current, latest = answers["_commit"], state["current_version"], state["latest_version"]
    if not state["update_available"]:
        out(f"Up to date: this repo is on template version {commit} (newest: v{latest}).")
        return 0
    found = changelog(str(answers["_src_path"]), current, latest, root)
    newer = [f"v{version}" for version in sorted({*found, Version(latest)})]
    out(f"Behind: this repo is on template version {commit}; newer: {', '.join(newer)}.")
    if found:
        out("\nWhat they change (the template's CHANGELOG):\n\n" + "\n\n".join(found.values()))
    out(
        f"\nUpdate with `nox -s template_update` (to {newer[-1]}), "
        f"or one step at a time with `nox -s template_update -- --vcs-ref {newer[0]}`."
    )
    return 1


def update_command(python: str, args: Sequence[str], data_file: str) -> list[str]:
    """`copier update` as template_update runs it; `args` are passed on (they may override).

    The stored answers go in as data (`data_file`, without Copier's own `_` keys), so the new
    version's validators check them: with --defaults alone, Copier silently replaces an answer
    they refuse with its default.
    """
    conflict = [] if any(a.startswith("--conflict") for a in args) else ["--conflict", "inline"]
    data = ["--data-file", data_file, "--defaults"]
    return [python, "-m", "copier", "update", "--trust", *data, *conflict, *args]


def _option(args: list[str], i: int, names: tuple[str, ...]) -> tuple[str, int] | None:
    """The value of option `names` at args[i] (`-d X`, `-dX`, `--data X`, `--data=X`) and how
    many arguments it takes, or None when args[i] is not that option."""
    arg = args[i]
    for name in names:
        if arg == name:
            return (args[i + 1] if i + 1 < len(args) else ""), 2
        glued = f"{name}=" if name.startswith("--") else name
        if arg.startswith(glued) and arg != glued.rstrip("="):
            return arg[len(glued) :], 1
    return None


def plan(root: Path, args: Sequence[str]) -> tuple[dict, list[str], str, str]:
    """What template_update runs, from the stored answers and the arguments: (the data for
    Copier, the arguments it passes on, the template source, why it is refused or "").

    The template is the one `_src_path` names, and runs only when it is the repository
    pyproject.toml takes the tooling from (the code the repo already runs: `copier copy` derived
    both from one address, and `copier update` keeps them together), or when the user confirms
    exactly that address with --template-source. Copier's own `_` keys never pass as data: not
    from the answers file, -d or --data-file.
    """
    answers, why = load_answers(root / ANSWERS, own=_OWN)
    if why:
        return {}, [], "", why
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    rest, confirmed, i, args = [], "", 0, list(args)
    while i < len(args):
        if found := _option(args, i, (CONFIRM,)):
            confirmed, i = found[0], i + found[1]
        elif found := _option(args, i, ("-a", "--answers-file")):
            return {}, [], "", f"template_update updates {ANSWERS} only, not {found[0]!r}"
        elif found := _option(args, i, ("--data-file",)):
            extra, why = load_answers(root / found[0])
            if why:
                return {}, [], "", why
            data, i = {**data, **extra}, i + found[1]
        else:
            found = _option(args, i, ("-d", "--data"))
            if found and found[0].startswith("_"):
                key = found[0].partition("=")[0][:40]
                return {}, [], "", f"-d {key}: keys starting with _ are Copier's own, never data"
            step = found[1] if found else 1
            rest, i = rest + args[i : i + step], i + step
    src = answers.get("_src_path")
    if not isinstance(src, str) or not src:
        return {}, [], "", f"{ANSWERS} names no template (_src_path): run copier update yourself"
    if problem(src, "text"):
        return (
            {},
            [],
            "",
            f"{ANSWERS} names a template address with control or invisible characters",
        )
    made_from = tooling_source(root)
    if confirmed == src or (made_from and tools_url(src) == made_from):
        return data, rest, src, ""
    if confirmed:
        return {}, [], src, f"{CONFIRM} {confirmed} is not the template {ANSWERS} names ({src})"
    source = f"comes from {made_from}" if made_from else "names no git source"
    why = (
        f"{ANSWERS} names the template {src}, but the tooling in pyproject.toml {source}: if "
        f"{src} is the template you mean to run, with its tasks, rerun with -- {CONFIRM} {src}"
    )
    return {}, [], src, why


def listing(out: Out, title: str, paths: list[str]) -> None:
    """Print a titled list of paths, one a line, unless it is empty."""
    if paths:
        out(f"{title}:\n" + "".join(f"  {path}\n" for path in paths))


def report(root: Path, out: Out = print, errors: Sequence[str] = ()) -> str:
    """List what an update left in the tree (clean before it); return the error line, if any."""
    cmd = ["git", "status", "-z", "--no-renames", "--untracked-files=all", "--ignored=matching"]
    status = subprocess.run(cmd, cwd=root, capture_output=True, check=True).stdout.decode()
    entries = [(entry[:2], entry[3:]) for entry in status.split("\0") if entry]
    changed = [path for code, path in entries if code != "!!"]
    gone = [path for path in changed if not (root / path).exists()]
    listing(out, "Removed by the update (`git checkout HEAD -- PATH` brings one back)", gone)
    conflicts = [
        p for p in changed if (root / p).is_file() and _MARKER.search((root / p).read_bytes())
    ]
    conflicts += [path for _, path in entries if path.endswith(".rej")]
    listing(out, "Conflicts: resolve the <<<<<<< markers or each .rej, then commit", conflicts)
    for folder in sorted(root.glob("services/*")):
        if folder.is_dir() and not (folder / "pyproject.toml").exists():
            out(
                f"services/{folder.name}: a removed service's folder holds your files, so uv cannot"
                " lock the workspace: move them elsewhere, delete the folder, then run uv lock"
            )
    if (root / "noxtools").is_dir():  # see the template's migrations/v0_4_0_noxtools.py
        out(
            "noxtools/: the tooling before template 0.4.0, kept as you edited it, is no longer"
            " used (the sessions come from the uvdocker package): move your changes into"
            " noxfile.py, then delete it"
        )
    errors = list(errors)
    if conflicts:
        errors.append(f"{len(conflicts)} file(s) with update conflicts: {', '.join(conflicts)}")
    try:  # the relock migration warns instead of failing the update: see migrations/relock.py
        stale = subprocess.run(["uv", "lock", "--check"], cwd=root, capture_output=True).returncode
    except OSError as error:
        stale = error
    if stale:
        errors.append("uv.lock not relocked (uv lock --check fails): fix the above, run uv lock")
    if not errors:
        out(f"Updated without conflicts: {len(changed)} paths changed; review and commit.")
    return "; ".join(errors)


def update(
    root: Path,
    args: Sequence[str],
    out: Out = print,
    python: str = sys.executable,
    *,
    log: Out = _quiet,
) -> str:
    """Run copier update on the template plan() allows, then report() what it left, even if
    it failed after writing.

    Copier, and the migrations it runs, never outlive the session: process.Interrupted when a
    signal stopped them, with the repo as they left it (UNDO puts it back)."""
    data, rest, src, why = plan(root, args)
    if why:
        return f"{why} (nothing was run)"
    out(f"Template: {src}")
    answers = root / ANSWERS
    before = answers.read_bytes() if answers.is_file() else b""
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp, "answers.yml")
        # ASCII, escapes and all: a surrogate reaches the validators, which refuse it.
        data_file.write_text(yaml.safe_dump(data, sort_keys=False))
        cmd = update_command(python, rest, str(data_file))
        log(" ".join(cmd))
        with process.group(cmd, cwd=root, stderr=subprocess.PIPE, text=True) as proc:
            stderr = proc.communicate()[1]
    refused = re.search(r"Validation error for question .*", stderr)
    if stderr.strip() and not refused:  # a refused answer is said in one line, below
        _STDERR(stderr.rstrip())
    if proc.returncode and (answers.read_bytes() if answers.is_file() else b"") == before:
        if refused:  # a stored answer the new version refuses: say which, change nothing
            return f"{refused[0]}: give a new value with -- -d KEY=VALUE (nothing was changed)"
        return (
            f"copier update exited {proc.returncode} before changing the repo (its error is above)"
        )
    code = proc.returncode
    return report(root, out, [f"copier update exited {code} (see above)"] if code else [])
