"""Lock the workspace after `copier copy` (a task) and after every `copier update` (a migration,
once the team's edits to pyproject.toml are back), and never fail either of them:

    relock.py          # copier update
    relock.py copy     # copier copy

A task or migration that exits non-zero makes Copier stop. On copy, Copier then deletes the
new folder with every answer the user typed; on update, it stops with a traceback after it has
merged the files and written the new version into .copier-answers.yml, so `nox -s
template_update` would never list the conflicts and `nox -s template_check` would call the repo
current. uv fails when no Python it may use is found, behind a proxy it cannot pass, offline,
when a pyproject.toml holds conflict markers, or when a removed service's folder still holds
files the team added (no pyproject.toml left). So a failed lock is one warning line after uv's
own error, naming what finishes the job, and exit 0: on copy, the repo and its answers stay;
on update, `nox -s template_update` then checks the lock itself (`uv lock --check`, after
listing the conflicts) and exits non-zero while it is stale.
"""

import os
import shlex
import subprocess
import sys


def relock() -> str:
    """Run uv lock in the repo; return why it failed, or "" when it did not."""
    try:
        code = subprocess.run(["uv", "lock"], check=False).returncode
    except OSError as error:
        return f"cannot run uv: {error}"
    return f"uv lock exited {code}, its error is above" if code else ""


def main(operation: str = "update") -> None:
    why = relock()
    if not why:
        return
    if operation == "copy":
        finish = f"cd {shlex.quote(os.getcwd())} && uv lock && uv run nox -s build"
        print(
            f"warning: uv.lock not written ({why}): the repo and your answers"
            f" (.copier-answers.yml) are in place; fix what uv names, then finish with: {finish}",
            file=sys.stderr,
        )
        return
    print(
        f"warning: uv.lock not relocked ({why}): fix what uv names (conflict markers in a"
        " pyproject.toml, a removed service's folder holding your files), then run uv lock",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(*sys.argv[1:2])
