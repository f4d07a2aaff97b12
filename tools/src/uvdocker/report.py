"""The tables the sessions print: builds, image layers, disk use."""

from __future__ import annotations

import re
from typing import Any

from uvdocker.build import Build

# RUN steps record their build args first: "RUN |2 A=1 B= /bin/sh -c ..."; others "#(nop) ENV ..."
_SHELL = re.compile(r"^(?:RUN )?(?:\|\d+ (?:\S+=\S* )*)?/bin/sh -c (?P<nop>#\(nop\) *)?")


def human_size(size: int | None) -> str:
    """Bytes as a short human-readable size."""
    if size is None:
        return "-"
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]], align: str = "") -> str:
    """Rows under headers; `align` has an l or r per column (default: first l, others r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        )
        for row in [headers, *rows]
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *(line.rstrip() for line in lines[1:])])


def build_table(build: Build, services: list[str]) -> str:
    """Per service: seconds its steps ran, steps run and cached; then the wall time."""
    rows = []
    for service in services:
        steps = build.of(service)
        cached = sum(step.cached for step in steps)
        seconds = sum(step.seconds for step in steps if not step.cached)
        rows.append((service, f"{seconds:.1f}", str(len(steps) - cached), str(cached)))
    text = table(("service", "seconds", "run", "cached"), rows)
    return f"{text}\nwall time: {build.seconds:.1f} s"


def history_table(history: list[dict[str, Any]]) -> str:
    """An image's layers biggest first, with the instruction that made each."""
    layers = sorted((h for h in history if h.get("Size")), key=lambda h: -h["Size"])
    rows = []
    for layer in layers:
        text = layer.get("CreatedBy", "").removesuffix(" # buildkit").strip()
        shell = _SHELL.match(text)
        if shell:
            text = ("" if shell["nop"] else "RUN ") + text[shell.end() :]
        rows.append((human_size(layer["Size"]), " ".join(text.split()) or "(base image layer)"))
    total = human_size(sum(layer["Size"] for layer in layers))
    return (
        table(("size", "instruction"), rows, align="rl") + f"\ntotal: {total} in {len(rows)} layers"
    )


def du_rows(images: dict[str, str], df_images: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """(service, image, size, shared, unique) of each built service image, largest first."""
    by_tag = {tag: image for image in df_images for tag in image.get("RepoTags") or []}
    found = [(service, name, by_tag[name]) for service, name in images.items() if name in by_tag]
    rows = []
    for service, name, image in sorted(found, key=lambda f: -int(f[2]["Size"])):
        size, shared = int(image["Size"]), max(int(image.get("SharedSize") or 0), 0)
        rows.append((service, name, *map(human_size, (size, shared, size - shared))))
    return rows
