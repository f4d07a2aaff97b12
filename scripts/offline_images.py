#!/usr/bin/env python3
"""Build local stand-ins for every base image a rendered repo names, for air-gapped machines.

    python scripts/offline_images.py path/to/rendered-repo [--platform linux/arm64] [--push]
                                                           [--buildkit [DIR]] [--dry-run]

It reads the `ARG *_IMAGE=` defaults of each services/*/Dockerfile and, for every image the
engine does not already have, builds a stand-in under that exact name:
- python:X.Y-*      a Debian bookworm rootfs (debootstrap) with Debian's python3 and python3-venv
                    and /usr/local/bin/python; refused unless Debian's Python is X.Y, so no
                    image ever claims a Python version it does not have.
- .../astral-sh/uv:V  static /uv and /uvx from the uv V musllinux wheel on PyPI (FROM scratch,
                    as upstream).
- nvidia/cuda:*     the same Debian rootfs without Python and without CUDA libraries: enough to
                    build GPU services, not to run CUDA code. Labelled as a stand-in.
- moby/buildkit:vX.Y.Z  with --buildkit (the builder image the rendered CI files name): buildkitd
                    (the entrypoint) and buildctl from a BuildKit release archive checked against
                    its SHA256SUMS (../shared/buildkit by default), on the Debian rootfs with
                    Debian's runc (and libseccomp2) and CA certificates; refused unless the archive
                    is vX.Y.Z. For tests: it is never pushed.
A stand-in holds this machine's platform, and with --platform linux/arm64 (or linux/amd64) the
other one too: one image index, each arch's rootfs bootstrapped by its own Debian packages (a
foreign arch's package scripts run under qemu) and each arch's uv wheel. It is written as an
OCI archive and `docker load`ed, without timestamps, so the same rootfs gives the same digest.
--push pushes them to the registry their names start with, when it is on 127.0.0.1 (render
with image_mirror=127.0.0.1:PORT/). Rootfs tarballs are cached in ~/.cache/copier-uv-docker.
Needs root (debootstrap), a Docker Engine (the containerd image store for several platforms),
and Debian's mirror and PyPI.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

import docker

SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "copier-uv-docker"
ARG_IMAGE = re.compile(r"^ARG (\w+_IMAGE)=(\S+)\s*$", re.MULTILINE)
STAND_IN_LABEL = "org.copier-uv-docker.stand-in"
# Docker and Debian name these arches alike; uname -m (and the uv wheels) another way.
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}
LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BASE_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Debian packages each rootfs flavor adds to the minimal one.
FLAVORS = {"": (), "python": ("python3", "python3-venv"), "runc": ("runc", "ca-certificates")}
# BuildKit's release archives (bin/buildkitd, bin/buildctl), as the shared folder holds them.
BUILDKIT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "buildkit"
BUILDKIT_ARCHIVE = re.compile(r"^buildkit-(v\d+\.\d+\.\d+)\.linux-(\w+)\.tar\.gz$")
# The builder image of the rendered CI files (a digest after it is left off: no local image has it).
BUILDKIT_REF = re.compile(r"(?<![\w./:-])moby/buildkit:[\w.-]+")
CI_FILES = (".github/workflows/images.yml", ".gitlab-ci.yml")
BUILDKIT_BINS = ("buildkitd", "buildctl")


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


def builder_image(repo: Path) -> str:
    """The moby/buildkit image the repo's CI files run their docker-container builder from."""
    for name in CI_FILES:
        path = repo / name
        found = BUILDKIT_REF.search(path.read_text()) if path.is_file() else None
        if found:
            return found[0]
    raise StandInError(f"no moby/buildkit:TAG in {' or '.join(CI_FILES)} under {repo}")


def kind_of(image: str) -> str:
    """python, uv, cuda or buildkit, from the image name with any mirror prefix."""
    name = image.rsplit(":", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if name.endswith("astral-sh/uv"):
        return "uv"
    if name.endswith("moby/buildkit"):
        return "buildkit"
    if name.endswith("nvidia/cuda"):
        return "cuda"
    if last == "python":
        return "python"
    raise StandInError(f"no stand-in recipe for {image}: pull or load it by hand")


def run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing loudly."""
    return subprocess.run(cmd, check=True, **kwargs)


def emulated(arch: str) -> bool:
    """True when `arch` is not this machine's, so its binaries run under qemu (binfmt_misc)."""
    return UNAME[arch] != platform.machine()


def check_emulation(arch: str) -> None:
    """Refuse a foreign arch whose binaries the kernel cannot run: say how to set it up."""
    entry = Path(f"/proc/sys/fs/binfmt_misc/qemu-{UNAME[arch]}")
    if emulated(arch) and not (entry.is_file() and entry.read_text().startswith("enabled")):
        raise StandInError(
            f"{arch} binaries cannot run here: install qemu-user-static and binfmt-support and "
            f"register qemu-{UNAME[arch]} (bash scripts/setup-host.sh does both)"
        )


def rootfs(flavor: str, arch: str) -> Path:
    """A cached tarball of a minimal Debian rootfs for `arch`, with the packages of `flavor`
    (FLAVORS), made from the plain one. A foreign arch is bootstrapped the same way, its package
    scripts run by qemu."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"debian-{SUITE}-{arch}{'-' if flavor else ''}{flavor}.tar"
    if tarball.exists():
        return tarball
    check_emulation(arch)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "rootfs"
        if flavor:
            root.mkdir()
            run("tar", "-C", str(root), "-xf", str(rootfs("", arch)))
            run("chroot", str(root), "apt-get", "update", "-qq", stdout=subprocess.DEVNULL)
            run(
                "chroot",
                str(root),
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                *FLAVORS[flavor],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                stdout=subprocess.DEVNULL,
            )
            if flavor == "python":
                (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        else:
            if shutil.which("debootstrap") is None:
                raise StandInError("debootstrap not found: apt-get install debootstrap (as root)")
            slow = " under emulation (minutes)" if emulated(arch) else " (a minute or two)"
            print(f"debootstrap {SUITE} {arch} from {DEBIAN_MIRROR}{slow}", flush=True)
            run(
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
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


def debian_python_version(arch: str) -> str:
    """The X.Y of the python3 in the cached Debian rootfs of `arch`."""
    with tarfile.open(rootfs("python", arch)) as tar:
        for member in tar.getnames():
            found = re.fullmatch(r"\./usr/bin/python(3\.\d+)", member)
            if found:
                return found.group(1)
    raise StandInError(f"the Debian {arch} rootfs has no python3")


def to_json(value: object) -> bytes:
    """JSON as stored in an image: always the same bytes for the same value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def add_file(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    """Add bytes, or a file's content, to `tar` under `name`."""
    info = tarfile.TarInfo(name)
    info.size = data.stat().st_size if isinstance(data, Path) else len(data)
    with data.open("rb") if isinstance(data, Path) else io.BytesIO(data) as content:
        tar.addfile(info, content)


def add_blob(tar: tarfile.TarFile, data: bytes | Path, media_type: str) -> dict:
    """Add a blob under blobs/sha256/ and return its OCI descriptor."""
    if isinstance(data, Path):
        with data.open("rb") as content:
            digest = hashlib.file_digest(content, "sha256").hexdigest()
    else:
        digest = hashlib.sha256(data).hexdigest()
    size = data.stat().st_size if isinstance(data, Path) else len(data)
    descriptor = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": size}
    add_file(tar, blob_path(descriptor), data)
    return descriptor


def gzipped(layer: Path) -> Path:
    """The layer gzip-compressed beside it (made once; no name or time in the header, so the
    same layer gives the same bytes), as registries serve layers and tools such as syft
    expect them in a saved image."""
    packed = layer.with_name(layer.name + ".gz")
    if not packed.exists():
        partial = packed.with_suffix(".partial")
        with (
            layer.open("rb") as source,
            partial.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)
        partial.rename(packed)
    return packed


def blob_path(descriptor: dict) -> str:
    """Where a descriptor's blob lies in an OCI archive."""
    return "blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")


def full_name(image: str) -> str:
    """`image` with its registry and namespace spelled out: python:3.11 -> docker.io/library/..."""
    first, slash, _ = image.partition("/")
    if not slash:
        return f"docker.io/library/{image}"
    return image if re.search(r"[.:]|^localhost$", first) else f"docker.io/{image}"


def oci_archive(path: Path, image: str, layers: dict[str, Path], config: dict) -> None:
    """Write the OCI archive `docker load` reads: `image` as an index with one manifest per arch,
    each a single gzip-compressed layer and the same `config`. No timestamps: the same inputs give
    the same digests, so a stand-in rebuilt to add an arch keeps the ones it had as they were."""
    with tarfile.open(path, "w") as tar:
        manifests, saved = [], []
        for arch, layer in layers.items():
            layer_blob = add_blob(
                tar, gzipped(layer), "application/vnd.oci.image.layer.v1.tar+gzip"
            )
            with layer.open("rb") as content:
                diff_id = "sha256:" + hashlib.file_digest(content, "sha256").hexdigest()
            image_config = {
                "architecture": arch,
                "os": "linux",
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": "scripts/offline_images.py (a stand-in)"}],
            }
            manifest = {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": add_blob(
                    tar, to_json(image_config), "application/vnd.oci.image.config.v1+json"
                ),
                "layers": [layer_blob],
            }
            manifests.append(
                add_blob(tar, to_json(manifest), MANIFEST)
                | {"platform": {"architecture": arch, "os": "linux"}}
            )
            paths = [blob_path(manifest["config"]), blob_path(layer_blob)]
            saved.append({"Config": paths[0], "RepoTags": [image], "Layers": paths[1:]})
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}
        named = add_blob(tar, to_json(index), INDEX) | {
            "annotations": {
                "io.containerd.image.name": full_name(image),
                "org.opencontainers.image.ref.name": image.rsplit(":", 1)[1],
            }
        }
        add_file(tar, "index.json", to_json({"schemaVersion": 2, "manifests": [named]}))
        add_file(tar, "oci-layout", to_json({"imageLayoutVersion": "1.0.0"}))
        if len(saved) == 1:  # the classic image store reads docker save's manifest.json
            add_file(tar, "manifest.json", to_json(saved))


def load(client: docker.DockerClient, image: str, layers: dict[str, Path], config: dict) -> None:
    """Load `image` into the engine from one layer per arch (see oci_archive)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        archive = Path(tmp) / "image.tar"
        oci_archive(archive, image, layers, config)
        with archive.open("rb") as data:
            client.images.load(data)


def build_python(client: docker.DockerClient, image: str, arches: Sequence[str] = ()):
    """A python:X.Y-* stand-in, refused unless Debian's Python is X.Y on every arch."""
    arches = arches or [host_arch()]
    wanted = re.match(r"(\d+\.\d+)", image.rsplit(":", 1)[1])
    for arch in arches:
        have = debian_python_version(arch)
        if not wanted or wanted.group(1) != have:
            raise StandInError(
                f"{image}: Debian {SUITE} ships Python {have}, and a stand-in never claims "
                f"another version; render with python_version={have}, or pull or load the real "
                "image"
            )
    config = {
        "Env": [BASE_ENV, "LANG=C.UTF-8"],
        "Labels": {STAND_IN_LABEL: f"debian-{SUITE}"},
        "Cmd": ["python3"],
    }
    load(client, image, {arch: rootfs("python", arch) for arch in arches}, config)


def build_cuda(client: docker.DockerClient, image: str, arches: Sequence[str] = ()):
    """An nvidia/cuda stand-in: Debian without CUDA libraries, enough to build, not to compute."""
    arches = arches or [host_arch()]
    version = image.rsplit(":", 1)[1].split("-", 1)[0]
    config = {
        "Env": [BASE_ENV, f"CUDA_VERSION={version}", "NVIDIA_VISIBLE_DEVICES=all"],
        "Labels": {STAND_IN_LABEL: f"debian-{SUITE}, no CUDA libraries"},
        "Cmd": ["bash"],
    }
    load(client, image, {arch: rootfs("", arch) for arch in arches}, config)


def pick_uv_wheel(files: list[dict], version: str, arch: str) -> dict | None:
    """The index entry of uv's static (musl) wheel for `arch`. x86_64's is tagged musllinux
    alone, aarch64's manylinux and musllinux: the same static binary."""
    prefix, tag = f"uv-{version}-py3-none-", f"musllinux_1_1_{UNAME[arch]}"
    for entry in files:
        name = entry["filename"]
        if name.startswith(prefix) and tag in name[len(prefix) :].removesuffix(".whl").split("."):
            return entry
    return None


def fetch_uv_wheel(version: str, arch: str, dest: Path) -> Path:
    """The static (musl) uv wheel of `version` for `arch`, from the package index, hash-checked."""
    index = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("PIP_INDEX_URL")
    index = (index or "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(
        f"{index}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    entry = pick_uv_wheel(files, version, arch)
    if entry is None:
        raise StandInError(f"no uv {version} wheel for {arch} musl on {index}: is it released?")
    with urllib.request.urlopen(
        urllib.parse.urljoin(f"{index}/uv/", entry["url"]), timeout=300
    ) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != entry["hashes"]["sha256"]:
        raise StandInError(f"{entry['filename']}: sha256 does not match the index")
    wheel = dest / entry["filename"]
    wheel.write_bytes(data)
    return wheel


def build_uv(client: docker.DockerClient, image: str, arches: Sequence[str] = ()):
    """The uv image from the uv wheels of the same version: static /uv and /uvx, FROM scratch."""
    arches = arches or [host_arch()]
    version = image.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory() as tmp:
        layers = {}
        for arch in arches:
            wheel = fetch_uv_wheel(version, arch, Path(tmp))
            layers[arch] = Path(tmp) / f"uv-{arch}.tar"
            with zipfile.ZipFile(wheel) as whl, tarfile.open(layers[arch], "w") as tar:
                for binary in ("uv", "uvx"):
                    data = whl.read(f"uv-{version}.data/scripts/{binary}")
                    info = tarfile.TarInfo(binary)  # mtime 0: the same wheel, the same layer
                    info.size, info.mode = len(data), 0o755
                    tar.addfile(info, io.BytesIO(data))
        config = {"Entrypoint": ["/uv"], "Labels": {STAND_IN_LABEL: f"uv {version} wheel"}}
        load(client, image, layers, config)


def buildkit_archive(folder: Path, arch: str) -> tuple[Path, str]:
    """The BuildKit release archive for `arch` in `folder`, checked against the folder's
    SHA256SUMS, and its version (vX.Y.Z)."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise StandInError(f"no {sums}: a BuildKit stand-in needs BuildKit's release archive")
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        found = BUILDKIT_ARCHIVE.match(name.lstrip("*"))
        if not found or found[2] != arch:
            continue
        archive = folder / found[0]
        with archive.open("rb") as content:
            if hashlib.file_digest(content, "sha256").hexdigest() != digest.strip():
                raise StandInError(f"{archive}: sha256 does not match {sums}")
        return archive, found[1]
    raise StandInError(f"{sums} names no buildkit-vX.Y.Z.linux-{arch}.tar.gz")


def buildkit_layer(folder: Path, arch: str, version: str) -> Path:
    """A cached layer: the Debian rootfs with runc, plus buildkitd and buildctl in /usr/bin from
    the checked archive; refused unless `buildkitd --version` says `version`."""
    archive, have = buildkit_archive(folder, arch)
    if have != version:
        raise StandInError(
            f"moby/buildkit:{version}: {archive.name} is BuildKit {have}, and a stand-in never "
            f"claims another version; set the CI files' BUILDKIT_IMAGE to moby/buildkit:{have}"
        )
    with archive.open("rb") as content:
        digest = hashlib.file_digest(content, "sha256").hexdigest()[:12]
    layer = CACHE / f"debian-{SUITE}-{arch}-buildkit-{version}-{digest}.tar"
    if layer.exists():
        return layer
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        with tarfile.open(archive) as release:
            members = [release.getmember(f"bin/{binary}") for binary in BUILDKIT_BINS]
            release.extractall(tmp, members=members, filter="data")
        binaries = Path(tmp) / "bin"
        said = run(str(binaries / "buildkitd"), "--version", capture_output=True, text=True)
        if said.stdout.split()[2:3] != [version]:
            raise StandInError(f"{archive.name}: buildkitd --version says {said.stdout.strip()}")
        partial = Path(tmp) / "layer.tar"
        shutil.copyfile(rootfs("runc", arch), partial)
        with tarfile.open(partial, "a") as tar:
            for name in ("etc/buildkit", "var/lib/buildkit"):
                info = tarfile.TarInfo(f"./{name}")  # mtime 0: the same archive, the same layer
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for binary in BUILDKIT_BINS:
                info = tar.gettarinfo(binaries / binary, f"./usr/bin/{binary}")
                info.uid = info.gid = info.mtime = 0
                info.uname = info.gname = "root"
                with (binaries / binary).open("rb") as content:
                    tar.addfile(info, content)
        partial.rename(layer)
    return layer


def build_buildkit(
    client: docker.DockerClient, image: str, arches: Sequence[str] = (), folder: Path = BUILDKIT_DIR
):
    """A moby/buildkit stand-in: buildkitd (the entrypoint, as upstream) and buildctl from the
    release archive in `folder`, with Debian's runc, for docker-container builders in tests."""
    arches = arches or [host_arch()]
    version = image.rsplit(":", 1)[1]
    config = {
        "Entrypoint": ["buildkitd"],
        "Env": [BASE_ENV, "BUILDKIT_SETUP_CGROUPV2_ROOT=1"],
        "Volumes": {"/var/lib/buildkit": {}},
        "Labels": {STAND_IN_LABEL: f"BuildKit {version} release archive on debian-{SUITE}"},
    }
    load(client, image, {arch: buildkit_layer(folder, arch, version) for arch in arches}, config)


BUILDERS = {"python": build_python, "uv": build_uv, "cuda": build_cuda, "buildkit": build_buildkit}


def supported() -> str:
    """The platforms stand-ins exist for, in words."""
    return " and ".join(f"linux/{arch}" for arch in UNAME)


def host_arch() -> str:
    """This machine's arch, as Docker names it."""
    arch = next((a for a, machine in UNAME.items() if machine == platform.machine()), None)
    if arch is None:
        raise StandInError(f"no stand-ins for {platform.machine()} machines: only {supported()}")
    return arch


def stand_in_arches(platforms: Sequence[str]) -> list[str]:
    """The arches a stand-in holds: this machine's and those of `platforms` (linux/ARCH)."""
    wanted = {host_arch()}
    for name in platforms:
        os_name, _, arch = name.partition("/")
        if os_name != "linux" or arch not in UNAME:
            raise StandInError(f"--platform {name}: stand-ins exist for {supported()}")
        wanted.add(arch)
    return [arch for arch in UNAME if arch in wanted]


def missing_arches(client: docker.DockerClient, image: str, arches: Sequence[str]) -> list[str]:
    """The arches the engine holds no `image` for. It is asked by creating (and removing) a
    container of each platform: no image API of Engine 26 says which platforms it holds."""
    missing = []
    for arch in arches:
        try:
            client.containers.create(image, ["true"], platform=f"linux/{arch}").remove()
        except docker.errors.NotFound:
            missing.append(arch)
    return missing


def is_stand_in(client: docker.DockerClient, image: str) -> bool:
    """True when the engine's `image` (for this machine) is a stand-in made here."""
    try:
        return STAND_IN_LABEL in (client.images.get(image).labels or {})
    except docker.errors.ImageNotFound:
        return False


def push_image(client: docker.DockerClient, image: str) -> None:
    """Push a stand-in, every platform it holds, to the registry its name starts with."""
    repository, tag = image.rsplit(":", 1)
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise StandInError(f"push {image}: {line['error']}")


def check_push(images: list[str]) -> None:
    """Refuse to push anywhere but a registry on this machine: a stand-in in a shared mirror
    would pass for the real image on every machine that pulls it."""
    for image in images:
        first, slash, _ = image.partition("/")
        if not slash or first.rsplit(":", 1)[0] not in LOOPBACK:
            raise StandInError(
                f"{image}: stand-ins are pushed only to a registry on 127.0.0.1 or localhost; "
                "render with image_mirror=127.0.0.1:PORT/"
            )


def containerd_store(client: docker.DockerClient) -> bool:
    """True when the engine keeps images in containerd, the store that holds several platforms."""
    status = dict(pair for pair in client.info().get("DriverStatus") or [] if len(pair) == 2)
    return "containerd" in status.get("driver-type", "")


def ensure(
    repo: Path,
    dry_run: bool = False,
    platforms: Sequence[str] = (),
    push: bool = False,
    buildkit: Path | None = None,
) -> list[str]:
    """Build a stand-in for each base image of `repo` the engine lacks, for this machine's
    platform and `platforms`; a stand-in that lacks one of them is rebuilt with all of them.
    A real image found is left alone (the builder pulls other platforms of it itself). With
    `push`, push every stand-in to its registry. With `buildkit` (a folder holding BuildKit's
    release archive), the builder image the CI files name too (never pushed: the engine runs
    it). Return the images built."""
    client = docker.from_env()
    arches = stand_in_arches(platforms)
    images = base_images(repo)
    if push:
        check_push(images)
    if buildkit is not None:
        images.append(builder_image(repo))
    if len(arches) > 1 and not containerd_store(client):
        raise StandInError(
            f"a stand-in for {' and '.join(arches)} needs the containerd image store "
            '("features": {"containerd-snapshotter": true} in /etc/docker/daemon.json)'
        )
    built = []
    for image in images:
        kind = kind_of(image)
        # The builder runs on this machine only: BuildKit's archive is for one arch.
        wanted = [host_arch()] if kind == "buildkit" else arches
        missing = missing_arches(client, image, wanted)
        real = not is_stand_in(client, image) and host_arch() not in missing
        if real or not missing:
            pulled = f" (not a stand-in: the builder pulls {', '.join(missing)})" if missing else ""
            print(f"present  {image}{pulled}")
        else:
            what = f"{kind} stand-in {image} for {', '.join(wanted)}"
            print(f"{'would build' if dry_run else 'building'} {what}", flush=True)
            if dry_run:
                continue
            if kind == "buildkit":
                build_buildkit(client, image, wanted, buildkit or BUILDKIT_DIR)
            else:
                BUILDERS[kind](client, image, wanted)
            built.append(image)
        if push and not real and not dry_run and kind != "buildkit":
            print(f"pushing  {image}", flush=True)
            push_image(client, image)
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a repo rendered from this template")
    parser.add_argument(
        "--platform",
        default="",
        help="more platforms for the stand-ins, e.g. linux/arm64 (this machine's is always in)",
    )
    parser.add_argument(
        "--push",
        action="store_true",
        help="push the stand-ins to the registry on 127.0.0.1 that image_mirror names",
    )
    parser.add_argument(
        "--buildkit",
        nargs="?",
        type=Path,
        const=BUILDKIT_DIR,
        help="also the moby/buildkit image the CI files name, from the BuildKit release archive "
        f"in this folder (default {BUILDKIT_DIR})",
    )
    parser.add_argument("--dry-run", action="store_true", help="only say what would be built")
    args = parser.parse_args()
    platforms = [name for name in args.platform.split(",") if name]
    try:
        ensure(args.repo, args.dry_run, platforms, args.push, args.buildkit)
    except (StandInError, docker.errors.DockerException, subprocess.CalledProcessError) as error:
        print(f"offline_images: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
