"""Every update, after the merge: relock uv.lock, with the team's edits to pyproject.toml back.

A `_tasks` lock would run before Copier replays the team's edits and miss a dependency they
added; services may also have come or gone. A removed service's folder that still holds files
the team added has no pyproject.toml, and uv refuses such a workspace: then say so and leave
uv.lock as it was (`nox -s template_update` flags the folder).
"""

import subprocess
import sys
from pathlib import Path


def main() -> int:
    left = [p.as_posix() for p in sorted(Path("services").glob("*")) if p.is_dir()]
    left = [path for path in left if not Path(path, "pyproject.toml").is_file()]
    if left:
        print(
            f"uv lock skipped: no pyproject.toml in {', '.join(left)} (a removed service,"
            " holding files you added): move them, delete the folder, then run uv lock",
            file=sys.stderr,
        )
        return 0
    return subprocess.run(["uv", "lock"], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
