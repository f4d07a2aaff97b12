"""0.4.0, before the merge: the old noxtools/ folder goes, unless the team edited it.

From 0.4.0 the sessions' code is the tooling package (uvdocker, pyproject.toml's dev group), and
noxfile.py no longer imports noxtools/. copier.yml excludes noxtools/, so Copier itself never
deletes it (it would delete edited files too): this script removes the folder, from the index
as well, when every file in it is exactly as 0.3.0 shipped it, and otherwise keeps it and says
so in one line, which `nox -s template_update` shows. Runs in the generated repo.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

FOLDER = Path("noxtools")
# sha256 of each file of noxtools/ as 0.3.0 shipped it (never rendered: the same in every repo).
RELEASED = {
    "__init__.py": "82f682451007e873caa52f4084c223f227cf0f364193d8f31b7a46c772e2b17c",
    "build.py": "e68718a86f3a58f36056625b16e77110a313f2cb718df1de16625c942c54230e",
    "cache.py": "85b851c9c1695d0e6e9480f22eeb0701c76dadcf69528361312bb1efca6ca6da",
    "cuda.py": "be5534383ee59eff85f64651f1929aeb3a55204e8e16cd9243d5a7e823fbbcf0",
    "host.py": "c86c591446518b8e929917d05d22071e5974d6c21dbe544ed79f5408f51e3b12",
    "report.py": "d6b7affea0bf71e72618747525febcf29bcea726850a1821d7a9d5e8bf3687e7",
    "template_update.py": "99bd16fdf6eedeb05ea511b799abbf2dec701c72013ab0fe2edf1fa163bed8a2",
}
KEPT = (
    "noxtools/ stays: you edited it, and from template 0.4.0 noxfile.py's sessions come from "
    "the uvdocker package instead (pyproject.toml's dev group): move your changes into a "
    "session of noxfile.py or a module of your own, then delete noxtools/"
)


def files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of each file in `folder`, Python's bytecode caches left out."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def main() -> None:
    if not FOLDER.is_dir():
        return
    if files(FOLDER) != RELEASED:
        print(KEPT, file=sys.stderr)
        return
    # From the index too: Copier diffs the index, and would put the files back otherwise.
    subprocess.run(["git", "rm", "-r", "--quiet", "--", str(FOLDER)], check=False)
    shutil.rmtree(FOLDER, ignore_errors=True)  # what git does not track: bytecode caches


if __name__ == "__main__":
    main()
