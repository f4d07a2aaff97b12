#!/usr/bin/env python3
"""Render the template: the one helper the nox sessions and the tests use.

    python scripts/render.py DEST [key=value ...]

Values are YAML (so services=[...] and gpu=true work); unanswered questions take their defaults.
It renders the working tree (uncommitted changes included), not the newest tag, from a commit
of it in build/snapshot: a rendered repo's pyproject.toml takes the tooling package from there.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent
# Answers that build on a machine with no registry: Debian's Python and no frontend pull.
OFFLINE_ANSWERS = {"python_version": "3.11", "dockerfile_syntax": ""}
# The host's CA bundle: what builds behind a TLS-intercepting proxy need as their secret.
HOST_CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


def parse_answers(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs, values parsed as YAML; strings stay strings where YAML would guess."""
    answers: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"render: {pair!r} is not key=value, e.g. python_version=3.11")
        parsed = yaml.safe_load(value) if value else ""
        answers[key] = parsed if isinstance(parsed, (list, dict, bool, int)) else value
    return answers


def snapshot(template: Path = TEMPLATE) -> Path:
    """A git repository in build/snapshot whose HEAD commit is the working tree of `template`,
    uncommitted and untracked files included (ignored ones not); its path.

    Copier renders a dirty tree through a commit of its own, in a clone it deletes: a rendered
    repo's pyproject.toml would then pin the tooling package to a commit uv cannot fetch. This
    one stays (each new state of the tree is a commit on top), so `uv lock` and `uv run` in
    rendered repos find it as long as build/ is there. Its own work tree is checked out, so that
    Copier finds it clean. A lock file serializes concurrent runs.
    """
    dest = template / "build" / "snapshot"
    dest.mkdir(parents=True, exist_ok=True)
    git = ["git", f"--git-dir={dest / '.git'}", f"--work-tree={template}"]
    ident = {"GIT_AUTHOR_NAME": "render", "GIT_AUTHOR_EMAIL": "render@localhost"}
    env = {**os.environ, **ident, "GIT_COMMITTER_NAME": "render"}
    env["GIT_COMMITTER_EMAIL"] = "render@localhost"

    def out(*args: str) -> str:
        done = subprocess.run([*git, *args], env=env, capture_output=True, text=True)
        if done.returncode and args[0] != "rev-parse":
            raise SystemExit(f"render: git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip() if not done.returncode else ""

    with (dest.parent / "snapshot.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / ".git").is_dir():
            subprocess.run(["git", "init", "--quiet", str(dest)], check=True)
        out("add", "--all")
        tree, head = out("write-tree"), out("rev-parse", "--verify", "--quiet", "HEAD")
        if not head or out("rev-parse", f"{head}^{{tree}}") != tree:
            parent = ["-p", head] if head else []
            commit = out("commit-tree", tree, *parent, "-m", f"The working tree of {template}")
            out("update-ref", "HEAD", commit)
            # Its own work tree too, so that Copier finds a clean repository: files the new
            # commit deleted or renamed are untracked there now, and go.
            subprocess.run(["git", "-C", str(dest), "reset", "--hard", "--quiet"], check=True)
            subprocess.run(["git", "-C", str(dest), "clean", "-fdq"], check=True)
    return dest


def render(
    dest: Path,
    answers: dict[str, Any] | None = None,
    *,
    vcs_ref: str = "HEAD",
    template: Path | None = None,
    quiet: bool = True,
    skip_tasks: bool = False,
) -> Path:
    """Copy the template into `dest` with `answers` (defaults for the rest); return `dest`.

    `template` defaults to a snapshot() of this working tree at HEAD, to this repository at
    any other `vcs_ref` (a commit); a git repository given instead (a clone with release tags)
    is rendered at `vcs_ref` as it is.
    """
    if template is None:
        template = snapshot() if vcs_ref == "HEAD" else TEMPLATE
    from copier import run_copy
    from plumbum import local  # copier runs its tasks in plumbum's copy of the environment

    # The template's task runs uv: the one installed beside this Python comes first.
    path = os.pathsep.join([str(Path(sys.executable).parent), local.env.get("PATH", "")])
    with local.env(PATH=path):
        run_copy(
            str(template),
            str(dest),
            data=answers or {},
            defaults=True,
            unsafe=True,
            vcs_ref=vcs_ref,
            quiet=quiet,
            overwrite=True,
            skip_tasks=skip_tasks,
        )
    return dest


def write_env(repo: Path, ca_bundle: Path | None, **extra: str) -> None:
    """A rendered repo's .env: its .env.example with CA_BUNDLE set (when given) and `extra`,
    each in place of the line that sets it, if any (a key set twice is refused)."""
    text = (repo / ".env.example").read_text()
    settings = {"CA_BUNDLE": str(ca_bundle)} if ca_bundle else {}
    for key, value in {**settings, **extra}.items():
        line = f"{key}={value}"
        text, found = re.subn(rf"^{key}=.*$", lambda _, line=line: line, text, flags=re.M)
        text += "" if found else f"{line}\n"
    (repo / ".env").write_text(text)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    render(Path(sys.argv[1]), parse_answers(sys.argv[2:]), quiet=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
