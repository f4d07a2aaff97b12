"""One build, read from BuildKit's machine-readable progress: bake's rawjson, Compose's json.

Each line is a JSON object: BuildKit's vertexes (one per build step, with its digest, name,
times, cache hit and error) and logs, or Compose's own status and errors (bake says those in
plain text). A step that several services share is one vertex, named once per service.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from base64 import b64decode
from dataclasses import dataclass, field
from datetime import datetime

from uvdocker import process
from uvdocker.host import Host

# "[core deps 2/3] RUN ...", or "[deps 2/3] RUN ..." when one service is built alone.
_NAME = re.compile(
    r"^\[(?:(?P<service>\S+) )?(?P<stage>\S+) (?P<index>\d+)/\d+\] (?P<text>.*)$", re.DOTALL
)
# The instructions that make layers; FROM only resolves an image.
COUNTED = ("RUN", "COPY", "ADD", "WORKDIR")
SECRETS = ("CA_BUNDLE", "NETRC_FILE")  # the build's secret files, named in .env
TAIL = 12  # the last log lines of a failed step that are shown
# The lines of a step's log that say why it failed: uv's `error:` (with its `cause:` lines),
# apt's `E:`, and the like.
_ERROR = re.compile(r"^(?:error|ERROR|E|fatal|FATAL):\s")
_CAUSE = re.compile(r"^\s*(?:cause|Caused by):\s*")
# The vertexes of the registry cache: BuildKit goes on when they fail (a cache not found yet, or
# one that cannot be written: ignore-error), so they are never the step that failed.
CACHE_VERTEXES = ("importing cache manifest", "exporting cache")
# apt's download that failed: "E: Failed to fetch URL  REASON" (W: during apt-get update).
_APT_FETCH = re.compile(r"^[EW]: Failed to fetch (?P<url>\S+)\s+(?P<why>.*)$")
# uv's and apt's lines when a download failed: the network, a proxy or the index.
_DOWNLOAD = re.compile(
    r"Failed to (?:fetch|download)|error sending request for url|Could not connect to|"
    r"Temporary failure resolving|Connection failed|Failed to read metadata from"
)
_NO_SPACE = re.compile(r"no space left on device", re.IGNORECASE)
# A registry request that failed: Head "https://HOST/v2/...": CAUSE, or "... request to
# http://HOST/v2/...: CAUSE" (containerd's wording).
_REGISTRY = re.compile(r'(?:"|request to )https?://(?P<host>[^/"\s]+)/v2/[^"\s]*"?: (?P<cause>.+)$')
# The containerd image store's exporter, when another build named the same image between its
# update and its create (BuildKit before 0.28: moby/buildkit#6477).
_NAME_TAKEN = re.compile(r'image "(?P<name>[^"]+)": already exists')
# What the client says when its connection to the engine dropped in the middle of a build.
_ENGINE_DROPPED = re.compile(r"code = Unavailable|error reading from server")


@dataclass
class Step:
    """One Dockerfile instruction as BuildKit ran it or found it in its cache."""

    stage: str
    index: int
    text: str
    services: list[str] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0


@dataclass
class Build:
    """What one Compose build did: its steps by digest, Compose's error, its wall time."""

    steps: dict[str, Step] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    shown: set[tuple[str, str]] = field(default_factory=set)
    logs: dict[str, str] = field(default_factory=dict)  # vertex digest -> the end of its log
    failed: tuple[str, str] = ("", "")  # the first step that failed: (digest, name)
    started: bool = False  # BuildKit reported a vertex: the build reached the engine
    said: str = ""  # the last line bake or Compose said in plain text
    cache_errors: list[str] = field(default_factory=list)  # why a registry cache was not written

    def failure(self) -> tuple[str, list[str]]:
        """The step that failed, as "[tts deps 4/6]", and its last TAIL log lines; or ("", [])."""
        digest, name = self.failed
        lines = [line for line in self.logs.get(digest, "").splitlines() if line.strip()]
        return (name.split("]")[0] + "]" if "]" in name else name), lines[-TAIL:]

    def of(self, service: str) -> list[Step]:
        """The counted steps of `service`, one per Dockerfile instruction, shared ones included.

        BuildKit may report an instruction twice for a service (its own vertex, and an identical
        one of another service that it merged with): the instruction ran if either ran.
        """
        merged: dict[tuple[str, int], Step] = {}
        for step in (s for s in self.steps.values() if service in s.services):
            seen = merged.setdefault((step.stage, step.index), step)
            if seen is not step and not step.cached:
                merged[step.stage, step.index] = step
        return list(merged.values())


def timestamp(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp with nanoseconds."""
    return datetime.fromisoformat(
        re.sub(r"(\.\d{6})\d*", r"\1", stamp).replace("Z", "+00:00")
    ).timestamp()


def read(build: Build, record: dict, service: str, show: str) -> None:
    """Add one JSON progress record to `build`, printing what `show` asks for.

    plain: every vertex as it ends, with its log; auto (or tty): each Dockerfile step that ran;
    quiet: nothing. Errors are always printed.
    """
    for vertex in record.get("vertexes") or []:
        name, error = vertex.get("name", ""), vertex.get("error", "")
        match = _NAME.match(name)
        counted = bool(match) and match["text"].split(" ", 1)[0] in COUNTED
        if counted:
            new = Step(match["stage"], int(match["index"]), match["text"])
            step = build.steps.setdefault(vertex["digest"], new)
            owner = match["service"] or service
            step.services += [owner] if owner not in step.services else []
            step.cached = bool(vertex.get("cached"))
            if vertex.get("started") and vertex.get("completed"):
                step.seconds = timestamp(vertex["completed"]) - timestamp(vertex["started"])
        cached, canceled = bool(vertex.get("cached")), error.endswith("context canceled")
        status = ("CANCELED" if canceled else f"ERROR {error}") if error else "DONE"
        status = "CACHED" if cached else status  # CANCELED: a duplicate BuildKit dropped
        loud = error and not canceled
        build.started = True
        if loud and name.startswith(CACHE_VERTEXES):
            build.cache_errors += [error] if name.startswith("exporting cache") else []
        elif loud and not build.failed[0]:
            build.failed = (vertex["digest"], name)
        wanted = loud or show == "plain" or (show != "quiet" and counted and not cached)
        ended = vertex.get("completed") or error
        if ended and wanted and (vertex["digest"], name) not in build.shown:
            build.shown.add((vertex["digest"], name))
            print(f"{' '.join(name.split())[:100]}  {status}", flush=True)
    for log in record.get("logs") or []:
        text = b64decode(log.get("data", "")).decode(errors="replace")
        digest = log.get("vertex", "")
        build.logs[digest] = (build.logs.get(digest, "") + text)[-8000:]  # enough for TAIL lines
        for line in text.splitlines() if show == "plain" else []:
            print(f"    {line}")
    if record.get("error"):
        build.error = record.get("message", "").strip().splitlines()[-1]


def summary(lines: list[str]) -> str:
    """One line saying why a step failed: apt's first download that failed; else its last error
    line (uv's `error:`, apt's `E:`) with the deepest `cause:` uv gave for it; else its last
    line."""
    fetch = next(filter(None, map(_APT_FETCH.match, lines)), None)
    if fetch:  # apt's last lines ("Unable to fetch some archives, maybe run apt-get update")
        return f"could not download {fetch['url']} ({fetch['why'].strip()})"
    errors = [i for i, line in enumerate(lines) if _ERROR.match(line)]
    if not errors:
        return lines[-1].strip() if lines else ""
    last = errors[-1]
    after = [line for line in lines[last + 1 :] if _CAUSE.match(line)]
    before = []  # an error that ends the log comes after the causes it sums up
    for line in reversed(lines[:last]):
        if not _CAUSE.match(line):
            break
        before.insert(0, line)
    said = lines[last].removeprefix("error: ").strip()
    causes = after or before
    return f"{said}: {_CAUSE.sub('', causes[-1]).strip()}" if causes else said


def no_space(build: Build) -> str:
    """The line of a failed build that says the engine's disk is full (ENOSPC), or ""."""
    said = [build.error, *build.failure()[1]]
    found = next((line for line in said if _NO_SPACE.search(line)), "")
    return _CAUSE.sub("", found).strip().removeprefix("error: ")


def download_failed(build: Build) -> bool:
    """Whether the failed step could not download packages (uv's or apt's own words)."""
    return any(_DOWNLOAD.search(line) for line in build.failure()[1])


def registry_unreachable(error: str) -> tuple[str, str]:
    """(host, cause) when a build's error is a registry request that failed, else ("", "")."""
    found = _REGISTRY.search(error)
    return (found["host"], found["cause"].strip()) if found else ("", "")


def name_taken(error: str) -> str:
    """The image another build named at the same moment as this one, making its export fail
    (two builds of the same repo at once); "" for any other error."""
    found = _NAME_TAKEN.search(error)
    return found["name"] if found else ""


def engine_dropped(error: str) -> bool:
    """Whether a build's error says its connection to the engine dropped half-way."""
    return bool(_ENGINE_DROPPED.search(error))


# Local images keep their layers uncompressed: on the containerd image store, a cold build of
# four services spent 14 s compressing layers (gzip, level 1) and 9 s unpacking them, against
# 10 s and 3.5 s uncompressed (CHANGELOG 0.4.0).
LOCAL_OUTPUT = "type=docker,compression=uncompressed"
# Pushed images are gzip, which every registry and puller reads. Forced: BuildKit would otherwise
# push a layer as a local build stored it, uncompressed; a layer already gzip (a base image's)
# is pushed as it is. docker-bake.hcl's cache_to says the same of the registry cache.
PUSH_OUTPUT = "type=registry,compression=gzip,force-compression=true"


def command(
    host: Host, names: list[str], flags: list[str], platform: str, files: tuple, push: bool
) -> list[str]:
    """The one build of `names` (all when none): buildx bake on the Compose files, as CI bakes
    them, or Compose through the engine where buildx cannot bake."""
    if not host.buildx:
        os.environ.update({"DOCKER_DEFAULT_PLATFORM": platform} if platform else {})
        extra = ["--push"] if push else []
        return host.cmd("--progress", "json", "build", *flags, *extra, *names, files=files)
    # Bake reads files outside the repo only when allowed: the build's two secret files.
    secrets = [f"--allow=fs.read={os.environ.get(key) or '/dev/null'}" for key in SECRETS]
    output = f"--set=*.output={PUSH_OUTPUT if push else LOCAL_OUTPUT}"
    platforms = [f"--set=*.platform={platform}"] if platform else []
    definition = [arg for name in files or ("compose.yaml",) for arg in ("-f", name)]
    progress = ["--progress", "rawjson", *secrets, output, *platforms, *flags]
    return [host.buildx, "bake", *definition, *progress, *names]


def take(build: Build, line: str, service: str = "", show: str = "auto") -> None:
    """One line of a build's output: a JSON progress record, or a line bake or Compose said in
    plain text, printed as it came and kept (the last one is the error of a build that fails
    without a JSON error record: bake says those in plain text)."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        print(line, end="", file=sys.stderr)
        build.said = line.strip().removeprefix("ERROR: ") or build.said
        return
    read(build, record, service, show)


def run(
    cmd: list[str], cwd: str, service: str = "", show: str = "auto", started=lambda: None
) -> Build:
    """Run a build with JSON progress (Compose's json, bake's rawjson), printing as it goes;
    `started()` runs once the build has started, before anything it says is printed. The build
    never outlives the session: process.Interrupted when a signal stopped it."""
    build, start = Build(), time.perf_counter()
    with process.group(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        started()
        for line in proc.stdout:
            take(build, line, service, show)
    build.seconds = time.perf_counter() - start
    if proc.returncode and not build.error:
        build.error = build.said or f"the build exited {proc.returncode}"
    return build
