"""Split a service's locked packages by layer (big or small) and by the index each comes from.

    python split_requirements.py pylock.toml OUT_DIR PYPROJECT...

Reads `uv export --format pylock.toml`, which records each package's index, wheels and hashes as
uv.lock has them, and writes OUT_DIR/heavy/<index>.txt for the packages with a wheel of 1 MB or
more (or of unknown size, as PyTorch's indexes give none, or no wheel at all: they build from
source), OUT_DIR/light/<index>.txt for the rest. Each Dockerfile installs heavy/ in a layer of
its own, so adding or bumping a small dependency leaves torch and numpy cached; and each file
with `--no-deps` from its one index, so a package never comes from another index than the one
uv locked it from (an explicit index, PyTorch's, a private one).

Indexes are named as the [[tool.uv.index]] tables of the PYPROJECT files name them ("pypi" for
PyPI). UV_INDEX ("name=url name2=url2", uv's own setting) and UV_DEFAULT_INDEX, build args from
.env, replace an index's URL by name: a mirror, which must serve the locked files (their hashes
are checked). Run by the Dockerfiles' export stage.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

HEAVY_BYTES = 1_000_000
PYPI = "https://pypi.org/simple"


def indexes(pyprojects: list[str]) -> tuple[dict[str, str], str]:
    """Locked URL -> index name, from the [[tool.uv.index]] tables; and the default index's URL."""
    names, default = {PYPI: "pypi"}, PYPI
    for path in pyprojects:
        for index in (
            tomllib.loads(Path(path).read_text()).get("tool", {}).get("uv", {}).get("index", [])
        ):
            url = index["url"].rstrip("/")
            names[url] = index.get("name") or names.get(url) or url
            default = url if index.get("default") else default
    return names, default


def mirrors(names: dict[str, str], default: str, env: dict[str, str]) -> dict[str, str]:
    """Locked URL -> the URL to install from: UV_INDEX by name, UV_DEFAULT_INDEX for the default."""
    wanted = dict(
        entry.split("=", 1) for entry in (env.get("UV_INDEX") or "").split() if "=" in entry
    )
    chosen = {url: wanted.get(name, url) for url, name in names.items()}
    if env.get("UV_DEFAULT_INDEX"):
        chosen[default] = env["UV_DEFAULT_INDEX"]
    return chosen


def is_heavy(package: dict) -> bool:
    """Whether a package's biggest wheel has HEAVY_BYTES or more, or no known size, or no wheel."""
    sizes = [wheel.get("size", HEAVY_BYTES) for wheel in package.get("wheels", [])]
    return max(sizes, default=HEAVY_BYTES) >= HEAVY_BYTES


def requirement(package: dict) -> str:
    """One pinned requirement with every locked hash, as `uv pip install` reads it."""
    if "vcs" in package:  # a git source: uv pip installs the locked commit
        vcs = package["vcs"]
        return f"{package['name']} @ {vcs['type']}+{vcs['url']}@{vcs['commit-id']}\n"
    files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
    files += [package["archive"]] if "archive" in package else []
    hashes = sorted({f"{algo}:{value}" for f in files for algo, value in f["hashes"].items()})
    pin = f" @ {package['archive']['url']}" if "archive" in package else f"=={package['version']}"
    marker = f" ; {package['marker']}" if package.get("marker") else ""
    lines = [f"{package['name']}{pin}{marker}", *(f"--hash={h}" for h in hashes)]
    return " \\\n    ".join(lines) + "\n"


def main(pylock: str, out: str, *pyprojects: str) -> None:
    names, default = indexes(list(pyprojects))
    urls = mirrors(names, default, dict(os.environ))
    files: dict[tuple[str, str], list[dict]] = {}
    for package in tomllib.loads(Path(pylock).read_text()).get("packages", []):
        if "directory" in package:
            sys.exit(
                f"error: {package['name']} is locked from the folder "
                f"{package['directory']['path']}, which no image build can see: make it a "
                "workspace member, or publish it to an index"
            )
        locked = package.get("index", "").rstrip("/")
        # Direct references (a git commit, an archive URL) install with no index at all.
        name = re.sub(r"[^A-Za-z0-9._-]", "-", names.get(locked, locked)) if locked else "direct"
        layer = "heavy" if locked and is_heavy(package) else "light"
        files.setdefault((layer, name), []).append({**package, "url": urls.get(locked, locked)})
    for layer in ("heavy", "light"):
        Path(out, layer).mkdir(parents=True, exist_ok=True)
    for (layer, name), packages in sorted(files.items()):
        url = packages[0]["url"]
        pins = [p["name"] + (f"=={p['version']}" if "version" in p else "") for p in packages]
        shown = ", ".join(pins[:3]) + (f" and {len(pins) - 3} more" if len(pins) > 3 else "")
        source = f"index {name} ({url})" if url else "their locked URLs"
        # The first line is what the install step says when this file fails.
        head = f"# {shown} from {source}\n" + (f"--index-url {url}\n" if url else "--no-index\n")
        Path(out, layer, f"{name}.txt").write_text(head + "".join(map(requirement, packages)))


if __name__ == "__main__":
    main(*sys.argv[1:])
