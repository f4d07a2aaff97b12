"""`nox -s cuda_check` of the generated repo, on real `nvidia-smi -q -x` outputs as fixtures."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from uvdocker import cuda

SMI = Path(__file__).parent / "fixtures" / "nvidia-smi"
SHARED_SRC = Path(__file__).parents[1] / "template" / "shared" / "src"
HAS_NVIDIA_SMI = shutil.which("nvidia-smi") is not None
CUDA13 = "nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04"
CUDA12 = "harbor.example.com/proxy/nvidia/cuda:12.6.3-runtime-ubuntu22.04"

# file -> (driver version, CUDA version, GPU names), read off each file by eye
EXPECTED = {
    "390.94-4x-tesla-m10.xml": ("390.94", None, ["Tesla M10"] * 4),
    "418.43-gtx-1660-ti.xml": ("418.43", (10, 1), ["Graphics Device"]),
    "515.105.01-tesla-t4.xml": ("515.105.01", (11, 7), ["Tesla T4"]),
    "570.124.04-rtx-3060.xml": ("570.124.04", (12, 8), ["NVIDIA GeForce RTX 3060"]),
    "590.44.01-2x-rtx-2070.xml": ("590.44.01", (13, 1), ["NVIDIA GeForce RTX 2070"] * 2),
}


def smi_text(name: str) -> str:
    return (SMI / name).read_text()


def test_every_fixture_is_expected_and_sourced():
    files = sorted(p.name for p in SMI.iterdir() if p.name != "SOURCES.md")
    assert files == sorted(EXPECTED)
    listed = re.findall(r"^\| `([^`]+)` \|", (SMI / "SOURCES.md").read_text(), re.MULTILINE)
    assert sorted(listed) == files


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=lambda name: name.removesuffix(".xml"))
def test_parse_nvidia_smi(name: str):
    assert cuda.parse_nvidia_smi(smi_text(name)) == EXPECTED[name]


def test_parse_nvidia_smi_cuda_not_available():
    """A driver that reports <cuda_version>N/A</cuda_version> (no real output of it was found)."""
    text = smi_text("570.124.04-rtx-3060.xml")
    assert text.count("<cuda_version>12.8</cuda_version>") == 1
    text = text.replace("<cuda_version>12.8</cuda_version>", "<cuda_version>N/A</cuda_version>")
    assert cuda.parse_nvidia_smi(text) == ("570.124.04", None, ["NVIDIA GeForce RTX 3060"])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bash: nvidia-smi: command not found",
        "No devices were found\n",
        "| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |\n",
        '<?xml version="1.0" ?>\n<html><driver_version>1</driver_version></html>\n',
        '<?xml version="1.0" ?>\n<nvidia_smi_log>\n</nvidia_smi_log>\n',
        smi_text("570.124.04-rtx-3060.xml")[:2000],  # cut off mid-stream
    ],
    ids=["empty", "shell-error", "no-devices", "plain-table", "other-xml", "no-driver", "cut"],
)
def test_parse_nvidia_smi_rejects_other_text(text: str):
    with pytest.raises(ValueError, match="not `nvidia-smi -q -x` output") as error:
        cuda.parse_nvidia_smi(text)
    assert "\n" not in str(error.value)
    assert len(str(error.value)) < 140


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (CUDA13, (13, 0)),
        (CUDA12, (12, 6)),
        ("nvcr.io/nvidia/cuda:11.8.0-base-ubuntu22.04", (11, 8)),
        ("nvidia/cuda:12.4.1-runtime-ubuntu22.04@sha256:" + "0" * 64, (12, 4)),
        ("python:3.12-slim-bookworm", None),
        ("nvidia/cuda", None),
        ("example.com/nvidia/cuda-tools:12.4", None),
        ("library/python:3.12-slim-bookworm", None),
        ("12.8", (12, 8)),
        ("13.0.1", (13, 0)),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_cuda_version(image: str | None, expected: tuple[int, int] | None):
    assert cuda.cuda_version(image) == expected


def test_coverage_newer_or_equal_driver_passes():
    assert cuda.coverage((13, 1), (13, 0), "590.44.01").status == "PASS"
    same = cuda.coverage((13, 0), (13, 0), "580.65.06")
    assert (same.status, same.detail) == ("PASS", "driver 580.65.06 supports CUDA 13.0")
    assert cuda.coverage((13, 1), (12, 6), "590.44.01").status == "PASS"


def test_coverage_same_major_lower_minor_passes_with_caveat():
    check = cuda.coverage((12, 8), (12, 9), "570.124.04")
    assert (check.name, check.status) == ("driver covers CUDA 12.9", "PASS")
    assert "minor-version compatibility" in check.detail
    assert "PTX JIT" in check.detail


def test_coverage_older_major_fails_with_minimum_driver():
    check = cuda.coverage((12, 8), (13, 0), "570.124.04")
    assert check.status == "FAIL"
    assert "570.124.04" in check.detail
    assert "580.65.06" in check.fix
    assert "CUDA_IMAGE" in check.fix
    assert "525.60.13" in cuda.coverage((11, 7), (12, 6), "515.105.01").fix
    assert "450.80.02" in cuda.coverage((10, 1), (11, 8), "418.43").fix
    assert "a newer driver" in cuda.coverage((13, 1), (14, 0), "590.44.01").fix


def test_coverage_no_driver_cuda_fails():
    check = cuda.coverage(None, (13, 0), "390.94")
    assert check.status == "FAIL"
    assert "390.94 reports no CUDA version" in check.detail
    assert "580.65.06" in check.fix


def test_min_driver_table():
    assert cuda.MIN_DRIVER == {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


RUNC = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
NVIDIA_INFO = {"Runtimes": {**RUNC, "nvidia": {"path": "nvidia-container-runtime"}}}
CDI = [{"Source": "cdi", "ID": "nvidia.com/gpu=0"}, {"Source": "cdi", "ID": "nvidia.com/gpu=all"}]


@pytest.mark.parametrize(
    ("info", "status", "detail"),
    [
        (NVIDIA_INFO, "PASS", "nvidia runtime"),
        ({"Runtimes": RUNC, "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]}, "FAIL", "no nvidia"),
        ({"Runtimes": RUNC, "DiscoveredDevices": CDI}, "PASS", "nvidia.com/gpu=0, nvidia"),
        ({"Runtimes": RUNC, "DiscoveredDevices": [{"ID": "vendor.com/x=0"}]}, "FAIL", "no nvidia"),
        ({"Runtimes": RUNC, "CDISpecDirs": None, "DiscoveredDevices": None}, "FAIL", "no nvidia"),
    ],
    ids=["nvidia-runtime", "runc-only", "cdi-nvidia", "cdi-other", "old-engine"],
)
def test_engine_check(info: dict[str, Any], status: str, detail: str):
    check = cuda.engine_check(info)
    assert (check.name, check.status) == ("engine NVIDIA runtime", status)
    assert check.detail.startswith(detail)
    assert "nvidia-ctk runtime configure --runtime=docker" in check.fix


TORCH_OK = {
    "version": "2.9.0+cu130",
    "cuda": "13.0",
    "cuda_available": True,
    "device": "NVIDIA GeForce RTX 2070",
}
PROBE_OK = {"nvidia_smi": True, "gpus": 2, "libcuda": True, "libcudnn": True, "torch": TORCH_OK}


def statuses(checks: list[cuda.Check]) -> dict[str, str]:
    return {check.name: check.status for check in checks}


def test_probe_checks_all_pass():
    checks = cuda.probe_checks(PROBE_OK, True, "llm")
    assert statuses(checks) == {
        "llm: GPU visible": "PASS",
        "llm: libcuda loads": "PASS",
        "llm: libcudnn loads": "PASS",
        "llm: torch sees the device": "PASS",
    }
    assert checks[0].detail == "2 GPU(s) in nvidia-smi -L"
    assert checks[3].detail == "torch 2.9.0+cu130: NVIDIA GeForce RTX 2070"


def test_probe_checks_skips_cudnn_and_torch():
    probe = {**PROBE_OK, "libcudnn": False, "torch": None}
    checks = cuda.probe_checks(probe, False, "stt")
    assert statuses(checks)["stt: libcudnn loads"] == "SKIP"
    assert statuses(checks)["stt: torch sees the device"] == "SKIP"
    assert [c.detail for c in checks[2:]] == [
        "the image flavor has no cuDNN",
        "torch is not installed",
    ]


def test_probe_checks_failures_have_fixes():
    torch = {"version": "2.9.0+cpu", "cuda": None, "cuda_available": False, "device": None}
    probe = {"nvidia_smi": False, "gpus": 0, "libcuda": False, "libcudnn": False, "torch": torch}
    checks = cuda.probe_checks(probe, True, "llm")
    assert [c.status for c in checks] == ["FAIL"] * 4
    assert "nvidia-ctk" in checks[0].fix and "nvidia-ctk" in checks[1].fix
    assert "cudnn-runtime" in checks[2].fix
    assert "not +cpu" in checks[3].fix
    assert checks[3].detail == "torch 2.9.0+cpu: torch.cuda.is_available() is False"


def test_torch_build_against_the_driver():
    """torch's own CUDA (torch.version.cuda) is what the driver must run, not the base image's."""
    ok = cuda.torch_build(TORCH_OK, (13, 1), "590.44.01")
    assert (ok.name, ok.status) == ("torch 2.9.0+cu130: driver covers CUDA 13.0", "PASS")
    old = cuda.torch_build(TORCH_OK, (12, 8), "570.124.04")
    assert old.status == "FAIL" and "580.65.06" in old.fix
    cpu = {**TORCH_OK, "version": "2.9.0+cpu", "cuda": None}
    check = cuda.torch_build(cpu, (13, 1), "590.44.01")
    assert (check.status, check.detail) == ("FAIL", "torch 2.9.0+cpu is a CPU build")
    assert "torch: cuda" in check.fix


class FakeDocker:
    """What run_cuda_check uses of docker.DockerClient: info(), images.get(), containers.run().
    `smi`: what nvidia-smi prints in a container (or what containers.run raises for it)."""

    def __init__(
        self, info: dict[str, Any] | Exception, probes: dict[str, Any], smi: Any = "", **more: Any
    ):
        self._info, self.smi = info, smi
        self.probes = probes  # image -> JSON its probe prints, or what containers.run raises
        self.present = set(probes) | set(more.get("present", ()))  # images the engine has
        self.runs: list[dict[str, Any]] = []
        self.images = SimpleNamespace(get=self._get)
        self.containers = SimpleNamespace(run=self._run)

    def info(self) -> dict[str, Any]:
        if isinstance(self._info, Exception):
            raise self._info
        return self._info

    def _get(self, image: str) -> object:
        if image not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return object()

    def _run(self, image: str, command: list[str], **kwargs: Any) -> bytes:
        self.runs.append({"image": image, "command": command, **kwargs})
        probe = self.smi if kwargs["entrypoint"] == "nvidia-smi" else self.probes[image]
        probe = probe.encode() if isinstance(probe, str) else probe
        if isinstance(probe, Exception):
            raise probe
        return probe if isinstance(probe, bytes) else (json.dumps(probe) + "\n").encode()


REMOTE = "ssh://me@gpu-box"
LOCAL = "unix:///var/run/docker.sock"


def not_here() -> str:
    raise AssertionError("this host's nvidia-smi ran")


def run_check(smi: str, client: FakeDocker, **kwargs: Any) -> tuple[int, str]:
    """run_cuda_check on a remote engine whose containers' nvidia-smi prints the fixture `smi`
    (where=LOCAL, local=FIXTURE: a local engine, and this host's nvidia-smi printing FIXTURE)."""
    printed: list[str] = []
    client.smi = client.smi or (smi_text(smi) if smi else "")
    local = kwargs.pop("local", None)
    code = cuda.run_cuda_check(
        kwargs.pop("gpu_images", {"llm": "demo/llm:latest"}),
        kwargs.pop("base_images", {"llm": CUDA13}),
        kwargs.pop("env", {}),
        docker_client=client,
        where=kwargs.pop("where", LOCAL if local else REMOTE),
        requests=kwargs.pop("requests", None),
        smi_runner=(lambda: smi_text(local)) if local else not_here,
        out=printed.append,
    )
    assert not kwargs, kwargs
    return code, "\n".join(printed)


def probes(client: FakeDocker) -> list[dict[str, Any]]:
    """The probe containers run (python -m shared.gpu), not nvidia-smi's."""
    return [run for run in client.runs if run["entrypoint"] == "python"]


def status_of(table: str, name: str) -> str:
    [line] = [line for line in table.splitlines() if line.startswith(name + " ")]
    return line[len(name) :].split()[0]


def test_run_cuda_check_two_gpus_all_pass():
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    code, table = run_check("590.44.01-2x-rtx-2070.xml", client)
    assert code == 0, table
    assert "FAIL" not in table and "fixes:" not in table
    assert table.splitlines()[0].split() == ["check", "status", "detail"]
    detail = "590.44.01, CUDA 13.1, NVIDIA GeForce RTX 2070, NVIDIA GeForce RTX 2070"
    assert re.search(r"^driver +PASS +" + re.escape(detail) + "$", table, re.MULTILINE)
    for name in ("llm: driver covers CUDA 13.0", "engine NVIDIA runtime", "llm: image"):
        assert status_of(table, name) == "PASS"
    assert re.search(r"^engine +PASS +ssh://me@gpu-box$", table, re.MULTILINE)
    assert re.search(r"^GPU in a container +PASS +nvidia-smi in demo/llm:latest$", table, re.M)
    assert status_of(table, "llm: torch sees the device") == "PASS"
    assert status_of(table, "llm: torch 2.9.0+cu130: driver covers CUDA 13.0") == "PASS"
    smi, run = client.runs  # nvidia-smi first, in the service's own image, with its GPUs
    assert (smi["image"], smi["entrypoint"], smi["command"]) == (
        "demo/llm:latest",
        "nvidia-smi",
        ["-q", "-x"],
    )
    assert smi["remove"] is True and smi["device_requests"] == run["device_requests"]
    assert run["image"] == "demo/llm:latest"
    assert run["command"] == ["-m", "shared.gpu"]
    assert run["entrypoint"] == "python"
    assert run["remove"] is True
    [request] = run["device_requests"]
    assert request["Count"] == -1
    assert request["Capabilities"] == [["gpu"]]


def test_run_cuda_check_12x_driver_and_missing_image():
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    code, table = run_check(
        "570.124.04-rtx-3060.xml",
        client,
        gpu_images={"llm": "demo/llm:latest", "stt": "demo/stt:latest"},
        base_images={"llm": CUDA13, "stt": CUDA12},
    )
    assert code == 1
    assert status_of(table, "llm: driver covers CUDA 13.0") == "FAIL"
    assert status_of(table, "stt: driver covers CUDA 12.6") == "PASS"
    assert status_of(table, "stt: image") == "FAIL"
    assert status_of(table, "llm: torch 2.9.0+cu130: driver covers CUDA 13.0") == "FAIL"
    fixes = table.split("\nfixes:\n")[1].splitlines()
    assert fixes[0].startswith("  - llm: driver covers CUDA 13.0: install NVIDIA driver >= 580.65")
    assert fixes[1].startswith("  - llm: torch 2.9.0+cu130: driver covers CUDA 13.0: install")
    assert fixes[2:] == ["  - stt: image: nox -s build -- stt"]
    assert [run["image"] for run in probes(client)] == ["demo/llm:latest"]


def test_run_cuda_check_minor_version_compatibility():
    torch = {**TORCH_OK, "version": "2.9.0+cu128", "cuda": "12.8"}
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": {**PROBE_OK, "torch": torch}})
    base = {"llm": "nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04"}
    code, table = run_check("570.124.04-rtx-3060.xml", client, base_images=base)
    assert code == 0, table
    assert status_of(table, "llm: driver covers CUDA 12.9") == "PASS"
    assert "runs by minor-version compatibility" in table
    assert status_of(table, "llm: torch 2.9.0+cu128: driver covers CUDA 12.8") == "PASS"


@pytest.mark.parametrize(
    ("smi", "base", "detail", "min_driver"),
    [
        ("515.105.01-tesla-t4.xml", CUDA12, "515.105.01 reports CUDA 11.7", "525.60.13"),
        ("418.43-gtx-1660-ti.xml", CUDA12, "418.43 reports CUDA 10.1", "525.60.13"),
        ("390.94-4x-tesla-m10.xml", CUDA13, "390.94 reports no CUDA version", "580.65.06"),
    ],
)
def test_run_cuda_check_old_drivers_fail(smi: str, base: str, detail: str, min_driver: str):
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    code, table = run_check(smi, client, base_images={"llm": base})
    assert code == 1
    [row] = [line for line in table.splitlines() if line.startswith("llm: driver covers CUDA ")]
    assert row.split()[5:7] == ["FAIL", "driver"]
    assert detail in row
    assert f"install NVIDIA driver >= {min_driver}" in table


def test_run_cuda_check_skips_a_base_that_is_not_nvidia_cuda():
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    base = {"llm": "registry.example.com/gpu-base:1"}
    code, table = run_check("590.44.01-2x-rtx-2070.xml", client, base_images=base)
    assert code == 0, table
    assert status_of(table, "llm: CUDA") == "SKIP"
    assert "not nvidia/cuda: registry.example.com/gpu-base:1" in table
    assert status_of(table, "llm: libcudnn loads") == "SKIP"  # no "cudnn" in the base image


def test_run_cuda_check_local_engine_without_nvidia_runtime():
    """A local engine with no runtime yet: this host's nvidia-smi gives the driver, and the
    table says what to install."""
    probe = {**PROBE_OK, "gpus": 0, "libcuda": False, "torch": None}
    client = FakeDocker({"Runtimes": RUNC}, {"demo/llm:latest": probe})
    code, table = run_check("", client, local="590.44.01-2x-rtx-2070.xml")
    assert code == 1
    for name in ("engine NVIDIA runtime", "llm: GPU visible", "llm: libcuda loads"):
        assert status_of(table, name) == "FAIL"
    assert status_of(table, "GPU on this host") == "PASS"
    assert status_of(table, "driver") == "PASS"
    assert "sudo nvidia-ctk runtime configure --runtime=docker" in table
    assert [run["entrypoint"] for run in client.runs] == ["python"]  # no nvidia-smi container


def test_run_cuda_check_remote_engine_without_a_gpu_runtime():
    """An engine on another machine without a GPU runtime: one line naming it, the no-GPU
    status, and this host's nvidia-smi never read (it says nothing of that machine)."""
    client = FakeDocker({"Runtimes": RUNC}, {"demo/llm:latest": PROBE_OK})
    code, said = run_check("590.44.01-2x-rtx-2070.xml", client)
    assert code == 3 and client.runs == []
    assert said == (
        "the engine at ssh://me@gpu-box offers no GPU runtime (no nvidia runtime, no CDI devices):"
        " GPU services build there but cannot run; on that machine, install"
        " nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker &&"
        " sudo systemctl restart docker`"
    )
    code, _ = run_check("", FakeDocker({"Runtimes": RUNC}, {}), env={"CUDA_CHECK_NO_GPU": "pass"})
    assert code == 0


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (
            docker.errors.APIError(
                "500", explanation='could not select device driver "nvidia" with capabilities'
            ),
            "nvidia-smi in a container of demo/llm:latest failed: could not select device driver",
        ),
        (
            docker.errors.ContainerError(
                "c", 9, ["-q", "-x"], "demo/llm:latest", b"Failed to initialize NVML\n"
            ),
            "nvidia-smi in demo/llm:latest exited 9: Failed to initialize NVML",
        ),
    ],
    ids=["no-device-driver", "nvml"],
)
def test_run_cuda_check_remote_runtime_without_a_gpu(raised: Exception, said: str):
    """A runtime, but nvidia-smi fails in the container: one line naming the engine, no GPU."""
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK}, smi=raised)
    code, printed = run_check("", client)
    assert code == 3
    assert printed.startswith(
        "no NVIDIA GPU reaches containers on the engine at ssh://me@gpu-box: "
    )
    assert said in printed and "\n" not in printed


def test_run_cuda_check_runs_nvidia_smi_in_the_base_image_before_any_build():
    """No service image yet: nvidia-smi runs in the base the engine has; the probe says build."""
    client = FakeDocker(NVIDIA_INFO, {}, present={CUDA13})
    code, table = run_check("590.44.01-2x-rtx-2070.xml", client)
    assert code == 1
    assert re.search(rf"^GPU in a container +PASS +nvidia-smi in {re.escape(CUDA13)}$", table, re.M)
    assert status_of(table, "driver") == "PASS" and status_of(table, "llm: image") == "FAIL"
    nothing = FakeDocker(NVIDIA_INFO, {})
    code, said = run_check("590.44.01-2x-rtx-2070.xml", nothing)
    assert code == 1 and said == (
        "no NVIDIA GPU reaches containers on the engine at ssh://me@gpu-box: the engine has no"
        " image of llm to run it in: nox -s build -- llm"
    )


def test_run_cuda_check_local_engine_whose_containers_see_no_gpu():
    """A local runtime whose containers cannot reach the GPU that this host's nvidia-smi sees:
    the container row fails with the runtime's fix, the driver still comes from this host."""
    raised = docker.errors.APIError("500", explanation="nvidia-container-cli: initialization error")
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK}, smi=raised)
    code, table = run_check("", client, local="590.44.01-2x-rtx-2070.xml")
    assert code == 1
    assert status_of(table, "GPU in a container") == "FAIL"
    assert status_of(table, "GPU on this host") == "PASS" and status_of(table, "driver") == "PASS"
    assert "  - GPU in a container: install nvidia-container-toolkit" in table


def test_run_cuda_check_gives_each_service_its_compose_gpus():
    """The containers get the GPUs as Compose requests them for the service (device 1 only)."""
    service = {
        "deploy": {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "device_ids": ["1"], "capabilities": ["gpu"]}]
                }
            }
        }
    }
    requests = cuda.device_requests(service)
    assert requests == [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["1"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    every = {
        "deploy": {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]
                }
            }
        }
    }
    assert cuda.device_requests(every)[0]["Count"] == -1
    assert cuda.device_requests({"image": "x"}) == []
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    code, _ = run_check("590.44.01-2x-rtx-2070.xml", client, requests={"llm": requests})
    assert code == 0
    assert [run["device_requests"] for run in client.runs] == [requests, requests]


def test_run_cuda_check_engine_unreachable():
    client = FakeDocker(docker.errors.DockerException("Error while fetching server API"), {})
    code, said = run_check("590.44.01-2x-rtx-2070.xml", client)
    assert code == 1
    assert (
        said == "Docker Engine not reachable at ssh://me@gpu-box: Error while fetching server API"
    )


@pytest.mark.parametrize(
    ("raised", "detail"),
    [
        (
            docker.errors.ContainerError(
                "c", 1, ["-m", "shared.gpu"], "demo/llm:latest", b"Traceback\nImportError: x\n"
            ),
            "python -m shared.gpu exited 1: ImportError: x",
        ),
        (
            docker.errors.APIError("500", explanation='could not select device driver ""'),
            'could not select device driver ""',
        ),
        (b"", "python -m shared.gpu printed no JSON"),
        (b"Segmentation fault\n", "python -m shared.gpu printed no JSON"),
    ],
    ids=["exited", "api-error", "no-output", "not-json"],
)
def test_run_cuda_check_probe_fails(raised: Any, detail: str):
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": raised})
    code, table = run_check("590.44.01-2x-rtx-2070.xml", client)
    assert code == 1
    assert re.search(r"^llm: probe +FAIL +" + re.escape(detail) + "$", table, re.MULTILINE)
    assert "  - llm: probe: docker run --rm --gpus all --entrypoint python demo/llm:latest" in table


def test_run_cuda_check_rejects_other_smi_output():
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK}, smi="No devices were found\n")
    with pytest.raises(ValueError, match="not `nvidia-smi -q -x` output: 'No devices were found'"):
        run_check("", client)


@pytest.mark.parametrize(
    ("policy", "expected"), [(None, 3), ("status", 3), ("pass", 0), ("fail", 1)]
)
def test_run_cuda_check_no_gpu_policy(policy: str | None, expected: int):
    def failing() -> str:
        raise cuda.NoGpu("nvidia-smi failed: No devices were found")

    printed: list[str] = []
    env = {} if policy is None else {"CUDA_CHECK_NO_GPU": f" {policy}\n"}
    client = FakeDocker({"Runtimes": RUNC}, {})
    code = cuda.run_cuda_check(
        {}, {}, env, docker_client=client, where=LOCAL, smi_runner=failing, out=printed.append
    )
    assert code == expected
    assert printed == [
        "no NVIDIA GPU on this host: nvidia-smi failed: No devices were found, and the engine "
        "offers no GPU runtime (GPU services build here but cannot run)"
    ]


def test_run_cuda_check_fails_on_a_gpu_host_whatever_the_policy():
    client = FakeDocker(NVIDIA_INFO, {})  # the image is not built
    code, _ = run_check("590.44.01-2x-rtx-2070.xml", client, env={"CUDA_CHECK_NO_GPU": "pass"})
    assert code == 1


def test_run_cuda_check_rejects_bad_policy_before_checking():
    def not_called() -> str:
        raise AssertionError("nvidia-smi ran")

    client = FakeDocker(AssertionError("the engine was asked"), {})
    with pytest.raises(ValueError, match="use one of status, pass, fail") as error:
        cuda.run_cuda_check(
            {}, {}, {"CUDA_CHECK_NO_GPU": "yes"}, docker_client=client, smi_runner=not_called
        )
    assert str(error.value) == "CUDA_CHECK_NO_GPU='yes' in .env: use one of status, pass, fail"


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Writes an `nvidia-smi` script first on PATH: it prints `out` and exits `status`."""

    def write(out: str, status: int = 0) -> Path:
        (tmp_path / "out").write_text(out)
        script = tmp_path / "nvidia-smi"
        script.write_text(
            f'#!/bin/sh\necho "$@" >"{tmp_path}/args"\ncat "{tmp_path}/out"\nexit {status}\n'
        )
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        return tmp_path / "args"

    return write


def test_run_nvidia_smi_asks_for_xml(fake_smi):
    args = fake_smi(smi_text("590.44.01-2x-rtx-2070.xml"))
    assert cuda.run_nvidia_smi() == smi_text("590.44.01-2x-rtx-2070.xml")
    assert args.read_text().split() == ["-q", "-x"]


def test_run_nvidia_smi_failure_is_no_gpu(fake_smi):
    fake_smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9)
    with pytest.raises(cuda.NoGpu, match=r"^nvidia-smi failed: NVIDIA-SMI has failed because"):
        cuda.run_nvidia_smi()


@pytest.mark.skipif(HAS_NVIDIA_SMI, reason="this host has nvidia-smi")
@pytest.mark.parametrize(("env", "expected"), [({}, 3), ({"CUDA_CHECK_NO_GPU": "pass"}, 0)])
def test_run_cuda_check_on_this_host_without_gpu(env: dict[str, str], expected: int):
    printed: list[str] = []
    client = FakeDocker({"Runtimes": RUNC}, {})  # a local engine without a GPU runtime
    gpu, base = {"llm": "demo/llm:latest"}, {"llm": CUDA13}
    code = cuda.run_cuda_check(
        gpu, base, env, docker_client=client, where=LOCAL, out=printed.append
    )
    assert code == expected
    assert printed == [
        "no NVIDIA GPU on this host: nvidia-smi not found, and the engine offers no GPU runtime "
        "(GPU services build here but cannot run)"
    ]


def test_shared_gpu_probe_prints_json():
    env = {**os.environ, "PYTHONPATH": str(SHARED_SRC)}
    out = subprocess.run(
        [sys.executable, "-m", "shared.gpu"],
        cwd=SHARED_SRC,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    probe = json.loads(out.stdout)
    assert set(probe) == {"nvidia_smi", "gpus", "libcuda", "libcudnn", "torch"}
    assert probe["nvidia_smi"] is HAS_NVIDIA_SMI
    assert (probe["gpus"] > 0) if HAS_NVIDIA_SMI else (probe["gpus"] == 0)
    keys = {"version", "cuda", "cuda_available", "device"}
    assert probe["torch"] is None or set(probe["torch"]) == keys
