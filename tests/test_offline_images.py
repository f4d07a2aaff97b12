"""The stand-in base images: the names they take, and the names they refuse."""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import tarfile

import pytest

from scripts import offline_images
from scripts.render import OFFLINE_ANSWERS


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


def archive_json(tar: tarfile.TarFile, name: str):
    return json.load(tar.extractfile(name))


def read_archive(path) -> tuple[dict, dict[str, str], list]:
    """An OCI archive's named index, its manifest digests by arch, and manifest.json (or [])."""
    with tarfile.open(path) as tar:
        (named,) = archive_json(tar, "index.json")["manifests"]
        index = archive_json(tar, offline_images.blob_path(named))
        manifests = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
        saved = archive_json(tar, "manifest.json") if "manifest.json" in tar.getnames() else []
    return named, manifests, saved


def test_a_second_arch_leaves_the_first_as_it_was(tmp_path):
    """Same rootfs, same digests: a stand-in rebuilt with arm64 keeps its amd64 manifest, so
    builds on it stay cached; docker save's manifest.json (for the classic store) only where
    there is one arch."""
    layers = {}
    for arch in ("amd64", "arm64"):
        layers[arch] = tmp_path / f"{arch}.tar"
        with tarfile.open(layers[arch], "w") as tar:
            tar.add(__file__, arcname=f"{arch}.txt")
    config = {"Cmd": ["python3"], "Labels": {offline_images.STAND_IN_LABEL: "test"}}
    one, both, image = tmp_path / "one.tar", tmp_path / "both.tar", "python:3.11-slim-bookworm"
    offline_images.oci_archive(one, image, {"amd64": layers["amd64"]}, config)
    offline_images.oci_archive(both, image, layers, config)
    named, alone, saved_one = read_archive(one)
    _, together, saved_both = read_archive(both)
    assert named["annotations"]["io.containerd.image.name"] == f"docker.io/library/{image}"
    assert alone == {"amd64": together["amd64"]} and sorted(together) == ["amd64", "arm64"]
    assert saved_one[0]["RepoTags"] == [image] and saved_both == []


def test_stand_ins_hold_this_machines_platform_and_those_asked_for():
    host = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    assert offline_images.stand_in_arches([]) == [host]
    assert offline_images.stand_in_arches(["linux/arm64"]) == sorted({host, "arm64"})
    with pytest.raises(offline_images.StandInError, match="linux/amd64 and linux/arm64"):
        offline_images.stand_in_arches(["linux/riscv64"])


def test_uv_wheel_for_each_arch_is_the_static_musl_one():
    names = [
        "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl",
        "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "uv-0.13.9-py3-none-manylinux_2_17_armv7l.manylinux2014_armv7l.musllinux_1_1_armv7l.whl",
    ]
    files = [{"filename": name} for name in names]
    assert offline_images.pick_uv_wheel(files, "0.13.9", "amd64") == files[1]
    assert offline_images.pick_uv_wheel(files, "0.13.9", "arm64") == files[2]
    assert offline_images.pick_uv_wheel(files, "0.13.10", "arm64") is None


def test_stand_ins_are_pushed_only_to_this_machine():
    offline_images.check_push(["127.0.0.1:5000/python:3.11-slim-bookworm"])
    for image in ("harbor.example.com/proxy/python:3.11", "python:3.11", "ghcr.io/astral-sh/uv:1"):
        with pytest.raises(offline_images.StandInError, match=r"only to a registry on 127\.0"):
            offline_images.check_push([image])


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


def test_builder_image_is_the_one_the_ci_files_name(rendered):
    for ci in ("github", "gitlab"):
        repo = rendered({"ci": ci}, name=ci, skip_tasks=True)
        assert offline_images.builder_image(repo) == "moby/buildkit:v0.26.3"
    # A digest no local image can have is left off: the stand-in takes the tag's name.
    pipeline = repo / ".gitlab-ci.yml"
    digest = "sha256:" + "0" * 64
    pipeline.write_text(
        pipeline.read_text().replace("buildkit:v0.26.3", f"buildkit:v0.26.3@{digest}")
    )
    assert offline_images.builder_image(repo) == "moby/buildkit:v0.26.3"
    none = rendered({"ci": "none"}, name="none", skip_tasks=True)
    with pytest.raises(offline_images.StandInError, match="no moby/buildkit:TAG"):
        offline_images.builder_image(none)


def release(folder, version: str = "v0.26.3", sums: str = "") -> str:
    """A fake BuildKit release archive in `folder` and its SHA256SUMS (or `sums`)."""
    folder.mkdir(exist_ok=True)
    archive = folder / f"buildkit-{version}.linux-{offline_images.host_arch()}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("bin/buildkitd")
        tar.addfile(info, io.BytesIO(b""))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text(sums or f"{digest}  {archive.name}\n")
    return archive.name


def test_buildkit_archive_is_checked_against_its_sums(tmp_path):
    arch = offline_images.host_arch()
    name = release(tmp_path / "good")
    assert offline_images.buildkit_archive(tmp_path / "good", arch) == (
        tmp_path / "good" / name,
        "v0.26.3",
    )
    release(tmp_path / "changed", sums=f"{'0' * 64}  {name}\n")
    with pytest.raises(offline_images.StandInError, match="sha256 does not match"):
        offline_images.buildkit_archive(tmp_path / "changed", arch)
    with pytest.raises(offline_images.StandInError, match="a BuildKit stand-in needs"):
        offline_images.buildkit_archive(tmp_path / "absent", arch)
    other = "arm64" if arch == "amd64" else "amd64"
    with pytest.raises(
        offline_images.StandInError, match=re.escape(f"names no buildkit-vX.Y.Z.linux-{other}")
    ):
        offline_images.buildkit_archive(tmp_path / "good", other)


def test_buildkit_stand_in_never_claims_another_version(tmp_path):
    release(tmp_path, "v0.26.3")
    arch = offline_images.host_arch()
    with pytest.raises(offline_images.StandInError, match=r"is BuildKit v0\.26\.3") as refused:
        offline_images.buildkit_layer(tmp_path, arch, "v0.25.1")
    assert "BUILDKIT_IMAGE to moby/buildkit:v0.26.3" in str(refused.value)


@pytest.mark.docker
def test_buildkit_stand_in_runs_buildkitd_with_buildctl_and_runc(
    engine, buildkit_release, rendered
):
    """The entrypoint is buildkitd, as upstream's; buildctl (which buildx runs inside it to check
    it is up) and Debian's runc (its OCI worker's runtime) are on PATH."""
    repo = rendered({"ci": "gitlab", **OFFLINE_ANSWERS}, skip_tasks=True)
    offline_images.ensure(repo, buildkit=buildkit_release)
    image = offline_images.builder_image(repo)
    said = {}
    for entrypoint in ("buildkitd", "buildctl", "runc"):
        out = engine.containers.run(image, ["--version"], entrypoint=[entrypoint], remove=True)
        said[entrypoint] = out.decode()
    assert said["buildkitd"].split()[2] == "v0.26.3"
    assert said["buildctl"].split()[2] == "v0.26.3"
    assert said["runc"].startswith("runc version")
    assert engine.images.get(image).attrs["Config"]["Entrypoint"] == ["buildkitd"]
