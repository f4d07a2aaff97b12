"""Tables the nox sessions print: what a build did, per service."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from devtools.buildlog import Step, summary


@dataclass
class BuildResult:
    """One build invocation: the services it built, its wall time and its steps."""

    services: list[str]
    seconds: float
    steps: list[Step] = field(default_factory=list)

    def steps_of(self, service: str) -> list[Step]:
        """Steps of `service`, shared ones included (all of them for a one-service build)."""
        if len(self.services) == 1:
            return self.steps
        return [step for step in self.steps if service in step.services]


def human_size(size: int | None) -> str:
    """Bytes as a short human-readable size."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def image_sizes(images: Iterable[str]) -> dict[str, int | None]:
    """Size in bytes of each local image (None when it does not exist)."""
    import docker

    client = docker.from_env()
    sizes: dict[str, int | None] = {}
    for image in images:
        try:
            sizes[image] = client.images.get(image).attrs["Size"]
        except docker.errors.ImageNotFound:
            sizes[image] = None
    return sizes


def build_table(
    results: list[BuildResult], images: dict[str, str], sizes: dict[str, int | None]
) -> str:
    """Service, seconds, steps run / cached and image size, one row per service built."""
    rows = [("service", "seconds", "run", "cached", "size")]
    for result in results:
        for service in result.services:
            steps = result.steps_of(service)
            run, cached = summary(steps)
            seconds = result.seconds if len(result.services) == 1 else sum(s.seconds for s in steps)
            size = sizes.get(images.get(service, ""))
            rows.append((service, f"{seconds:.1f}", str(run), str(cached), human_size(size)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    total = sum(result.seconds for result in results)
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], f"wall time: {total:.1f} s"])
