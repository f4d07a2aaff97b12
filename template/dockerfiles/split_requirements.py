"""Split a service's exported requirements into its big packages and the rest.

    python split_requirements.py uv.lock requirements.txt OUT_DIR

Writes OUT_DIR/heavy.txt, the packages with a wheel of 1 MB or more (or no wheel to install:
they build from source), and OUT_DIR/light.txt, the rest. Each Dockerfile installs heavy.txt
in a layer of its own, so adding or bumping a small dependency rebuilds only the small layer
above it, and numpy, torch and the like stay cached. Run by the Dockerfiles' export stage.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

HEAVY_BYTES = 1_000_000


def is_heavy(package: dict) -> bool:
    """Whether a uv.lock package's biggest wheel has HEAVY_BYTES or more, or it has no wheel."""
    sizes = [wheel.get("size", HEAVY_BYTES) for wheel in package.get("wheels", [])]
    return max(sizes, default=HEAVY_BYTES) >= HEAVY_BYTES


def main(lock: str, requirements: str, out: str) -> None:
    packages = tomllib.loads(Path(lock).read_text())["package"]
    heavy = {package["name"] for package in packages if is_heavy(package)}
    # `uv export` writes a block per package: "name==version \" and its indented hash lines.
    text = Path(requirements).read_text()
    blocks = [block for block in re.split(r"\n(?=[^\s#])", text) if block.strip()]
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, wanted in (("heavy.txt", True), ("light.txt", False)):
        chosen = [b for b in blocks if (re.match(r"[\w.-]+", b)[0].lower() in heavy) is wanted]
        Path(out, name).write_text("".join(block.rstrip("\n") + "\n" for block in chosen))


if __name__ == "__main__":
    main(*sys.argv[1:])
