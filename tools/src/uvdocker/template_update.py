"""`nox -s template_check` on `copier check-update`; `nox -s template_update` and what it left."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

from uvdocker import process

ANSWERS = ".copier-answers.yml"
_SHORT = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}  # as Copier expands them
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


def update_command(python: str, args: Sequence[str]) -> list[str]:
    """`copier update` as template_update runs it; `args` are passed on (they may override).

    The stored answers go in as data, so the new version's validators check them: with
    --defaults alone, Copier silently replaces an answer they refuse with its default.
    """
    conflict = [] if any(a.startswith("--conflict") for a in args) else ["--conflict", "inline"]
    data = ["--data-file", ANSWERS, "--defaults"]
    return [python, "-m", "copier", "update", "--trust", *data, *conflict, *args]


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
    """Run copier update, then report() what it left, even if it failed after writing.

    Copier, and the migrations it runs, never outlive the session: process.Interrupted when a
    signal stopped them, with the repo as they left it (UNDO puts it back)."""
    answers = root / ANSWERS
    before = answers.read_bytes() if answers.is_file() else b""
    cmd = update_command(python, args)
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
