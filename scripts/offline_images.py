#!/usr/bin/env python3
"""Build local stand-ins for every base image a rendered repo names, for air-gapped machines.

    python scripts/offline_images.py path/to/rendered-repo [--dry-run]

It reads the `ARG *_IMAGE=` defaults of each services/*/Dockerfile and, for every image the
engine does not already have, builds a stand-in under that exact name:
- python:X.Y-*      a Debian bookworm rootfs (debootstrap) with Debian's python3 and python3-venv
                    and /usr/local/bin/python; refused unless Debian's Python is X.Y, so no
                    image ever claims a Python version it does not have.
- .../astral-sh/uv:V  static /uv and /uvx from the uv V musllinux wheel on PyPI (FROM scratch,
                    as upstream).
- nvidia/cuda:*     the same Debian rootfs without Python and without CUDA libraries: enough to
                    build GPU services, not to run CUDA code. Labelled as a stand-in.
Needs root (debootstrap), a Docker Engine, and Debian's mirror and PyPI (or a pip cache).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import docker

SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "copier-uv-docker"
ARG_IMAGE = re.compile(r"^ARG (\w+_IMAGE)=(\S+)\s*$", re.MULTILINE)
STAND_IN_LABEL = "org.copier-uv-docker.stand-in"
BASE_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StandInError(RuntimeError):
    """A stand-in cannot be built; the message says why and what to do."""


def base_images(repo: Path) -> list[str]:
    """Every `ARG *_IMAGE=` default in the repo's service Dockerfiles, in order, once each."""
    images: list[str] = []
    for dockerfile in sorted(repo.glob("services/*/Dockerfile")):
        for _, image in ARG_IMAGE.findall(dockerfile.read_text()):
            if image not in images:
                images.append(image)
    if not images:
        raise StandInError(f"no services/*/Dockerfile with ARG *_IMAGE= under {repo}")
    return images


def kind_of(image: str) -> str:
    """python, uv or cuda, from the image name with any mirror prefix."""
    name = image.rsplit(":", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if name.endswith("astral-sh/uv"):
        return "uv"
    if name.endswith("nvidia/cuda"):
        return "cuda"
    if last == "python":
        return "python"
    raise StandInError(f"no stand-in recipe for {image}: pull or load it by hand")


def run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing loudly."""
    return subprocess.run(cmd, check=True, **kwargs)


def rootfs(with_python: bool) -> Path:
    """A cached tarball of a minimal Debian rootfs; the Python one is made from the plain one."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"debian-{SUITE}{'-python' if with_python else ''}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "rootfs"
        if with_python:
            root.mkdir()
            run("tar", "-C", str(root), "-xf", str(rootfs(with_python=False)))
            run("chroot", str(root), "apt-get", "update", "-qq", stdout=subprocess.DEVNULL)
            run(
                "chroot",
                str(root),
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "python3",
                "python3-venv",
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                stdout=subprocess.DEVNULL,
            )
            (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        else:
            if shutil.which("debootstrap") is None:
                raise StandInError("debootstrap not found: apt-get install debootstrap (as root)")
            print(f"debootstrap {SUITE} from {DEBIAN_MIRROR} (a minute or two)", flush=True)
            run(
                "debootstrap",
                "--variant=minbase",
                SUITE,
                str(root),
                DEBIAN_MIRROR,
                stdout=subprocess.DEVNULL,
            )
            # As in Docker's official Debian images, which the Dockerfiles expect to undo.
            (root / "etc/apt/apt.conf.d/docker-clean").write_text(
                'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
            )
        run("chroot", str(root), "apt-get", "clean")
        for lists in (root / "var/lib/apt/lists").glob("*"):
            if lists.is_file():
                lists.unlink()
        partial = tarball.with_suffix(".partial")
        run("tar", "-C", str(root), "-cf", str(partial), ".")
        partial.rename(tarball)
    return tarball


def debian_python_version() -> str:
    """The X.Y of the python3 in the cached Debian rootfs."""
    with tarfile.open(rootfs(with_python=True)) as tar:
        for member in tar.getnames():
            found = re.fullmatch(r"\./usr/bin/python(3\.\d+)", member)
            if found:
                return found.group(1)
    raise StandInError("the Debian rootfs has no python3")


def import_rootfs(client: docker.DockerClient, image: str, tarball: Path, changes: list[str]):
    """docker import a rootfs tarball under `image`."""
    repository, tag = image.rsplit(":", 1)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)


def build_python(client: docker.DockerClient, image: str) -> None:
    """A python:X.Y-* stand-in, refused unless Debian's Python is X.Y."""
    wanted = re.match(r"(\d+\.\d+)", image.rsplit(":", 1)[1])
    have = debian_python_version()
    if not wanted or wanted.group(1) != have:
        raise StandInError(
            f"{image}: Debian {SUITE} ships Python {have}, and a stand-in never claims another "
            f"version; render with python_version={have}, or pull or load the real image"
        )
    import_rootfs(
        client,
        image,
        rootfs(with_python=True),
        [
            f"ENV {BASE_ENV}",
            "ENV LANG=C.UTF-8",
            f'LABEL {STAND_IN_LABEL}="debian-{SUITE}"',
            'CMD ["python3"]',
        ],
    )


def build_cuda(client: docker.DockerClient, image: str) -> None:
    """An nvidia/cuda stand-in: Debian without CUDA libraries, enough to build, not to compute."""
    version = image.rsplit(":", 1)[1].split("-", 1)[0]
    import_rootfs(
        client,
        image,
        rootfs(with_python=False),
        [
            f"ENV {BASE_ENV}",
            f"ENV CUDA_VERSION={version}",
            "ENV NVIDIA_VISIBLE_DEVICES=all",
            f'LABEL {STAND_IN_LABEL}="debian-{SUITE}, no CUDA libraries"',
            'CMD ["bash"]',
        ],
    )


def fetch_uv_wheel(version: str, dest: Path) -> Path:
    """The static (musl) x86_64 uv wheel of `version`, from the package index, hash-checked."""
    index = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("PIP_INDEX_URL")
    index = (index or "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(
        f"{index}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    wanted = f"uv-{version}-py3-none-musllinux_1_1_x86_64.whl"
    entry = next((f for f in files if f["filename"] == wanted), None)
    if entry is None:
        raise StandInError(f"{wanted} is not on {index}: is uv {version} released?")
    with urllib.request.urlopen(
        urllib.parse.urljoin(f"{index}/uv/", entry["url"]), timeout=300
    ) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != entry["hashes"]["sha256"]:
        raise StandInError(f"{wanted}: sha256 does not match the index")
    wheel = dest / wanted
    wheel.write_bytes(data)
    return wheel


def build_uv(client: docker.DockerClient, image: str) -> None:
    """The uv image from the uv wheel of the same version: static /uv and /uvx, FROM scratch."""
    version = image.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_uv_wheel(version, Path(tmp))
        buffer = io.BytesIO()
        with zipfile.ZipFile(wheel) as whl, tarfile.open(fileobj=buffer, mode="w") as tar:
            for binary in ("uv", "uvx"):
                data = whl.read(f"uv-{version}.data/scripts/{binary}")
                info = tarfile.TarInfo(binary)
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
        repository, tag = image.rsplit(":", 1)
        client.api.import_image_from_data(
            buffer.getvalue(),
            repository=repository,
            tag=tag,
            changes=['ENTRYPOINT ["/uv"]', f'LABEL {STAND_IN_LABEL}="uv {version} wheel"'],
        )


BUILDERS = {"python": build_python, "uv": build_uv, "cuda": build_cuda}


def ensure(repo: Path, dry_run: bool = False) -> list[str]:
    """Build a stand-in for each missing base image of `repo`; return the images built."""
    client = docker.from_env()
    built = []
    for image in base_images(repo):
        try:
            client.images.get(image)
            print(f"present  {image}")
            continue
        except docker.errors.ImageNotFound:
            pass
        kind = kind_of(image)
        print(f"{'would build' if dry_run else 'building'} {kind} stand-in {image}", flush=True)
        if not dry_run:
            BUILDERS[kind](client, image)
            built.append(image)
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a repo rendered from this template")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be built")
    args = parser.parse_args()
    try:
        ensure(args.repo, args.dry_run)
    except (StandInError, docker.errors.DockerException, subprocess.CalledProcessError) as error:
        print(f"offline_images: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
