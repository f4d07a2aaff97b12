"""Every update, after the merge: relock uv.lock, with the team's edits to pyproject.toml back.

A `_tasks` lock would run before Copier replays the team's edits and miss a dependency they
added; services may also have come or gone. This never fails the update: a migration that exits
non-zero makes Copier stop with a traceback after it has merged the files and written the new
version into .copier-answers.yml, so `nox -s template_update` would never list the conflicts
and `nox -s template_check` would call the repo current. uv fails here when a pyproject.toml
holds conflict markers, when a removed service's folder still holds files the team added (no
pyproject.toml left), or without the package index. So a failed lock is one warning line after
uv's own error, and exit 0; `nox -s template_update` then checks the lock itself
(`uv lock --check`, after listing the conflicts) and exits non-zero while it is stale.
"""

import subprocess
import sys


def relock() -> str:
    """Run uv lock in the repo; return why it failed, or "" when it did not."""
    try:
        code = subprocess.run(["uv", "lock"], check=False).returncode
    except OSError as error:
        return f"cannot run uv: {error}"
    return f"uv lock exited {code}, its error is above" if code else ""


def main() -> None:
    why = relock()
    if why:
        print(
            f"warning: uv.lock not relocked ({why}): fix what uv names (conflict markers in a"
            " pyproject.toml, a removed service's folder holding your files), then run uv lock",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
