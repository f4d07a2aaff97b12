"""Parse BuildKit's plain progress output (`--progress plain`) into build steps.

Each step is one Dockerfile instruction that BuildKit executed or found in its cache, so a
report can say which steps ran and which were cached, per service and stage. When several
services are built in one invocation, BuildKit runs a step they share once and names it once
per service: such a step lists every service that named it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_HEADER = re.compile(r"^#(\d+) \[(?P<label>[^\]]+)\] (?P<text>.*)$")
_STATUS = re.compile(r"^#(\d+) (?P<status>CACHED|DONE|ERROR)\b ?(?P<seconds>[\d.]+)?")
_OUTPUT = re.compile(r"^#(\d+) \d+\.\d+ (?P<text>.*)$")
_CONTEXT = re.compile(r"^#(\d+) transferring context: (?P<size>[\d.]+)(?P<unit>[kMG]?B)\b")
_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}
_NAMING = re.compile(r"^#(\d+) naming to (?P<image>\S+)")
_FAILED = re.compile(r"^(?:\w+: )?failed to solve", re.IGNORECASE)
_LABEL = re.compile(r"^(?:(?P<service>\S+) )?(?P<stage>\S+) (?P<index>\d+)/(?P<total>\d+)$")
# Instructions that make BuildKit vertices worth counting; FROM only resolves an image.
COUNTED = {"RUN", "COPY", "ADD", "WORKDIR"}


@dataclass
class Step:
    """One Dockerfile instruction as BuildKit reported it."""

    vertex: int
    services: list[str]
    stage: str
    index: int
    instruction: str
    text: str
    status: str = "pending"
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)

    @property
    def service(self) -> str:
        """The first service BuildKit named this step for."""
        return self.services[0]

    @property
    def cached(self) -> bool:
        """True when BuildKit reused the step from its cache."""
        return self.status == "CACHED"


def parse(lines: Iterable[str], default_service: str = "") -> list[Step]:
    """The counted steps in a plain progress log, in the order BuildKit first named them."""
    steps: dict[tuple[int, int], Step] = {}
    build = 0  # vertex numbers start again at #1 in each build a log holds
    for raw in lines:
        line = raw.rstrip("\n")
        header = _HEADER.match(line)
        if header:
            vertex = int(header.group(1))
            if vertex == 1 and any(key[0] == build for key in steps):
                build += 1
            key = (build, vertex)
            label = _LABEL.match(header["label"])
            instruction = header["text"].split(" ", 1)[0].upper()
            if not label or instruction not in COUNTED:
                continue
            service = label["service"] or default_service
            if key not in steps:
                steps[key] = Step(
                    vertex=vertex,
                    services=[service],
                    stage=label["stage"],
                    index=int(label["index"]),
                    instruction=instruction,
                    text=header["text"],
                )
            elif service not in steps[key].services:
                steps[key].services.append(service)
            continue
        output = _OUTPUT.match(line)
        if output and (build, int(output.group(1))) in steps:
            steps[build, int(output.group(1))].output.append(output["text"])
            continue
        status = _STATUS.match(line)
        if status and (build, int(status.group(1))) in steps:
            step = steps[build, int(status.group(1))]
            step.status = status["status"]
            step.seconds = float(status["seconds"] or 0.0)
    return list(steps.values())


def summary(steps: Iterable[Step]) -> tuple[int, int]:
    """(steps run, steps cached)."""
    steps = list(steps)
    cached = sum(step.cached for step in steps)
    return len(steps) - cached, cached


def failure(lines: Iterable[str]) -> str:
    """The line saying why a build failed, or "" when it did not.

    Compose's own builder can exit 0 after a failed build, so the log is the evidence.
    """
    stripped = [line.strip() for line in lines]
    solve = [line for line in stripped if _FAILED.match(line)]
    errors = [line for line in stripped if (m := _STATUS.match(line)) and m["status"] == "ERROR"]
    return (solve or errors or [""])[0]


def context_bytes(lines: Iterable[str], default_service: str = "") -> dict[str, int]:
    """Bytes of build context sent per service (the last 'transferring context' of each)."""
    labels: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for raw in lines:
        line = raw.strip()
        header = _HEADER.match(line)
        if header and "build context" in header["text"]:
            words = header["label"].split()  # "core internal", or "internal" for one build
            labels[header.group(1)] = words[0] if len(words) > 1 else default_service
        sent = _CONTEXT.match(line)
        if sent and sent.group(1) in labels:
            sizes[labels[sent.group(1)]] = int(float(sent["size"]) * _UNITS[sent["unit"]])
    return sizes


def exported_images(lines: Iterable[str]) -> list[str]:
    """The images a build tagged ('naming to ...'), in the order BuildKit named them."""
    images = []
    for raw in lines:
        named = _NAMING.match(raw.strip())
        if named and named["image"].removeprefix("docker.io/") not in images:
            images.append(named["image"].removeprefix("docker.io/"))
    return images
