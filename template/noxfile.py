"""Day-to-day tasks for this repo's images: `uv run nox -l` lists them, `uv run nox` builds.

Every session runs in this repo's dev environment, where pyproject.toml's dev group pins each
tool it uses, and logs the real command it runs. Settings come from .env (see .env.example).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from noxtools import build as buildkit  # noqa: E402
from noxtools import cache, cuda, report  # noqa: E402
from noxtools.host import (  # noqa: E402
    Host,
    HostError,
    builder_driver,
    containerd_store,
    detect,
    engine,
    load_settings,
)

nox.options.default_venv_backend = "none"
nox.options.sessions = ["build"]
for _logger in ("urllib3", "docker"):  # the Docker SDK's chatter
    logging.getLogger(_logger).setLevel(logging.WARNING)
BIN = Path(sys.executable).parent  # the dev environment's tools: uv, hadolint, dive, syft
DEV = ("compose.yaml", "compose.dev.yaml")
WATCH = ("compose.yaml", "compose.watch.yaml")
BUILD_FLAGS = ("--no-cache", "--pull", "--platform")
MIRRORS = ("UV_INDEX", "UV_DEFAULT_INDEX")  # .env's index mirrors, for image builds only
PLATFORMS = re.compile(r"^linux/[a-z0-9]+(?:/v\d)?(?:,linux/[a-z0-9]+(?:/v\d)?)*$")


def setup(session: nox.Session) -> Host:
    """Settings from .env, and how this host builds; or one line saying what is wrong."""
    try:
        load_settings(ROOT)
        return detect(ROOT)
    except HostError as error:
        session.error(str(error))


def client(session: nox.Session):
    """The Docker SDK client of the engine the docker CLI would use, or a one-line error."""
    try:
        return engine()
    except HostError as error:
        session.error(str(error))


@functools.cache
def config(compose: str) -> dict:
    """`docker compose config`, parsed once; a HostError with Compose's reason if it fails."""
    cmd = [compose, "config", "--format", "json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode:
        reason = (out.stderr.strip() or f"exit {out.returncode}").splitlines()[-1]
        raise HostError(f"docker compose config failed: {reason}")
    return json.loads(out.stdout)


def images(session: nox.Session, host: Host) -> dict[str, str]:
    """Service -> image name, as compose.yaml and .env name them."""
    try:
        return {name: spec["image"] for name, spec in config(host.compose)["services"].items()}
    except HostError as error:
        session.error(str(error))


def services(session: nox.Session, host: Host, names: list[str] | None = None) -> list[str]:
    """The services named (all when none), or a one-line error naming the unknown ones."""
    names = [arg for arg in session.posargs if not arg.startswith("-")] if names is None else names
    known = sorted(images(session, host))
    unknown = [name for name in names if name not in known]
    if unknown:
        session.error(
            f"unknown service {', '.join(unknown)}: known services are {', '.join(known)}"
        )
    return names or known


def build_args(session: nox.Session) -> tuple[list[str], list[str], str]:
    """(services, build flags, platform) from the arguments after --."""
    names, flags, platform, args = [], [], "", list(session.posargs)
    while args:
        arg = args.pop(0)
        if arg == "--platform" or arg.startswith("--platform="):
            platform = arg.partition("=")[2] or (args.pop(0) if args else "")
            if not PLATFORMS.match(platform):
                session.error(f"--platform {platform!r}: give one like linux/arm64")
        elif arg in BUILD_FLAGS:
            flags.append(arg)
        elif arg.startswith("-"):
            session.error(f"unknown option {arg}: build takes services, {', '.join(BUILD_FLAGS)}")
        else:
            names.append(arg)
    return names, flags, platform


def pyprojects() -> list[Path]:
    """The workspace's pyproject.toml files: the root's, the shared package's, each service's."""
    members = [ROOT / "shared/pyproject.toml", *sorted(ROOT.glob("services/*/pyproject.toml"))]
    return [ROOT / "pyproject.toml", *members]


def check_lock(session: nox.Session) -> None:
    """Refuse a uv.lock that no longer matches the pyproject.toml files (checked once a change)."""
    files = [ROOT / "uv.lock", *pyprojects()]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.is_file())).hexdigest()
    memo = ROOT / ".nox" / "uv-lock-checked"
    if memo.is_file() and memo.read_text() == digest:
        return
    cmd = [str(BIN / "uv"), "lock", "--check", "--offline", "--quiet"]
    # The committed files alone: .env's mirrors are for image builds, and uv would compare the
    # lock with the mirrors' URLs instead.
    env = {key: value for key, value in os.environ.items() if key not in MIRRORS}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        reason = (out.stderr.strip().splitlines() or ["uv failed"])[0].removeprefix("error: ")
        unset = " with UV_INDEX and UV_DEFAULT_INDEX unset" if env != dict(os.environ) else ""
        session.error(
            f"uv.lock does not match the pyproject.toml files ({reason}): run uv lock{unset}"
        )
    memo.parent.mkdir(exist_ok=True)
    memo.write_text(digest)


def check_mirrors(session: nox.Session) -> None:
    """Refuse a UV_INDEX entry whose name no [[tool.uv.index]] of the workspace declares."""
    declared = {
        index.get("name")
        for path in pyprojects()
        if path.is_file()
        for index in tomllib.loads(path.read_text()).get("tool", {}).get("uv", {}).get("index", [])
    }
    named = [entry.partition("=")[0] for entry in os.environ.get("UV_INDEX", "").split()]
    unknown = [name for name in named if name not in declared]
    if unknown:
        session.error(
            f"UV_INDEX names {', '.join(unknown)}, which no pyproject.toml declares "
            f"(declared: {', '.join(sorted(filter(None, declared))) or 'none'}): fix .env"
        )


def under_registry(prefix: str) -> bool:
    """Whether an image prefix starts with a registry: a host with a dot or a port, or localhost."""
    first, _, rest = prefix.partition("/")
    return bool(rest and re.search(r"[.:]|^localhost$", first))


def registry_cache(session: nox.Session, host: Host, write: bool) -> tuple[str, ...]:
    """A Compose file with each service's registry cache (<image>:buildcache), when the images
    are named under a registry; `write` it too (mode=max: every stage, deps included)."""
    if os.environ.get("REGISTRY_CACHE") == "off" or not under_registry(
        os.environ.get("IMAGE_PREFIX", "")
    ):
        return ()
    refs = {
        name: image.rpartition(":")[0] + ":buildcache"
        for name, image in images(session, host).items()
    }
    store = ",image-manifest=true,oci-mediatypes=true,mode=max"
    override = {
        "services": {
            name: {
                "build": {"cache_from": [f"type=registry,ref={ref}"]}
                | ({"cache_to": [f"type=registry,ref={ref}{store}"]} if write else {})
            }
            for name, ref in refs.items()
        }
    }
    path = Path(session.create_tmp()) / "registry-cache.yaml"  # bake reads .json as its own
    path.write_text(json.dumps(override))
    return ("compose.yaml", str(path))


def compose_build(session: nox.Session, host: Host, push: bool = False, cache: bool = False):
    """Build the services named (all when none) in one run, then print the table; `push` the
    images too, and `cache`: their registry caches.

    The Docker SDK is not imported unless the build fails (to say why): importing it costs more
    than the rest of this session's own work, and bake and Compose reach the engine themselves.
    """
    names, flags, platform = build_args(session)
    check_lock(session)
    check_mirrors(session)
    files = registry_cache(session, host, cache)
    cache_note = f"; registry cache {'read and written' if cache else 'read'}" if files else ""
    session.log(host.describe() + cache_note)
    cmd = buildkit.command(host, names, flags, platform, files, push)
    session.log(" ".join(cmd))
    show = os.environ.get("BUILDKIT_PROGRESS") or "auto"
    result = buildkit.run(cmd, str(ROOT), names[0] if len(names) == 1 else "", show)
    if result.error:
        client(session)  # an engine that cannot be reached is said as such, with its endpoint
        services(session, host, names)  # and a service compose.yaml lacks, with those it has
        why = why_failed(result, show)
        session.error(f"build of {', '.join(names) or 'every service'} failed{why}")
    labelled = sorted({service for step in result.steps.values() for service in step.services})
    print(report.build_table(result, names or labelled or sorted(images(session, host))))


def why_failed(result: buildkit.Build, show: str) -> str:
    """Where and why a build failed, for its one-line error: the failed step's own error line
    (uv's, apt's), its last log lines printed above it; else BuildKit's reason."""
    step, lines = result.failure()
    if not lines:
        return f": {result.error}"
    if show != "plain":  # plain progress printed them already
        print("\n".join(f"    {line}" for line in lines), file=sys.stderr)
    return f" at {step}: {buildkit.summary(lines)}"


def _size(docker_client, image: str) -> int | None:
    """Bytes of a local image, or None when there is none."""
    import docker

    try:
        return int(docker_client.images.get(image).attrs["Size"])
    except docker.errors.ImageNotFound:
        return None


@nox.session
def build(session: nox.Session) -> None:
    """Build every image, or those named, in one run: nox -s build -- core --no-cache --pull."""
    compose_build(session, setup(session))


@nox.session
def build_parallel(session: nox.Session) -> None:
    """The same as build (which now builds all services in one run); kept for old scripts."""
    compose_build(session, setup(session))


@nox.session
def push(session: nox.Session) -> None:
    """Build and push each image (or those named) to IMAGE_PREFIX, with its registry cache."""
    host = setup(session)
    prefix = os.environ.get("IMAGE_PREFIX", "")
    if not under_registry(prefix):
        session.error(
            f"IMAGE_PREFIX={prefix or '(unset)'} names no registry: set it in .env, "
            "e.g. registry.example.com/team/project"
        )
    info = client(session).info()
    exports = containerd_store(info) or (host.buildx and builder_driver() not in {"docker", ""})
    if not exports:
        session.log(
            "this engine cannot export a registry cache (classic image store and the docker "
            "driver): pushing with an inline cache, which holds the final stage only"
        )
        os.environ["BUILDKIT_INLINE_CACHE"] = "1"
    compose_build(session, host, push=True, cache=exports)


@nox.session
def up(session: nox.Session) -> None:
    """Start the services (all, or those named) in the background and wait until healthy."""
    host = setup(session)
    session.run(*host.cmd("up", "-d", "--wait", *services(session, host)), external=True)


@nox.session
def dev(session: nox.Session) -> None:
    """Start the services with the dev overlay: code bind-mounted, servers reload on save."""
    host = setup(session)
    names = services(session, host)
    session.run(*host.cmd("up", "-d", "--wait", *names, files=DEV), external=True)


@nox.session
def watch(session: nox.Session) -> None:
    """Run the services under Compose watch: code synced on save, rebuilt when uv.lock changes."""
    host = setup(session)
    check_lock(session)
    session.run(*host.cmd("watch", *services(session, host), files=WATCH), external=True)


@nox.session
def down(session: nox.Session) -> None:
    """Stop and remove the services' containers (volumes and images stay)."""
    host = setup(session)
    files = ("compose.yaml", "compose.dev.yaml", "compose.watch.yaml")
    session.run(*host.cmd("down", "--remove-orphans", files=files), external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint every Dockerfile with hadolint and the repo's .hadolint.yaml."""
    dockerfiles = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("services/*/Dockerfile"))
    session.run(BIN / "hadolint", "--config", ".hadolint.yaml", *dockerfiles, external=True)


def require_image(session: nox.Session, docker_client, service: str, image: str) -> None:
    """Stop with a clear message when a service's image has not been built yet."""
    if _size(docker_client, image) is None:
        session.error(
            f"no image {image} for {service}: build it first with nox -s build -- {service}"
        )


@nox.session
def dive(session: nox.Session) -> None:
    """Check each image (or those named) with dive in CI mode; -- --interactive to browse."""
    host, docker_client = setup(session), client(session)
    interactive = "--interactive" in session.posargs and sys.stdin.isatty()
    named = [arg.split("=", 1)[1] for arg in session.posargs if arg.startswith("--image=")]
    names = images(session, host) if not named else {}
    targets = [(image, image) for image in named] or [
        (s, names[s]) for s in services(session, host)
    ]
    # dive reads the classic store over a local socket; otherwise give it a `docker save` archive.
    archive = os.environ.get("DIVE_SOURCE") == "archive" or containerd_store(docker_client.info())
    failed = []
    for label, image in targets:
        require_image(session, docker_client, label, image)
        args = [] if interactive else ["--ci", "--ci-config", str(ROOT / ".config/dive-ci.yaml")]
        tar = Path(session.create_tmp()) / f"{label.replace('/', '_')}.tar"
        if archive:
            with tar.open("wb") as handle:
                handle.writelines(docker_client.images.get(image).save(named=True))
        try:
            source = ["--source", "docker-archive", str(tar)] if archive else [image]
            session.run(
                BIN / "dive",
                *args,
                *source,
                external=True,
                env={"CI": str(not interactive).lower()},
            )
        except nox.command.CommandFailed:
            failed.append(label)
        finally:
            tar.unlink(missing_ok=True)
    if failed:
        session.error(
            f"dive found wasted space in {', '.join(failed)}: see above (.config/dive-ci.yaml)"
        )


@nox.session
def history(session: nox.Session) -> None:
    """Layer sizes of each service image (or those named), biggest first, with their steps."""
    import docker

    host, docker_client = setup(session), client(session)
    names = images(session, host)
    for service in services(session, host):
        require_image(session, docker_client, service, names[service])
        try:
            layers = docker_client.api.history(names[service])
        except docker.errors.NotFound:  # containerd store: an image never run is not unpacked yet
            docker_client.containers.create(names[service]).remove()
            layers = docker_client.api.history(names[service])
        print(f"{service}: {names[service]}")
        print(report.history_table(layers), end="\n\n")


@nox.session
def du(session: nox.Session) -> None:
    """Disk used by each service image, largest first, and by the builder cache."""
    host, docker_client = setup(session), client(session)
    df = docker_client.api.df()
    names = {s: image for s, image in images(session, host).items() if s in services(session, host)}
    rows = report.du_rows(names, df.get("Images") or [])
    print(report.table(("service", "image", "size", "shared", "unique"), rows))
    usage = cache.usage(df.get("BuildCache") or [])
    print(cache.usage_table(usage, usage, 0).rsplit("\n", 1)[0])


@nox.session
def prune(session: nox.Session) -> None:
    """Free builder cache but keep the apt/uv cache mounts and recent layers; -- --all: all."""
    from docker.utils import parse_bytes

    setup(session)
    api = client(session).api
    keep = parse_bytes(os.environ.get("PRUNE_KEEP_STORAGE") or "5GB")  # as docker's --keep-storage
    until = os.environ.get("PRUNE_UNTIL") or "72h"
    everything = "--all" in session.posargs
    before = cache.usage(api.df().get("BuildCache") or [])
    reclaimed = cache.prune(api, everything=everything, keep_storage=keep, until=until)
    after = cache.usage(api.df().get("BuildCache") or [])
    session.log(
        "removed all builder cache"
        if everything
        else f"kept cache mounts, layers used in the last {until}, and {report.human_size(keep)}"
    )
    print(cache.usage_table(before, after, reclaimed))


@nox.session
def sbom(session: nox.Session) -> None:
    """An SPDX JSON SBOM of each image (or those named) with syft, in sbom/<service>.spdx.json."""
    host, docker_client = setup(session), client(session)
    names = images(session, host)
    (ROOT / "sbom").mkdir(exist_ok=True)
    for service in services(session, host):
        require_image(session, docker_client, service, names[service])
        cmd = [BIN / "syft", "scan", f"docker:{names[service]}", "-q"]
        out = ["-o", f"spdx-json=sbom/{service}.spdx.json"]  # and no update check online:
        session.run(*cmd, *out, external=True, env={"SYFT_CHECK_FOR_APP_UPDATE": "false"})


def cuda_base_image(service: str) -> str:
    """The CUDA base a GPU service builds on: CUDA_IMAGE from .env, else its Dockerfile's."""
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    default = re.search(r"^ARG CUDA_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    return (os.environ.get("CUDA_IMAGE") or default[1]) if default else ""


@nox.session
def cuda_check(session: nox.Session) -> None:
    """Why a GPU service will not start: driver, CUDA version, NVIDIA runtime, in-image probes."""
    host = setup(session)
    names = images(session, host)
    gpu = [name for name in services(session, host) if cuda_base_image(name)]
    if not gpu:
        session.error("no GPU service among those named: cuda_check looks at services with gpu")
    try:
        status = cuda.run_cuda_check(
            {name: names[name] for name in gpu},
            {name: cuda_base_image(name) for name in gpu},
            os.environ,
        )
    except ValueError as error:
        session.error(str(error))
    if status:
        sys.exit(status)  # the distinct status for "no GPU" must reach the shell as it is


@nox.session
def template_check(session: nox.Session) -> None:
    """Exit 1 when a newer template version exists, naming it; 0 when current; 2: unreachable."""
    from noxtools import template_update

    status = template_update.check(ROOT)
    if status:
        sys.exit(status)  # 1 (behind) and 2 (cannot tell) must reach the shell as they are


@nox.session
def template_update(session: nox.Session) -> None:
    """copier update to the newest template (-- --vcs-ref TAG, -d key=value), listing conflicts."""
    from noxtools import template_update as update

    problem = update.update(ROOT, session.posargs)  # lists conflicts even if the relock failed
    if problem:
        session.error(problem)
