"""The layers of a saved image (`docker save`), in either store's layout.

The classic store writes each layer as an uncompressed `<id>/layer.tar`; the containerd store
writes an OCI layout whose layers are the registry blobs, usually gzip-compressed. Both list
the layers in manifest.json, in the order of the config's diff ids.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import docker


def save(client: docker.DockerClient, image: str, dest: Path) -> Path:
    """`docker save` of a local image into `dest`."""
    with dest.open("wb") as handle:
        handle.writelines(client.images.get(image).save(named=True))
    return dest


def layers(archive: tarfile.TarFile) -> Iterator[tuple[str, IO[bytes]]]:
    """(diff id, the layer's uncompressed tar stream) of each layer, bottom first."""
    manifest = json.load(archive.extractfile("manifest.json"))[0]
    config = json.load(archive.extractfile(manifest["Config"]))
    for diff_id, path in zip(config["rootfs"]["diff_ids"], manifest["Layers"], strict=True):
        raw = archive.extractfile(path)
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        yield diff_id, gzip.GzipFile(fileobj=raw) if gzipped else raw


def layer_files(saved: Path) -> Iterator[tuple[str, str, bytes]]:
    """(diff id, path, content) of every regular file in every layer."""
    with tarfile.open(saved) as archive:
        for diff_id, stream in layers(archive):
            with tarfile.open(fileobj=stream, mode="r|") as layer:
                for member in layer:
                    data = layer.extractfile(member).read() if member.isfile() else b""
                    yield diff_id, member.name, data


def layer_sizes(saved: Path, only: set[str] | None = None) -> dict[str, int]:
    """Uncompressed bytes of each layer by diff id (of the diff ids in `only`, if given)."""
    sizes = {}
    with tarfile.open(saved) as archive:
        for diff_id, stream in layers(archive):
            if only is None or diff_id in only:
                sizes[diff_id] = sum(iter(lambda s=stream: len(s.read(1 << 20)), 0))
    return sizes
