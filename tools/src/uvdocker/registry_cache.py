"""The registry cache of local builds, as docker-bake.hcl defines it for CI: one definition.

Each service reads `<image>:buildcache` (and `nox -s push` writes it, `mode=max`: every stage,
deps included). The refs and their options are docker-bake.hcl's `cache_from` and `cache_to`;
this module asks bake to evaluate them (`--print`, as CI's default branch would build) and hands
the build only those, as a Compose file: not CI's platforms or provenance.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from uvdocker.host import HostError

BAKE_FILES = ("compose.yaml", "docker-bake.hcl")


def under_registry(prefix: str) -> bool:
    """Whether an image prefix starts with a registry: a host with a dot or a port, or localhost."""
    first, _, rest = prefix.partition("/")
    return bool(rest and re.search(r"[.:]|^localhost$", first))


def wanted() -> bool:
    """Whether builds use the registry cache: images named under a registry, not turned off."""
    off = os.environ.get("REGISTRY_CACHE") == "off"
    return not off and under_registry(os.environ.get("IMAGE_PREFIX", ""))


def entry(spec: str | dict[str, str]) -> str:
    """A cache entry as Compose writes it (type=...,ref=...); bake prints objects or strings."""
    if isinstance(spec, str):
        return spec
    rest = [f"{key}={value}" for key, value in spec.items() if key != "type"]
    return ",".join([f"type={spec['type']}", *rest])


def refs(root: Path, buildx: str, write: bool) -> dict[str, dict[str, list[str]]]:
    """Service -> {"cache_from": [...], "cache_to": [...]}, from docker-bake.hcl."""
    cmd = [buildx, "bake", *(arg for name in BAKE_FILES for arg in ("-f", name)), "--print"]
    env = {**os.environ, "CACHE": "registry", "BRANCH": "", "CACHE_WRITE": str(write).lower()}
    try:
        out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise HostError(f"docker buildx bake --print failed: {error}") from error
    if out.returncode:
        reason = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise HostError(
            f"the registry cache refs come from docker-bake.hcl, and bake cannot read it "
            f"({reason.removeprefix('ERROR: ')}): fix it, or set REGISTRY_CACHE=off in .env"
        )
    found = {}
    for name, target in json.loads(out.stdout)["target"].items():
        found[name] = {"cache_from": [entry(spec) for spec in target.get("cache-from") or []]}
        if write:
            found[name]["cache_to"] = [entry(spec) for spec in target.get("cache-to") or []]
    return found


def compose_file(root: Path, buildx: str, write: bool, folder: Path) -> str:
    """A Compose file in `folder` with each service's registry cache; its path."""
    services = {name: {"build": build} for name, build in refs(root, buildx, write).items()}
    path = folder / "registry-cache.yaml"  # bake reads .json as its own format
    path.write_text(json.dumps({"services": services}))
    return str(path)
