"""The stand-in base images: the names they take, and the names they refuse."""

from __future__ import annotations

import pytest

from scripts import offline_images


def test_base_images_are_read_from_the_dockerfiles(rendered):
    repo = rendered(
        {"image_mirror": "harbor.example.com/proxy/", "python_version": "3.11"}, skip_tasks=True
    )
    assert offline_images.base_images(repo) == [
        "harbor.example.com/proxy/ghcr.io/astral-sh/uv:0.13.9",
        "harbor.example.com/proxy/python:3.11-slim-bookworm",
        "harbor.example.com/proxy/nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04",
    ]


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("python:3.11-slim-bookworm", "python"),
        ("harbor.example.com/proxy/python:3.13-slim-bookworm", "python"),
        ("ghcr.io/astral-sh/uv:0.13.9", "uv"),
        ("nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04", "cuda"),
    ],
)
def test_kind_of(image, kind):
    assert offline_images.kind_of(image) == kind


def test_unknown_image_has_no_recipe():
    with pytest.raises(offline_images.StandInError, match="no stand-in recipe for redis:7"):
        offline_images.kind_of("redis:7")


@pytest.mark.docker
def test_stand_ins_never_claim_another_python(offline_repo, engine, rendered):
    """Debian's Python is 3.11: a python:3.12 stand-in is refused, and nothing is tagged."""
    repo = rendered({"python_version": "3.12"}, skip_tasks=True)
    with pytest.raises(offline_images.StandInError, match=r"ships Python 3\.11") as refused:
        offline_images.build_python(engine, "python:3.12-slim-bookworm")
    assert "python_version=3.11" in str(refused.value)
    assert not engine.images.list(name="python:3.12-slim-bookworm")
    assert "python:3.12-slim-bookworm" in offline_images.base_images(repo)


@pytest.mark.docker
def test_stand_ins_carry_what_the_dockerfiles_expect(offline_repo, engine):
    python = engine.containers.run(
        "python:3.11-slim-bookworm",
        [
            "sh",
            "-c",
            "python --version && python3 -m venv --help >/dev/null && "
            "ls /etc/apt/apt.conf.d/docker-clean",
        ],
        remove=True,
    ).decode()
    assert python.startswith("Python 3.11.")
    uv = engine.containers.run("ghcr.io/astral-sh/uv:0.13.9", ["--version"], remove=True)
    assert uv.decode().split()[:2] == ["uv", "0.13.9"]
    cuda = engine.images.get("nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04")
    assert "CUDA_VERSION=13.0.1" in cuda.attrs["Config"]["Env"]
