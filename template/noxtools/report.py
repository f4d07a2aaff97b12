"""Tables the nox sessions print: what a build did, per service."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from noxtools import engine
from noxtools.buildlog import Step, summary


@dataclass
class BuildResult:
    """One build invocation: the services it built, its wall time and its steps."""

    services: list[str]
    seconds: float
    steps: list[Step] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # service -> image it was tagged as

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
    return {image: engine.image_size(image) for image in images}


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]], align: str = "") -> str:
    """Rows under headers; `align` has an l or r per column (default: first l, others r)."""
    all_rows = [headers, *rows]
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(headers))]
    lines = [
        "  ".join(
            cell.ljust(w) if side == "l" else cell.rjust(w)
            for cell, w, side in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in all_rows
    ]
    return "\n".join([lines[0], "-" * max(len(line) for line in lines), *lines[1:]])


def build_table(
    results: list[BuildResult], images: dict[str, str], sizes: dict[str, int | None]
) -> str:
    """Service, seconds, steps run / cached and image size, one row per service built."""
    rows = []
    for result in results:
        for service in result.services:
            steps = result.steps_of(service)
            run, cached = summary(steps)
            seconds = result.seconds if len(result.services) == 1 else sum(s.seconds for s in steps)
            size = sizes.get(images.get(service, ""))
            rows.append((service, f"{seconds:.1f}", str(run), str(cached), human_size(size)))
    total = sum(result.seconds for result in results)
    headers = ("service", "seconds", "run", "cached", "size")
    return f"{table(headers, rows)}\nwall time: {total:.1f} s"
