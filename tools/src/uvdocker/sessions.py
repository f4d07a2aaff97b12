"""The bodies of a generated repo's nox sessions: its noxfile.py declares each session in a few
lines over `Repo`, and stays the place where the team adds its own.

Each method takes the nox session (or anything with its posargs, log, warn, error, run and
create_tmp: the unit tests pass a stand-in), parses the arguments after `--` with argparse, and
logs the real command it runs. Settings come from .env (see .env.example), checked before
anything runs; every problem ends the session with one line saying what to do.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import random
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from nox.command import CommandFailed

from uvdocker import build as buildkit
from uvdocker import cache, cuda, process, registry_cache, report
from uvdocker.host import (
    Host,
    HostError,
    ask_builder,
    builder,
    buildx_plugin,
    containerd_store,
    detect,
    endpoint,
    engine,
    load_settings,
    local_endpoint,
)

BIN = Path(sys.executable).parent  # the dev environment's tools: uv, hadolint, dive, syft
DEV = ("compose.yaml", "compose.dev.yaml")
WATCH = ("compose.yaml", "compose.watch.yaml")
# What a session interrupted by a signal leaves behind, said in its last line.
KEPT = "the containers it started keep running, as after up -d: nox -s down stops them"
UP_STOPPED = f"Compose stopped; {KEPT}"
WATCH_STOPPED = f"Compose watch and its builds stopped; {KEPT}"
MIRRORS = ("UV_INDEX", "UV_DEFAULT_INDEX")  # .env's index mirrors, for image builds only
TRIES = 3  # builds of the same images at once: how many times one names them
PLATFORMS = re.compile(r"^linux/[a-z0-9]+(?:/v\d)?(?:,linux/[a-z0-9]+(?:/v\d)?)*$")
for _logger in ("urllib3", "docker"):  # the Docker SDK's chatter
    logging.getLogger(_logger).setLevel(logging.WARNING)


class _Refused(Exception):
    """An argument argparse refuses; the message says which."""


class Options(argparse.ArgumentParser):
    """A session's options: errors are one line through session.error, never a usage dump."""

    def __init__(self, session_name: str, takes: str) -> None:
        super().__init__(prog=f"nox -s {session_name} --", add_help=False, allow_abbrev=False)
        self.session_name, self.takes = session_name, takes

    def error(self, message: str):  # argparse's hook, called instead of exiting
        raise _Refused(message)

    def parse(self, session: Any, posargs: list[str] | None = None) -> argparse.Namespace:
        """The posargs (or `posargs`) as options; unknown ones end the session, naming what it
        takes.

        parse_known_intermixed_args, so services and options may come in any order
        (`-- core --no-cache tts`), as they always could.
        """
        try:
            args, unknown = self.parse_known_intermixed_args(
                session.posargs if posargs is None else posargs
            )
        except _Refused as refused:
            session.error(f"{self.session_name}: {refused}")
        if unknown:
            what = "option" if unknown[0].startswith("-") else "argument"
            session.error(f"unknown {what} {unknown[0]}: {self.session_name} takes {self.takes}")
        return args


def build_options(session: Any, name: str = "build") -> argparse.Namespace:
    """Services, --no-cache, --pull, --platform PLATFORM; `flags` holds the first two."""
    parser = Options(name, "services, --no-cache, --pull, --platform")
    parser.add_argument("services", nargs="*")
    parser.add_argument("--no-cache", action="append_const", const="--no-cache", dest="flags")
    parser.add_argument("--pull", action="append_const", const="--pull", dest="flags")
    parser.add_argument("--platform", default="")
    args = parser.parse(session)
    if args.platform and not PLATFORMS.match(args.platform):
        session.error(f"--platform {args.platform!r}: give one like linux/arm64")
    args.flags = args.flags or []
    return args


def services_option(session: Any, name: str) -> argparse.Namespace:
    """Services alone: what most sessions take."""
    parser = Options(name, "services")
    parser.add_argument("services", nargs="*")
    return parser.parse(session)


def stopped(session: Any, stop: process.Interrupted, after: str) -> None:
    """End the session that a signal stopped: one line, and the signal's own exit status."""
    session.log(f"stopped by {stop.name}" + (f": {after}" if after else ""))
    sys.exit(stop.status)


def why_failed(result: buildkit.Build, show: str) -> str:
    """Where and why a build failed, for its one-line error: the failed step's own error line
    (uv's, apt's), its last log lines printed above it; else BuildKit's reason."""
    step, lines = result.failure()
    if not lines:
        return f": {result.error}"
    if show != "plain":  # plain progress printed them already
        print("\n".join(f"    {line}" for line in lines), file=sys.stderr)
    return f" at {step}: {buildkit.summary(lines)}"


def no_cache_hazard() -> str:
    """Before Docker Engine 28 (its BuildKit before 0.19), a --no-cache build beside another
    build of the same steps on the engine can crash it: a nil dereference in BuildKit's
    provenance walk, which every build runs (moby/buildkit#5606). The warning, or ""."""
    try:
        out = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    version = out.stdout.strip()
    major = version.split(".")[0]
    if out.returncode or not major.isdigit() or int(major) >= 28:
        return ""
    return (
        f"--no-cache on Docker Engine {version}: before 28, a --no-cache build beside another "
        "build of the same steps can crash the engine (moby/buildkit#5606): let it run alone, "
        "or upgrade the engine"
    )


def rerun(name: str, posargs: list[str]) -> str:
    """The command that runs this session again, as it was run."""
    return f"nox -s {name}" + (f" -- {shlex.join(posargs)}" if posargs else "")


def built(session: Any, cmd: list[str], root: str, service: str, show: str, opening):
    """Run the build; again (up to TRIES times in all) when another build of the same images
    (the same repo built twice at once) named one of them at the same moment, which fails the
    export on engines whose BuildKit does not retry it (before 0.28, moby/buildkit#6477). Both
    builds ran the same steps, so the next try finds them cached; a short random pause first,
    or builds that share their steps meet again at the same moment."""
    result = buildkit.run(cmd, root, service, show, opening)
    for _ in range(TRIES - 1):
        taken = buildkit.name_taken(result.error)
        if not taken:
            break
        session.log(f"another build named {taken} at the same moment: naming it again")
        time.sleep(random.uniform(0.5, 2))
        result = buildkit.run(cmd, root, service, show)
    return result


def cache_unwritten(result: buildkit.Build, what: str, again: str) -> str:
    """The warning of a push whose images are complete but whose registry cache could not be
    written (BuildKit goes on: ignore-error=true)."""
    host, cause = buildkit.registry_unreachable(result.cache_errors[0])
    reason = f"the registry {host} did not answer: {cause}" if host else result.cache_errors[0]
    return (
        f"{what}: the registry cache was not written ({reason}); the images are complete, and "
        f"the next {again} writes it"
    )


def failed(result: buildkit.Build, show: str, again: str) -> str:
    """The rest of a failed build's one line, after "build of core failed": where and why, and
    for a fault it can name (the engine's disk full, a registry or a package index out of
    reach) what happened and what to do, ending with `again`, the command to rerun."""
    reason = why_failed(result, show)
    step = result.failure()[0]
    full = buildkit.no_space(result)
    if full:
        return (
            f"{f' at {step}' if step else ''}: no space left on the engine's disk "
            f"({full[-160:]}): free it with nox -s prune -- --all (nox -s du shows what holds "
            f"it), then rerun {again}"
        )
    host, cause = buildkit.registry_unreachable(result.error)
    if host:
        return (
            f": the registry {host} did not answer ({cause}): check that it is up and that this "
            f"engine reaches it, then rerun {again}"
        )
    if buildkit.download_failed(result):
        return (
            f"{reason}; the build could not download packages: check that the engine reaches "
            f"the index or mirror (network, proxy, CA_BUNDLE, UV_INDEX in .env), then rerun "
            f"{again}"
        )
    return reason


class Repo:
    """A generated repo, at `root` (where its noxfile.py is)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- what every session needs ------------------------------------------------------------

    def setup(self, session: Any) -> Host:
        """Settings from .env, and how this host builds; or one line saying what is wrong."""
        try:
            for warning in load_settings(self.root):
                session.warn(warning)
            return detect(self.root)
        except HostError as error:
            session.error(str(error))

    def client(self, session: Any):
        """The Docker SDK client of the engine the docker CLI would use, or a one-line error."""
        try:
            return engine()
        except HostError as error:
            session.error(str(error))

    def run(self, session: Any, *cmd: Any, env: dict | None = None, after: str = "") -> int:
        """Run `cmd` as session.run does (logged, its output shown) and return its exit status;
        but in a process group that never outlives the session (uvdocker.process): a signal
        sent to nox stops it, then the session, with one line saying so and `after` (what the
        command leaves behind)."""
        shown = [str(part) for part in cmd]
        session.log(" ".join(shown))
        try:
            with process.group(shown, cwd=self.root, env={**os.environ, **(env or {})}) as proc:
                pass
        except process.Interrupted as stop:
            stopped(session, stop, after)
        except OSError as error:  # not installed: the dev environment is not synced
            session.error(f"cannot run {shown[0]} ({error.strerror}): run the sessions with uv run")
        return proc.returncode

    def compose(self, session: Any, host: Host, *args: str, files=(), after: str = "") -> None:
        """A Compose command on the engine, which must answer first (one line naming it, not
        Compose's own errors); a failure is one line after Compose's."""
        self.client(session)
        code = self.run(session, *host.cmd(*args, files=files), after=after)
        if code:
            session.error(f"docker compose {args[0]} exited {code}: its error is above")

    @functools.cache  # noqa: B019 - one Repo per noxfile, for the whole run
    def config(self, compose: str) -> dict:
        """`docker compose config`, parsed once; a HostError with Compose's reason if it fails."""
        cmd = [compose, "config", "--format", "json"]
        out = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, check=False)
        if out.returncode:
            reason = (out.stderr.strip() or f"exit {out.returncode}").splitlines()[-1]
            raise HostError(f"docker compose config failed: {reason}")
        return json.loads(out.stdout)

    def images(self, session: Any, host: Host) -> dict[str, str]:
        """Service -> image name, as compose.yaml and .env name them."""
        try:
            return {name: s["image"] for name, s in self.config(host.compose)["services"].items()}
        except HostError as error:
            session.error(str(error))

    def services(self, session: Any, host: Host, names: list[str]) -> list[str]:
        """The services named (all when none), or a one-line error naming the unknown ones."""
        known = sorted(self.images(session, host))
        unknown = [name for name in names if name not in known]
        if unknown:
            session.error(
                f"unknown service {', '.join(unknown)}: known services are {', '.join(known)}"
            )
        return names or known

    def pyprojects(self) -> list[Path]:
        """The workspace's pyproject.toml files: the root's, the shared package's, each
        service's."""
        members = [self.root / "shared/pyproject.toml"]
        members += sorted(self.root.glob("services/*/pyproject.toml"))
        return [self.root / "pyproject.toml", *members]

    def check_lock(self, session: Any) -> None:
        """Refuse a uv.lock that no longer matches the pyproject.toml files (checked once a
        change)."""
        files = [self.root / "uv.lock", *self.pyprojects()]
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.is_file()))
        memo = self.root / ".nox" / "uv-lock-checked"
        if memo.is_file() and memo.read_text() == digest.hexdigest():
            return
        cmd = [str(BIN / "uv"), "lock", "--check", "--offline", "--quiet"]
        # The committed files alone: .env's mirrors are for image builds, and uv would compare
        # the lock with the mirrors' URLs instead.
        env = {key: value for key, value in os.environ.items() if key not in MIRRORS}
        out = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if out.returncode:
            reason = (out.stderr.strip().splitlines() or ["uv failed"])[0].removeprefix("error: ")
            unset = " with UV_INDEX and UV_DEFAULT_INDEX unset" if env != dict(os.environ) else ""
            session.error(
                f"uv.lock does not match the pyproject.toml files ({reason}): run uv lock{unset}"
            )
        memo.parent.mkdir(exist_ok=True)
        memo.write_text(digest.hexdigest())

    def check_mirrors(self, session: Any) -> None:
        """Refuse a UV_INDEX entry whose name no [[tool.uv.index]] of the workspace declares."""
        declared = {
            index.get("name")
            for path in self.pyprojects()
            if path.is_file()
            for index in tomllib.loads(path.read_text())
            .get("tool", {})
            .get("uv", {})
            .get("index", [])
        }
        named = [entry.partition("=")[0] for entry in os.environ.get("UV_INDEX", "").split()]
        unknown = [name for name in named if name not in declared]
        if unknown:
            session.error(
                f"UV_INDEX names {', '.join(unknown)}, which no pyproject.toml declares "
                f"(declared: {', '.join(sorted(filter(None, declared))) or 'none'}): fix .env"
            )

    def require_image(self, session: Any, client: Any, service: str, image: str) -> None:
        """Stop with a clear message when a service's image has not been built yet."""
        import docker

        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            session.error(
                f"no image {image} for {service}: build it first with nox -s build -- {service}"
            )

    # --- building ----------------------------------------------------------------------------

    def registry_cache(self, session: Any, host: Host, write: bool) -> tuple[str, ...]:
        """compose.yaml and a Compose file with each service's registry cache, as
        docker-bake.hcl defines it, when the images are named under a registry; else ()."""
        if not registry_cache.wanted():
            return ()
        plugin = host.buildx or str(buildx_plugin() or "")
        if not plugin:
            session.log(
                "registry cache not used: docker-bake.hcl defines it, and no buildx reads it"
            )
            return ()
        try:
            folder = Path(session.create_tmp())
            return ("compose.yaml", registry_cache.compose_file(self.root, plugin, write, folder))
        except HostError as error:
            session.error(str(error))

    def build(self, session: Any) -> None:
        """Build every image, or those named, in one run: -- core --no-cache --pull --platform."""
        self._build(session, self.setup(session))

    def _build(self, session: Any, host: Host, push: bool = False, cache_to: bool = False):
        """Build the services named (all when none) in one run, then print the table; `push`
        the images too, and with `cache_to` their registry caches.

        The Docker SDK is not imported unless the build fails (to say why): importing it costs
        more than the rest of this session's own work, and bake and Compose reach the engine
        themselves.
        """
        name = "push" if push else "build"
        args = build_options(session, name)
        names, flags = args.services, args.flags
        query = ask_builder() if host.buildx else None  # answered while the build starts
        self.check_lock(session)
        self.check_mirrors(session)
        files = self.registry_cache(session, host, cache_to)
        note = f"; registry cache {'read and written' if cache_to else 'read'}" if files else ""
        cmd = buildkit.command(host, names, flags, args.platform, files, push)

        def opening() -> None:
            name, driver = builder(query) if query else ("", "")  # ("default", "") when down
            session.log(host.describe(f"{name} ({driver} driver)" if driver else "") + note)
            session.log(" ".join(cmd))
            if "--no-cache" in flags and driver in {"docker", ""}:
                hazard = no_cache_hazard()
                if hazard:
                    session.warn(hazard)

        show = os.environ.get("BUILDKIT_PROGRESS") or "auto"
        service = names[0] if len(names) == 1 else ""
        try:
            result = built(session, cmd, str(self.root), service, show, opening)
        except process.Interrupted as stop:
            stopped(session, stop, f"the build stopped with it: run nox -s {name} again")
        verb = "push" if push else "build"
        what, again = (
            f"{verb} of {', '.join(names) or 'every service'}",
            rerun(verb, session.posargs),
        )
        if result.error:
            self.engine_gone(session, result, what, again)
            self.client(session)  # an engine that cannot be reached is said as such
            self.services(session, host, names)  # and a service compose.yaml lacks
            session.error(f"{what} failed{failed(result, show, again)}")
        if result.cache_errors:  # the images were built (and pushed): only their cache was not
            session.warn(cache_unwritten(result, what, again))
        labelled = sorted({service for step in result.steps.values() for service in step.services})
        print(report.build_table(result, names or labelled or sorted(self.images(session, host))))

    def engine_gone(self, session: Any, result: buildkit.Build, what: str, again: str) -> None:
        """End a failed build in one line when the engine went away in the middle of it (killed,
        restarted, out of memory): the build had started and the engine does not answer now,
        or the connection to it dropped."""
        try:
            engine()
            answers = True
        except HostError:
            answers = False
        if not result.started or (answers and not buildkit.engine_dropped(result.error)):
            return
        if answers:
            happened, do = f"dropped the build ({result.error}; it answers again now)", ""
        else:
            happened, do = f"stopped answering during the build ({result.error})", "start it, then "
        session.error(
            f"{what} failed: the Docker Engine at {endpoint()} {happened}: {do}rerun {again}"
        )

    def push(self, session: Any) -> None:
        """Build and push each image (or those named) to IMAGE_PREFIX, with its registry cache."""
        host = self.setup(session)
        prefix = os.environ.get("IMAGE_PREFIX", "")
        if not registry_cache.under_registry(prefix):
            session.error(
                f"IMAGE_PREFIX={prefix or '(unset)'} names no registry: set it in .env, "
                "e.g. registry.example.com/team/project"
            )
        info = self.client(session).info()
        exports = containerd_store(info) or (host.buildx and builder()[1] not in {"docker", ""})
        if not exports:
            session.log(
                "this engine cannot export a registry cache (classic image store and the docker "
                "driver): pushing with an inline cache, which holds the final stage only"
            )
            os.environ["BUILDKIT_INLINE_CACHE"] = "1"
        self._build(session, host, push=True, cache_to=bool(exports))

    # --- running -----------------------------------------------------------------------------

    def up(self, session: Any, files: tuple[str, ...] = (), name: str = "up") -> None:
        """Start the services (all, or those named) in the background and wait until healthy;
        `files`: the Compose files (Compose's own default when none)."""
        host = self.setup(session)
        names = self.services(session, host, services_option(session, name).services)
        self.compose(session, host, "up", "-d", "--wait", *names, files=files, after=UP_STOPPED)

    def dev(self, session: Any) -> None:
        """up with the dev overlay: code bind-mounted, servers reload on save."""
        self.up(session, DEV, "dev")

    def watch(self, session: Any) -> None:
        """Compose watch: code synced on save, rebuilt when uv.lock changes."""
        host = self.setup(session)
        names = self.services(session, host, services_option(session, "watch").services)
        self.check_lock(session)
        self.compose(session, host, "watch", *names, files=WATCH, after=WATCH_STOPPED)

    def down(self, session: Any) -> None:
        """Stop and remove the services' containers (volumes and images stay)."""
        host = self.setup(session)
        Options("down", "no arguments: it stops every service").parse(session)
        files = ("compose.yaml", "compose.dev.yaml", "compose.watch.yaml")
        again = "Compose stopped: run nox -s down again to remove what is left"
        self.compose(session, host, "down", "--remove-orphans", files=files, after=again)

    # --- checking ----------------------------------------------------------------------------

    def lint(self, session: Any) -> None:
        """ruff check and ruff format --check on the workspace, hadolint on every Dockerfile
        (the pre-commit hooks run the same); --fix lets ruff fix what it can and format."""
        parser = Options("lint", "--fix")
        parser.add_argument("--fix", action="store_true")
        fix = parser.parse(session).fix
        found = sorted(
            str(p.relative_to(self.root)) for p in self.root.glob("services/*/Dockerfile")
        )
        checks = {
            "ruff check": [BIN / "ruff", "check", *(["--fix"] if fix else []), "."],
            "ruff format": [BIN / "ruff", "format", *([] if fix else ["--check"]), "."],
            "hadolint": [BIN / "hadolint", "--config", ".hadolint.yaml", *found],
        }
        failed = []
        for name, cmd in checks.items():  # every check runs, so one run shows every problem
            try:
                session.run(*cmd, external=True)
            except CommandFailed:
                failed.append(name)
        if failed:
            fixes = "" if fix else "; nox -s lint -- --fix fixes what ruff can"
            session.error(f"lint found problems ({', '.join(failed)}): see above{fixes}")

    # --- the team's code ---------------------------------------------------------------------

    def test_targets(self) -> list[str]:
        """What has tests to run: the shared package and each service of services/."""
        return [
            "shared",
            *sorted(p.parent.name for p in self.root.glob("services/*/pyproject.toml")),
        ]

    def tests(self, session: Any) -> None:
        """Each service's tests and the shared package's (or those named), each in an environment
        of its own (.nox/tests/NAME): its locked dependencies, the ones its image installs, and
        the root's `test` group; PyTorch's CPU build where it takes torch, CUDA's with --cuda.
        What follows a second `--` goes to pytest: -- core -- -k health."""
        posargs = list(session.posargs)
        cut = posargs.index("--") if "--" in posargs else len(posargs)
        parser = Options("tests", "services, shared, --cuda, and pytest's options after a --")
        parser.add_argument("services", nargs="*")
        parser.add_argument("--cuda", action="store_true")
        args = parser.parse(session, posargs[:cut])
        known = self.test_targets()
        unknown = [name for name in args.services if name not in known]
        if unknown:
            session.error(f"unknown service {', '.join(unknown)}: known are {', '.join(known)}")
        self.check_lock(session)
        failed = []
        for name in args.services or known:
            folder = self.root / ("shared" if name == "shared" else f"services/{name}")
            found = [p for p in folder.rglob("*.py") if re.match(r"test_|.*_test\.py$", p.name)]
            if not found:  # pytest's own default patterns
                session.log(f"{name}: no tests (test_*.py) in {folder.relative_to(self.root)}")
                continue
            groups = tomllib.loads((folder / "pyproject.toml").read_text()).get(
                "dependency-groups", {}
            )
            torch = "cuda" if args.cuda and "cuda" in groups else "cpu" if "cpu" in groups else ""
            cmd = [BIN / "uv", "run", "--frozen", "--exact", "--package", name, "--group", "test"]
            cmd += ["--group", torch] if torch else []
            cmd += ["--python", sys.executable, "pytest", folder.relative_to(self.root)]
            # An environment per package, apart from the dev tools: what the image lacks, the
            # tests lack too. nox's own environment is not the one to sync.
            env = {"UV_PROJECT_ENVIRONMENT": str(self.root / ".nox/tests" / name)}
            try:
                # 5: every test deselected (-k) in this package.
                session.run(
                    *cmd,
                    *posargs[cut + 1 :],
                    env={**env, "VIRTUAL_ENV": None},
                    external=True,
                    success_codes=[0, 5],
                )
            except CommandFailed:
                failed.append(name)
        if failed:
            session.error(f"tests failed in {', '.join(failed)}: see above")

    def dive(self, session: Any) -> None:
        """dive in CI mode on each image (or those named); --interactive to browse,
        --image=REF for any image."""
        host, client = self.setup(session), self.client(session)
        parser = Options("dive", "services, --interactive, --image=REF")
        parser.add_argument("services", nargs="*")
        parser.add_argument("--interactive", action="store_true")
        parser.add_argument("--image", action="append", default=[])
        args = parser.parse(session)
        interactive = args.interactive and sys.stdin.isatty()
        names = self.images(session, host) if not args.image else {}
        targets = [(image, image) for image in args.image] or [
            (s, names[s]) for s in self.services(session, host, args.services)
        ]
        # dive reads the classic store of a local engine over its socket; else (the containerd
        # store, an ssh:// engine) it gets a `docker save` archive.
        archive = os.environ.get("DIVE_SOURCE") == "archive" or containerd_store(client.info())
        archive = archive or not local_endpoint()
        failed = []
        for label, image in targets:
            self.require_image(session, client, label, image)
            config = str(self.root / ".config/dive-ci.yaml")
            checks = [] if interactive else ["--ci", "--ci-config", config]
            tar = Path(session.create_tmp()) / f"{label.replace('/', '_')}.tar"
            if archive:
                with tar.open("wb") as handle:
                    handle.writelines(client.images.get(image).save(named=True))
            source = ["--source", "docker-archive", str(tar)] if archive else [image]
            env = {"CI": str(not interactive).lower(), "DOCKER_HOST": endpoint()}
            cmd, again = [BIN / "dive", *checks, *source], "dive stopped: run nox -s dive again"
            try:  # a failure is dive finding wasted space: it said where
                if interactive:  # in the terminal's process group: dive reads its keys
                    session.run(*cmd, external=True, env=env)
                elif self.run(session, *cmd, env=env, after=again):
                    failed.append(label)
            except CommandFailed:
                failed.append(label)
            finally:
                tar.unlink(missing_ok=True)
        if failed:
            session.error(
                f"dive found wasted space in {', '.join(failed)}: see above (.config/dive-ci.yaml)"
            )

    def history(self, session: Any) -> None:
        """Layer sizes of each service image (or those named), biggest first, with their steps."""
        import docker

        host, client = self.setup(session), self.client(session)
        names = self.images(session, host)
        for service in self.services(session, host, services_option(session, "history").services):
            self.require_image(session, client, service, names[service])
            try:
                layers = client.api.history(names[service])
            except docker.errors.NotFound:  # containerd store: an image never run is not unpacked
                client.containers.create(names[service]).remove()
                layers = client.api.history(names[service])
            print(f"{service}: {names[service]}")
            print(report.history_table(layers), end="\n\n")

    def du(self, session: Any) -> None:
        """Disk used by each service image, largest first, and by the builder cache."""
        host, client = self.setup(session), self.client(session)
        df = client.api.df()
        wanted = self.services(session, host, services_option(session, "du").services)
        names = {s: image for s, image in self.images(session, host).items() if s in wanted}
        rows = report.du_rows(names, df.get("Images") or [])
        print(report.table(("service", "image", "size", "shared", "unique"), rows))
        usage = cache.usage(df.get("BuildCache") or [])
        print(cache.usage_table(usage, usage, 0).rsplit("\n", 1)[0])

    def prune(self, session: Any) -> None:
        """Free builder cache but keep the apt/uv cache mounts and recent layers; --all: all."""
        from docker.utils import parse_bytes

        self.setup(session)
        parser = Options("prune", "--all")
        parser.add_argument("--all", action="store_true")
        everything = parser.parse(session).all
        api = self.client(session).api
        keep = parse_bytes(os.environ.get("PRUNE_KEEP_STORAGE") or "5GB")  # as --keep-storage
        until = os.environ.get("PRUNE_UNTIL") or "72h"
        before = cache.usage(api.df().get("BuildCache") or [])
        reclaimed = cache.prune(api, everything=everything, keep_storage=keep, until=until)
        after = cache.usage(api.df().get("BuildCache") or [])
        kept = f"kept cache mounts, layers used in the last {until}, and {report.human_size(keep)}"
        session.log("removed all builder cache" if everything else kept)
        print(cache.usage_table(before, after, reclaimed))

    def sbom(self, session: Any) -> None:
        """An SPDX JSON SBOM of each image (or those named) with syft: sbom/SERVICE.spdx.json."""
        host, client = self.setup(session), self.client(session)
        names = self.images(session, host)
        (self.root / "sbom").mkdir(exist_ok=True)
        for service in self.services(session, host, services_option(session, "sbom").services):
            self.require_image(session, client, service, names[service])
            cmd = [BIN / "syft", "scan", f"docker:{names[service]}", "-q"]
            out = ["-o", f"spdx-json=sbom/{service}.spdx.json"]
            # The engine the docker CLI would use (a context's too), and no update check online.
            env = {"SYFT_CHECK_FOR_APP_UPDATE": "false", "DOCKER_HOST": endpoint()}
            again = "syft stopped: run nox -s sbom again"
            if self.run(session, *cmd, *out, env=env, after=again):
                session.error(f"syft exited with an error for {service}: see above")

    def cuda_base_image(self, service: str) -> str:
        """The CUDA base a GPU service builds on: CUDA_IMAGE from .env, else its Dockerfile's."""
        dockerfile = (self.root / "services" / service / "Dockerfile").read_text()
        default = re.search(r"^ARG CUDA_IMAGE=(\S+)", dockerfile, re.MULTILINE)
        return (os.environ.get("CUDA_IMAGE") or default[1]) if default else ""

    def cuda_check(self, session: Any) -> None:
        """Why a GPU service will not start, asked of the engine's machine: its NVIDIA runtime,
        its driver and CUDA version, in-image probes. Exits 3 where the engine has no GPU
        (CUDA_CHECK_NO_GPU in .env changes that)."""
        host, client = self.setup(session), self.client(session)
        names = self.images(session, host)
        named = self.services(session, host, services_option(session, "cuda_check").services)
        gpu = [name for name in named if self.cuda_base_image(name)]
        if not gpu:
            session.error("no GPU service among those named: cuda_check looks at services with gpu")
        services = self.config(host.compose)["services"]
        try:
            status = cuda.run_cuda_check(
                {name: names[name] for name in gpu},
                {name: self.cuda_base_image(name) for name in gpu},
                os.environ,
                docker_client=client,
                where=endpoint(),
                requests={name: cuda.device_requests(services[name]) for name in gpu},
            )
        except ValueError as error:
            session.error(str(error))
        if status:
            sys.exit(status)  # the distinct status for "no GPU" must reach the shell as it is

    # --- template updates --------------------------------------------------------------------

    def template_check(self, session: Any) -> None:
        """Exit 1 when a newer template version exists, naming it; 0 when current; 2: cannot
        tell."""
        from uvdocker import template_update

        Options("template_check", "no arguments").parse(session)
        status = template_update.check(self.root, log=session.log)
        if status:
            sys.exit(status)  # 1 (behind) and 2 (cannot tell) must reach the shell as they are

    def template_update(self, session: Any) -> None:
        """copier update to the newest template; the arguments after -- go to copier
        (--vcs-ref TAG, -d key=value); then the conflicts it left."""
        from uvdocker import template_update

        try:
            problem = template_update.update(self.root, session.posargs, log=session.log)
        except process.Interrupted as stop:
            stopped(
                session,
                stop,
                f"the update is half-done: `{template_update.UNDO}` puts the repo back to its last"
                " commit, with every edit you committed (git stash drop then deletes the half-done"
                " update); nox -s template_update starts it again",
            )
        if problem:
            session.error(problem)
