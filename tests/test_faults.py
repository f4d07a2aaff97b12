"""The fault suite: faults injected for real, each on a second engine of the test's own, each
ending in one line that says what happened and what to do, with nothing half-built tagged or
half-written pushed, and the same command succeeding once the fault is gone.

- the engine SIGKILLed in the middle of a step (a package download the test's index holds);
- the registry stopped in the middle of `nox -s push`: as the image's tag is written, then as
  its registry cache is (which never fails the push);
- the engine's disk full: its data root on a small loop-mounted ext4, filled by old builder
  cache that `nox -s prune -- --all` frees;
- the network cut while apt and uv download (Debian's mirror through the test's relay, as the
  builds' HTTP proxy; the index served by the test; the engine's bridge cut with iptables): the
  cache mounts are not poisoned;
- two `nox -s build` at once on the same repo: both succeed, every step's result shared.

Servers bind on the second engine's gateway (what its build steps reach) or 127.0.0.1; every
engine, mount and iptables rule is undone in a finalizer, also when a test fails. The images'
PyPI packages come from a mirror the test serves (downloaded once), so that the faults are the
test's own and not the resolver's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from scripts import http_relay, local_registry, package_index, second_engine
from scripts.offline_images import base_images
from scripts.offline_images import ensure as ensure_base_images
from scripts.render import HOST_CA_BUNDLE, OFFLINE_ANSWERS, render, write_env
from tests.conftest import BIN, Registry, missing, run
from tests.test_engines import steps

pytestmark = pytest.mark.docker
SERVICES = [{"name": "core", "port": 8000}, {"name": "llm", "port": 8001}]
PREFIX = "faults"  # image names on the test's own engines: faults/<service>:<tag>
HELD = "heldpkg"  # 1.5 MB from the test's index: core's big packages' step downloads it
BIG = "bigpkg"  # a small download that unpacks to BIG_SIZE: what a full disk cannot take
BIG_SIZE = 150 << 20
DISK = 1800 << 20  # the small disk: the stand-ins take 640 MB of it


@pytest.fixture(scope="module")
def as_root(engine) -> None:
    """Root and the tools the faults need: a second dockerd, iptables, a loop mount."""
    if os.geteuid() != 0:
        missing("the fault suite needs root: it starts engines, mounts a disk, sets iptables")
    for tool in ("dockerd", "iptables", "mkfs.ext4", "docker-registry"):
        if not shutil.which(tool):
            missing(f"{tool} not found: run scripts/setup-host.sh")


@dataclass
class Engine:
    """A second engine of the test's own; `info` is second_engine's view of it."""

    info: second_engine.Engine
    client: docker.DockerClient

    @property
    def host(self) -> str:
        return self.info.host

    def restart(self) -> None:
        second_engine.start(self.info.name, store="containerd")

    def empty_builder_cache(self) -> None:
        """Every layer and cache mount gone: the next build downloads everything."""
        self.client.api.prune_builds(all=True)

    def image(self, service: str, tag: str):
        return self.client.images.get(f"{PREFIX}/{service}:{tag}")

    def absent(self, service: str, tag: str) -> bool:
        try:
            self.image(service, tag)
        except docker.errors.ImageNotFound:
            return True
        return False

    def run(self, service: str, tag: str, *cmd: str) -> str:
        image = f"{PREFIX}/{service}:{tag}"
        return self.client.containers.run(image, list(cmd), remove=True).decode().strip()


@contextmanager
def second(name: str, data_root_ready=lambda engine: None) -> Iterator[Engine]:
    """Engine `name` with the containerd image store (the host's), stopped at the end whatever
    happens; `data_root_ready` runs before it starts."""
    info = second_engine.Engine(name)
    try:
        data_root_ready(info)
        url = second_engine.start(name, store="containerd")
        yield Engine(info, docker.DockerClient(base_url=url, timeout=300))
    finally:
        second_engine.stop(name)


@pytest.fixture(scope="module")
def started_b(as_root) -> Iterator[Engine]:
    """Engine B, for the module."""
    with second(f"f{uuid.uuid4().hex[:7]}") as engine:
        yield engine


@pytest.fixture
def engine_b(started_b) -> Engine:
    """Engine B, running: a test before may have killed it and failed before starting it again."""
    started_b.restart()
    return started_b


@dataclass
class Index:
    """The test's package index on engine B's gateway, and the CA bundle that trusts it."""

    served: package_index.Indexes
    bundle: Path
    wheels: dict[str, Path]

    @property
    def hold(self) -> package_index.Hold:
        return self.served.hold

    def payload(self, package: str) -> str:
        """The sha256 of a wheel's data file, as an image must hold it."""
        with zipfile.ZipFile(self.wheels[package]) as archive:
            return hashlib.sha256(archive.read(f"{package}/weights.bin")).hexdigest()


@pytest.fixture(scope="module")
def index(started_b, tmp_path_factory) -> Iterator[Index]:
    folder = tmp_path_factory.mktemp("faults-index")
    ca, cert, key = package_index.certificates(folder / "tls", started_b.info.gateway)
    bundle = folder / "ca-bundle.pem"  # PyPI's CAs (through the host's proxy), and the test's
    bundle.write_bytes(HOST_CA_BUNDLE.read_bytes() + b"\n" + ca.read_bytes())
    init = {
        "__init__.py": "import pathlib\nWEIGHTS = pathlib.Path(__file__).with_name('weights.bin')\n"
    }
    wheels = {
        HELD: package_index.wheel(folder, HELD, "1.0", init, random=1_500_000),
        BIG: package_index.wheel(folder, BIG, "1.0", init, zeros=BIG_SIZE),
    }
    with package_index.serve(
        {"faults": list(wheels.values())}, started_b.info.gateway, (cert, key)
    ) as served:
        yield Index(served, bundle, wheels)


def depend(repo: Path, service: str, package: str, url: str) -> None:
    """`service` depends on `package` from the explicit index "faults" at `url`; then uv lock."""
    path = repo / f"services/{service}/pyproject.toml"
    text = path.read_text().replace('    "shared",\n', f'    "shared",\n    "{package}==1.0",\n')
    text = text.replace(
        "shared = { workspace = true }\n",
        f'shared = {{ workspace = true }}\n{package} = {{ index = "faults" }}\n',
    )
    if "[[tool.uv.index]]" not in text:
        text += f'\n[[tool.uv.index]]\nname = "faults"\nurl = "{url}"\nexplicit = true\n'
    path.write_text(text)
    bundle = repo.parent / "ca-bundle.pem"
    run([str(BIN / "uv"), "lock", "--quiet"], repo, env={"SSL_CERT_FILE": str(bundle)})


def mirror_pypi(repo: Path, index: Index) -> str:
    """The wheels the images take from PyPI, downloaded once and served by the test's index as
    a mirror (UV_DEFAULT_INDEX, as .env names one): no step reaches PyPI, whose name the
    resolver fails to look up now and then under several builds at once. Its URL."""
    folder, served = index.bundle.parent / "pypi", index.served.files.setdefault("pypi", [])
    context = ssl.create_default_context(cafile=str(HOST_CA_BUNDLE))
    for service in ("core", "llm"):
        export = [str(BIN / "uv"), "export", "--frozen", "--package", service, "--no-dev"]
        export += ["--no-emit-workspace", "--format", "pylock.toml", "--quiet"]
        packages = tomllib.loads(run(export, repo).stdout)["packages"]
        for package in (p for p in packages if p.get("index") == "https://pypi.org/simple"):
            (wheel,) = [w for w in package["wheels"] if w["url"].endswith("-none-any.whl")]
            path = folder / wheel["url"].rsplit("/", 1)[1]
            if path not in served:
                folder.mkdir(exist_ok=True)
                with urllib.request.urlopen(wheel["url"], context=context, timeout=120) as answer:
                    path.write_bytes(answer.read())
                assert hashlib.sha256(path.read_bytes()).hexdigest() == wheel["hashes"]["sha256"]
                served.append(path)
    return index.served.url("pypi")


def make_repo(folder: Path, services: list[dict], index: Index, engine: Engine) -> Path:
    """core, taking heldpkg from the test's index, and llm, both taking PyPI's packages from the
    test's mirror; the stand-ins on the host's engine and on `engine`."""
    repo = render(folder / "repo", {**OFFLINE_ANSWERS, "services": services}, skip_tasks=True)
    shutil.copy(index.bundle, folder / "ca-bundle.pem")
    depend(repo, "core", HELD, index.served.url("faults"))
    mirror = mirror_pypi(repo, index)
    write_env(repo, folder / "ca-bundle.pem", IMAGE_PREFIX=PREFIX, UV_DEFAULT_INDEX=mirror)
    ensure_base_images(repo)
    second_engine.load(engine.host, base_images(repo))
    return repo


@pytest.fixture(scope="module")
def repo(started_b, index, tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("faults"), SERVICES, index, started_b)


def nox_on(engine: Engine, repo: Path, *args: str, env=None, check: bool = True):
    """The repo's nox on `engine`: DOCKER_HOST is its, whatever this environment says."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    cmd = [sys.executable, "-m", "nox", *args]
    env = {"DOCKER_HOST": engine.host, **(env or {})}
    return run(cmd, cwd=repo, env=env, check=check, base=base)


def started(engine: Engine, repo: Path, *args: str, env=None) -> subprocess.Popen:
    """The same, in the background."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "nox", *args],
        cwd=repo,
        env={**base, "DOCKER_HOST": engine.host, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen, timeout: float = 900) -> subprocess.CompletedProcess:
    """What a background session said, once it ended; stopped after `timeout` seconds with
    SIGTERM, which nox passes on to the build's own process group (a SIGKILL would leave that
    build running on the engine), then killed if it still runs 30 s later."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def reached(hold: package_index.Hold, proc: subprocess.Popen, what: str) -> None:
    """Wait until `hold` holds its request; fail with the session's output if it never does
    (the session ended, or has not asked after 15 minutes)."""
    deadline = time.monotonic() + 900
    while not hold.reached.wait(timeout=1):
        if proc.poll() is not None or time.monotonic() > deadline:
            out = finished(proc, timeout=0.1)
            pytest.fail(f"{what} was never asked for:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def aborted(out: subprocess.CompletedProcess) -> str:
    """The session's one line (nox's "Session X aborted: ... (took N seconds)."), its message
    alone; the session failed."""
    assert out.returncode != 0, out.stdout[-3000:] + out.stderr[-3000:]
    said = re.compile(r"^nox > Session \w+ aborted: (?P<message>.+) \(took [^()]+\)\.$")
    lines = [m["message"] for m in map(said.match, out.stderr.splitlines()) if m]
    assert len(lines) == 1, out.stderr[-4000:]
    print(f"the one line: {lines[0]}")  # shown with -s, and when the test fails
    return lines[0]


def test_engine_killed_in_the_middle_of_a_step(engine_b, repo, index):
    """SIGKILL to the engine while core's big packages' step downloads heldpkg (the index holds
    the download half-way): one line naming the engine, no image tagged, and once the engine
    runs again the same command builds core."""
    engine_b.empty_builder_cache()
    index.hold.arm(index.wheels[HELD].name)
    env = {"TAG": "killed"}
    build = started(engine_b, repo, "-s", "build", "--", "core", env=env)
    try:
        reached(index.hold, build, HELD)
        pid = int(engine_b.info.pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        while second_engine.alive(pid):  # reaped: a restarted dockerd checks its pidfile's pid
            time.sleep(0.2)
    finally:
        index.hold.cut()
        out = finished(build)
    message = aborted(out)
    assert message.startswith(
        f"build of core failed: the Docker Engine at {engine_b.host} stopped answering during "
        "the build ("
    ), message
    assert message.endswith("): start it, then rerun nox -s build -- core"), message
    engine_b.restart()
    assert engine_b.absent("core", "killed")  # nothing half-built was tagged
    nox_on(engine_b, repo, "-s", "build", "--", "core", env=env)
    code = (
        "import hashlib, heldpkg; print(hashlib.sha256(heldpkg.WEIGHTS.read_bytes()).hexdigest())"
    )
    assert engine_b.run("core", "killed", "python", "-c", code) == index.payload(HELD)


@contextmanager
def registry(root: Path, port: int) -> Iterator[http_relay.Relay]:
    """A registry storing under `root`, on 127.0.0.1:`port`, until the block ends. The relay in
    front is its door: when the block ends the port closes and every connection is reset, as
    when a registry dies; its Hold stops one request first."""
    with (
        local_registry.serve(root) as backend,
        http_relay.serve("127.0.0.1", backend, port) as front,
    ):
        yield front


def tags(registry: Registry, repository: str) -> list[str]:
    try:
        return sorted(registry.get(f"/v2/{repository}/tags/list").get("tags") or [])
    except urllib.error.HTTPError as error:
        if error.code == 404:  # no such repository: nothing was ever tagged
            return []
        raise


def complete(registry: Registry, repository: str, tag: str) -> None:
    """The manifest a tag names, and every blob it names, are in the registry and whole."""
    manifest = registry.image_manifest(repository, tag)
    for blob in [manifest["config"], *manifest["layers"]]:
        data = registry.blob(repository, blob["digest"])
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]


def test_registry_stopped_in_the_middle_of_push(engine_b, repo, tmp_path):
    """The registry dies as the image's tag arrives: push fails in one line and tags nothing.
    Back up, it dies as the registry cache's manifest arrives: the push succeeds (a cache that
    cannot be written never fails it), says so in one line, and the image it pushed is whole.
    Back up again, the same command writes the cache, building nothing again."""
    root, port = tmp_path / "registry", local_registry.free_port()
    where = Registry(f"127.0.0.1:{port}")
    env = {"IMAGE_PREFIX": f"127.0.0.1:{port}/{PREFIX}", "TAG": "v1"}
    with registry(root, port) as front:
        front.hold.arm(f"/{PREFIX}/core/manifests/v1", method="PUT")
        push = started(engine_b, repo, "-s", "push", "--", "core", env=env)
        reached(front.hold, push, "the image's tag")
    message = aborted(finished(push))  # the registry is gone now
    assert message.startswith(
        f"push of core failed: the registry 127.0.0.1:{port} did not answer ("
    ), message
    assert message.endswith("then rerun nox -s push -- core"), message
    with registry(root, port) as front:
        assert tags(where, f"{PREFIX}/core") == []  # nothing tagged half-way
        front.hold.arm(f"/{PREFIX}/core/manifests/buildcache", method="PUT")
        push = started(engine_b, repo, "-s", "push", "--", "core", env=env)
        reached(front.hold, push, "the registry cache's manifest")
    out = finished(push)
    assert out.returncode == 0, out.stderr[-3000:]
    (said,) = [line for line in out.stderr.splitlines() if "registry cache was not written" in line]
    assert (
        f"push of core: the registry cache was not written (the registry 127.0.0.1:{port}" in said
    )
    assert said.endswith("the images are complete, and the next nox -s push -- core writes it")
    with registry(root, port):
        assert tags(where, f"{PREFIX}/core") == ["v1"]  # the image, and no cache half-written
        complete(where, f"{PREFIX}/core", "v1")
        out = nox_on(
            engine_b, repo, "-s", "push", "--", "core", env={**env, "BUILDKIT_PROGRESS": "plain"}
        )
        assert tags(where, f"{PREFIX}/core") == ["buildcache", "v1"]
        complete(where, f"{PREFIX}/core", "buildcache")
        assert {status for _, _, status in steps(out.stdout)} == {"CACHED"}
        assert "registry cache was not written" not in out.stderr


@pytest.fixture
def engine_on_small_disk(as_root, tmp_path) -> Iterator[Engine]:
    """An engine whose data root is a 1.8 GB ext4 on a loop device; unmounted at the end."""
    disk = tmp_path / "disk.img"

    def small_disk(info: second_engine.Engine) -> None:
        with disk.open("wb") as image:
            image.truncate(DISK)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(disk)], check=True)
        info.data_root.mkdir(parents=True)
        subprocess.run(["mount", "-o", "loop", str(disk), str(info.data_root)], check=True)

    info = second_engine.Engine(f"d{uuid.uuid4().hex[:7]}")
    try:
        with second(info.name, small_disk) as engine:
            yield engine
    finally:  # second_engine.stop unmounts what is under the data root; in case it could not:
        subprocess.run(["umount", str(info.data_root)], capture_output=True)
        disk.unlink(missing_ok=True)


def test_disk_full(engine_on_small_disk, repo, index, tmp_path):
    """Old builder cache fills the engine's disk, and core now takes a package that unpacks to
    150 MB: the build ends in one line saying no space left and what frees it; nothing is
    tagged; `nox -s prune -- --all` frees the old cache; the same build then succeeds."""
    engine = engine_on_small_disk
    big = tmp_path / "repo"
    shutil.copytree(repo, big, ignore=shutil.ignore_patterns(".nox"))
    shutil.copy(index.bundle, tmp_path / "ca-bundle.pem")
    depend(big, "core", BIG, index.served.url("faults"))
    second_engine.load(engine.host, base_images(big))
    # Another project's layers, kept in the builder cache: all but 150 MB of the free space.
    filler = shutil.disk_usage(engine.info.data_root).free - (150 << 20)
    python = next(image for image in base_images(big) if "python:" in image)
    (tmp_path / "filler").mkdir()
    (tmp_path / "filler/Dockerfile").write_text(
        f"FROM {python}\nRUN head -c {filler} /dev/zero > /filler\n"
    )
    build = ["docker", "buildx", "build", "--output", "type=cacheonly", "filler"]
    run(build, tmp_path, env={"DOCKER_HOST": engine.host})
    env = {"TAG": "full"}
    message = aborted(nox_on(engine, big, "-s", "build", "--", "core", env=env, check=False))
    assert re.search(
        r"build of core failed( at \[[^]]+\])?: no space left on the engine's disk", message
    ), message
    assert message.endswith(
        "free it with nox -s prune -- --all (nox -s du shows what holds it), then rerun "
        "nox -s build -- core"
    ), message
    assert engine.absent("core", "full")
    out = nox_on(engine, big, "-s", "prune", "--", "--all")
    reclaimed = re.search(r"^reclaimed: ([\d.]+) (kB|MB|GB)$", out.stdout, re.MULTILINE)
    assert (
        reclaimed
        and float(reclaimed[1]) * {"kB": 1e3, "MB": 1e6, "GB": 1e9}[reclaimed[2]] >= filler
    )
    nox_on(engine, big, "-s", "build", "--", "core", env=env)
    code = "import bigpkg; print(bigpkg.WEIGHTS.stat().st_size)"
    assert engine.run("core", "full", "python", "-c", code) == str(BIG_SIZE)


def cut_rules(bridge: str) -> list[list[str]]:
    """Every packet from the engine's bridge refused: to the host (the index, the relay) and
    beyond (Debian, PyPI, DNS); TCP with a reset, as a network that drops a route answers."""
    return [
        ["-t", "filter", chain, "-i", bridge, *proto, "-j", "REJECT", *how]
        for chain in ("INPUT", "FORWARD")
        for proto, how in ((["-p", "tcp"], ["--reject-with", "tcp-reset"]), ([], []))
    ]


@dataclass
class Network:
    """The engine's network, which the test can cut and restore."""

    bridge: str

    def cut(self) -> None:
        for rule in reversed(cut_rules(self.bridge)):  # inserted on top, TCP's first
            assert second_engine.iptables("-I", rule), rule

    def restore(self) -> None:
        for rule in cut_rules(self.bridge):
            while second_engine.iptables("-D", rule):
                pass


@pytest.fixture
def relayed(engine_b, tmp_path) -> Iterator[tuple[http_relay.Relay, Network, Path]]:
    """The test's relay on engine B's gateway, as the HTTP proxy of its builds (apt's downloads:
    each answer kept, so that Debian's mirror is asked once), a Docker config that names it,
    and B's network to cut; the relay stopped, and every rule removed, at the end."""
    network = Network(engine_b.info.bridge)
    with http_relay.serve(engine_b.info.gateway, keep=True) as relay:
        proxies = {"proxies": {"default": {"httpProxy": f"http://{relay.host}"}}}
        (tmp_path / "docker").mkdir()
        (tmp_path / "docker/config.json").write_text(json.dumps(proxies))
        try:
            yield relay, network, tmp_path / "docker"
        finally:
            network.restore()


def cut_while(engine: Engine, repo: Path, hold: package_index.Hold, network: Network, env) -> str:
    """Build core until `hold` holds its download, cut the network, and return the one line."""
    build = started(engine, repo, "-s", "build", "--", "core", env=env)
    try:
        reached(hold, build, hold.suffix or "the download")
        network.cut()
    finally:
        hold.cut()
        out = finished(build)
    network.restore()
    return aborted(out)


def test_network_cut_while_packages_download(engine_b, index, relayed, tmp_path):
    """Cut while apt downloads tree's .deb, then while uv downloads heldpkg: one line each,
    naming what could not be downloaded and what to do; then, the network back and the cache
    mounts as the cuts left them, the same command builds core with both packages whole."""
    relay, network, config = relayed
    services = [{**SERVICES[0], "apt_packages": ["tree"]}, SERVICES[1]]  # apt downloads a .deb
    repo = make_repo(tmp_path, services, index, engine_b)
    engine_b.empty_builder_cache()
    env = {"TAG": "cut", "DOCKER_CONFIG": str(config)}
    relay.hold.arm(".deb")
    message = cut_while(engine_b, repo, relay.hold, network, env)
    assert re.search(
        r"^build of core failed at \[(core )?deps 1/\d\]: could not download "
        r"http://\S+/tree_\S+\.deb \(.+\); the build could not download packages: ",
        message,
    ), message
    assert message.endswith("then rerun nox -s build -- core"), message
    index.hold.arm(index.wheels[HELD].name)
    message = cut_while(engine_b, repo, index.hold, network, env)
    assert re.search(
        rf"^build of core failed at \[(core )?deps 3/\d\]: could not install {HELD}==1\.0 from "
        rf"index faults \({re.escape(index.served.url('faults'))}\): .+; the build could not "
        "download packages: ",
        message,
    ), message
    assert engine_b.absent("core", "cut")
    nox_on(engine_b, repo, "-s", "build", "--", "core", env=env)
    assert engine_b.run("core", "cut", "dpkg-query", "-W", "-f=${Status}", "tree") == (
        "install ok installed"
    )
    code = (
        "import hashlib, heldpkg; print(hashlib.sha256(heldpkg.WEIGHTS.read_bytes()).hexdigest())"
    )
    assert engine_b.run("core", "cut", "python", "-c", code) == index.payload(HELD)


def test_two_builds_at_once_share_every_step(engine_b, repo, index):
    """Two `nox -s build` of every service at once, from an empty builder cache, and a third
    naming its images otherwise (a witness): all three succeed, though the two name the same
    images at the same moment; the witness's images have the same layers as theirs (a step run
    twice would make a layer of its own), heldpkg is downloaded once, and the engine is up."""
    engine_b.empty_builder_cache()
    downloads = len(index.served.downloads)
    tags = ("latest", "latest", "witness")
    builds = [started(engine_b, repo, "-s", "build", env={"TAG": tag}) for tag in tags]
    for out in map(finished, builds):
        assert out.returncode == 0, out.stderr[-3000:]
    for service in ("core", "llm"):
        layers = [engine_b.image(service, tag).attrs["RootFS"]["Layers"] for tag in tags[1:]]
        assert layers[0] == layers[1], service
    # core's big packages' step fetches heldpkg: once. (core's and llm's small packages' steps
    # are two steps, not one: their parent layers differ.)
    fetched = [path for path in index.served.downloads[downloads:] if HELD in path]
    assert fetched == [f"/faults/files/{index.wheels[HELD].name}"]
    assert engine_b.client.ping()


def test_no_cache_beside_another_build_is_warned_about(engine_b, repo):
    """On an engine before Docker 28, a --no-cache build running beside another build of the
    same steps crashes the engine (a BuildKit panic): --no-cache says so, in one line."""
    version = engine_b.client.version()["Version"]
    out = nox_on(engine_b, repo, "-s", "build", "--", "llm", "--no-cache")
    said = [line for line in out.stderr.splitlines() if "--no-cache on Docker Engine" in line]
    if int(version.split(".")[0]) >= 28:
        assert said == []
    else:
        (line,) = said
        assert f"--no-cache on Docker Engine {version}" in line
