"""Service images: their sizes, their layers, and how dive gets to see them."""

from __future__ import annotations

import re
from typing import Any

from noxtools.report import human_size, table

_NOP = re.compile(r"^/bin/sh -c #\(nop\)\s*")
# RUN steps record their build args first: "|2 A=1 B= /bin/sh -c ..."
_SHELL = re.compile(r"^(?:RUN )?(?:\|\d+ (?:\S+=\S* )*)?/bin/sh -c ")
_BUILDKIT = re.compile(r"\s*# buildkit$")


def instruction(created_by: str) -> str:
    """The Dockerfile instruction behind a history entry, as a person wrote it."""
    text = _BUILDKIT.sub("", created_by.strip())
    if not text:
        return "(base image layer)"
    if _NOP.match(text):
        return _NOP.sub("", text)
    if _SHELL.match(text):
        return "RUN " + _SHELL.sub("", text)
    return text


def history_table(history: list[dict[str, Any]]) -> str:
    """Layers biggest first: size and the instruction that made each; empty layers left out."""
    layers = sorted((h for h in history if h.get("Size")), key=lambda h: -h["Size"])
    rows = [
        (human_size(layer["Size"]), " ".join(instruction(layer.get("CreatedBy", "")).split()))
        for layer in layers
    ]
    total = sum(layer["Size"] for layer in layers)
    summary = f"total: {human_size(total)} in {len(rows)} layers"
    return table(("size", "instruction"), rows, align="rl") + "\n" + summary


def du_rows(services: dict[str, str], df_images: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """(service, image, size, shared, unique) for each built service image, largest first."""
    by_tag = {tag: image for image in df_images for tag in image.get("RepoTags") or []}
    rows = []
    for service, name in services.items():
        image = by_tag.get(name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest")
        if image is None:
            continue
        size, shared = int(image["Size"]), max(int(image.get("SharedSize") or 0), 0)
        rows.append(
            (size, (service, name, human_size(size), human_size(shared), human_size(size - shared)))
        )
    return [row for _, row in sorted(rows, key=lambda r: -r[0])]


def uses_containerd_store(info: dict[str, Any]) -> bool:
    """True when the engine keeps images in containerd, where dive's docker source cannot read."""
    status = dict(tuple(pair) for pair in info.get("DriverStatus") or [] if len(pair) == 2)
    return "containerd" in status.get("driver-type", "") or info.get("Driver") == "overlayfs"
