"""`nox -s cuda_check` of the generated repo, on real nvidia-smi outputs kept as fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from noxtools import cuda

SMI = Path(__file__).parent / "fixtures" / "nvidia-smi"
SHARED_SRC = Path(__file__).parents[1] / "template" / "shared" / "src"
HAS_NVIDIA_SMI = shutil.which("nvidia-smi") is not None
CUDA13 = "nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04"
CUDA12 = "harbor.example.com/proxy/nvidia/cuda:12.6.3-runtime-ubuntu22.04"

# file -> (driver version, CUDA version, GPU names), read off each file by eye
EXPECTED = {
    "470.57.02-geforce.txt": ("470.57.02", (11, 4), ["NVIDIA GeForce ..."]),
    "525.105.17-v100.txt": ("525.105.17", (12, 0), ["Tesla V100-SXM2..."]),
    "550.40.07-rtx4070.txt": ("550.40.07", (12, 4), ["NVIDIA GeForce RTX 4070"]),
    "575.64.03-rtx5070.txt": ("575.64.03", None, ["NVIDIA GeForce RTX 5070"]),
    "580.159.04-h100.txt": ("580.159.04", (13, 0), ["NVIDIA H100 80GB HBM3"]),
    "610.43.03-rtx3080.txt": ("610.43.03", (13, 3), ["NVIDIA GeForce RTX 3080 ..."]),
}


def smi_text(name: str) -> str:
    return (SMI / name).read_text()


def test_every_fixture_is_expected_and_sourced():
    files = sorted(p.name for p in SMI.glob("*.txt"))
    assert files == sorted(EXPECTED)
    sources = (SMI / "SOURCES.md").read_text()
    assert all(f"`{name}`" in sources for name in files)


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=lambda name: name.removesuffix(".txt"))
def test_parse_nvidia_smi(name: str):
    driver, cuda_version, gpus = EXPECTED[name]
    info = cuda.parse_nvidia_smi(smi_text(name))
    assert info == cuda.SmiInfo(driver, cuda_version, gpus)


@pytest.mark.parametrize(
    "text",
    ["", "bash: nvidia-smi: command not found", "No devices were found\n"],
    ids=["empty", "shell-error", "no-devices"],
)
def test_parse_nvidia_smi_rejects_other_text(text: str):
    with pytest.raises(ValueError, match="not nvidia-smi output") as error:
        cuda.parse_nvidia_smi(text)
    assert "\n" not in str(error.value)


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
    ],
)
def test_image_cuda_version(image: str, expected: tuple[int, int] | None):
    assert cuda.image_cuda_version(image) == expected


def test_coverage_newer_or_equal_driver_passes():
    assert cuda.coverage((13, 0), (13, 0), "580.159.04").status == "PASS"
    assert cuda.coverage((13, 0), (12, 6), "580.159.04").status == "PASS"


def test_coverage_same_major_lower_minor_passes_with_caveat():
    check = cuda.coverage((12, 4), (12, 6), "550.40.07")
    assert check.status == "PASS"
    assert "minor-version compatibility" in check.detail
    assert "PTX JIT" in check.detail


def test_coverage_older_major_fails_with_minimum_driver():
    check = cuda.coverage((12, 4), (13, 0), "550.40.07")
    assert check.status == "FAIL"
    assert "580.65.06" in check.fix
    assert "CUDA_IMAGE" in check.fix
    assert "525.60.13" in cuda.coverage((11, 4), (12, 0), "470.57.02").fix


def test_coverage_unknown_driver_cuda_fails():
    check = cuda.coverage(None, (13, 0), "575.64.03")
    assert check.status == "FAIL"
    assert "575.64.03" in check.detail
    assert "580.65.06" in check.fix


def test_min_driver_table():
    assert cuda.MIN_DRIVER == {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


RUNC = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"Runtimes": {**RUNC, "nvidia": {"path": "nvidia-container-runtime"}}}, True),
        ({"Runtimes": RUNC, "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]}, False),
        (
            {
                "Runtimes": RUNC,
                "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
                "DiscoveredDevices": [
                    {"Source": "cdi", "ID": "nvidia.com/gpu=0"},
                    {"Source": "cdi", "ID": "nvidia.com/gpu=all"},
                ],
            },
            True,
        ),
        (
            {"Runtimes": RUNC, "DiscoveredDevices": [{"Source": "cdi", "ID": "vendor.com/x=0"}]},
            False,
        ),
        ({"Runtimes": RUNC, "CDISpecDirs": None, "DiscoveredDevices": None}, False),
    ],
    ids=["nvidia-runtime", "runc-only", "cdi-nvidia", "cdi-other", "old-engine"],
)
def test_engine_has_nvidia(info: dict[str, Any], expected: bool):
    assert cuda.engine_has_nvidia(info) is expected
    assert "nvidia-ctk runtime configure --runtime=docker" in cuda.NVIDIA_RUNTIME_FIX


TORCH_OK = {"version": "2.9.0+cu130", "cuda_available": True, "device": "NVIDIA H100 80GB HBM3"}
PROBE_OK = {"nvidia_smi": True, "gpus": 1, "libcuda": True, "libcudnn": True, "torch": TORCH_OK}


def statuses(checks: list[cuda.Check]) -> dict[str, str]:
    return {check.name: check.status for check in checks}


def test_probe_checks_all_pass():
    assert statuses(cuda.probe_checks(PROBE_OK, True, "llm")) == {
        "llm: GPU visible": "PASS",
        "llm: libcuda loads": "PASS",
        "llm: libcudnn loads": "PASS",
        "llm: torch sees the device": "PASS",
    }


def test_probe_checks_skips_cudnn_and_torch():
    probe = {**PROBE_OK, "libcudnn": False, "torch": None}
    got = statuses(cuda.probe_checks(probe, False, "stt"))
    assert got["stt: libcudnn loads"] == "SKIP"
    assert got["stt: torch sees the device"] == "SKIP"


def test_probe_checks_failures_have_fixes():
    probe = {
        "nvidia_smi": False,
        "gpus": 0,
        "libcuda": False,
        "libcudnn": False,
        "torch": {"version": "2.9.0+cpu", "cuda_available": False, "device": None},
    }
    checks = cuda.probe_checks(probe, True, "llm")
    assert [c.status for c in checks] == ["FAIL"] * 4
    assert all(c.fix for c in checks)
    assert "nvidia-ctk" in checks[0].fix


def test_render_table_lists_fixes_for_fails_only():
    checks = [
        cuda.Check("driver", "PASS", "580.159.04"),
        cuda.Check("llm: image", "FAIL", "demo/llm:latest not built", "nox -s build -- llm"),
        cuda.Check("llm: libcudnn loads", "SKIP", "image flavor has no cuDNN"),
    ]
    table = cuda.render_table(checks)
    lines = table.splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert lines[1].split()[:2] == ["driver", "PASS"]
    assert lines[-2:] == ["fixes:", "  - llm: image: nox -s build -- llm"]
    assert "fixes:" not in cuda.render_table(checks[:1])


@pytest.mark.parametrize(
    ("statuses_", "no_gpu", "policy", "expected"),
    [
        (["PASS", "SKIP"], False, "status", 0),
        (["PASS", "FAIL"], False, "status", 1),
        ([], True, "status", cuda.NO_GPU_EXIT),
        ([], True, "pass", 0),
        ([], True, "fail", 1),
        (["FAIL"], False, "pass", 1),
    ],
)
def test_exit_status(statuses_: list[str], no_gpu: bool, policy: str, expected: int):
    checks = [cuda.Check("x", status, "") for status in statuses_]
    assert cuda.exit_status(checks, no_gpu, policy) == expected
    assert cuda.NO_GPU_EXIT == 3


def test_exit_status_rejects_unknown_policy():
    with pytest.raises(ValueError, match="status, pass, fail") as error:
        cuda.exit_status([], True, "ignore")
    assert "\n" not in str(error.value)


class FakeDocker:
    """What run_cuda_check uses of docker.DockerClient: info(), images.get(), containers.run()."""

    def __init__(self, info: dict[str, Any], probes: dict[str, dict[str, Any]]):
        self._info = info
        self.probes = probes  # image -> JSON its probe prints; absent: image not built
        self.runs: list[dict[str, Any]] = []
        self.images = SimpleNamespace(get=self._get)
        self.containers = SimpleNamespace(run=self._run)

    def info(self) -> dict[str, Any]:
        return self._info

    def _get(self, image: str) -> object:
        if image not in self.probes:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return object()

    def _run(self, image: str, command: list[str], **kwargs: Any) -> bytes:
        self.runs.append({"image": image, "command": command, **kwargs})
        return (json.dumps(self.probes[image]) + "\n").encode()


NVIDIA_INFO = {"Runtimes": {**RUNC, "nvidia": {"path": "nvidia-container-runtime"}}}


def run_check(smi: str, client: FakeDocker, **kwargs: Any) -> tuple[int, str]:
    printed: list[str] = []
    code = cuda.run_cuda_check(
        kwargs.pop("gpu_images", {"llm": "demo/llm:latest"}),
        kwargs.pop("base_images", {"llm": CUDA13}),
        kwargs.pop("env", {}),
        smi_runner=lambda: smi_text(smi),
        docker_client=client,
        out=printed.append,
    )
    return code, "\n".join(printed)


def status_of(table: str, name: str) -> str:
    [line] = [line for line in table.splitlines() if line.startswith(name + " ")]
    return line[len(name) :].split()[0]


def test_run_cuda_check_h100_all_pass():
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    code, table = run_check("580.159.04-h100.txt", client)
    assert code == 0, table
    assert "FAIL" not in table
    assert "580.159.04, CUDA 13.0, NVIDIA H100 80GB HBM3" in table
    assert "llm: driver covers CUDA 13.0" in table
    assert "llm: torch sees the device" in table
    [run] = client.runs
    assert run["image"] == "demo/llm:latest"
    assert run["command"] == ["-m", "shared.gpu"]
    assert run["entrypoint"] == "python"
    assert run["remove"] is True
    [request] = run["device_requests"]
    assert request["Count"] == -1
    assert request["Capabilities"] == [["gpu"]]


def test_run_cuda_check_old_driver_and_missing_image():
    client = FakeDocker(NVIDIA_INFO, {"demo/llm:latest": PROBE_OK})
    code, table = run_check(
        "550.40.07-rtx4070.txt",
        client,
        gpu_images={"llm": "demo/llm:latest", "stt": "demo/stt:latest"},
        base_images={"llm": CUDA13, "stt": CUDA12},
    )
    assert code == 1
    assert status_of(table, "llm: driver covers CUDA 13.0") == "FAIL"
    assert status_of(table, "stt: driver covers CUDA 12.6") == "PASS"  # minor-version compat
    assert "  - llm: driver covers CUDA 13.0: install NVIDIA driver >= 580.65.06" in table
    assert "  - stt: image: nox -s build -- stt" in table
    assert [run["image"] for run in client.runs] == ["demo/llm:latest"]


def test_run_cuda_check_engine_without_nvidia_runtime():
    probe = {**PROBE_OK, "gpus": 0, "libcuda": False, "torch": None}
    client = FakeDocker({"Runtimes": RUNC}, {"demo/llm:latest": probe})
    code, table = run_check("580.159.04-h100.txt", client)
    assert code == 1
    assert "engine NVIDIA runtime" in table
    assert "sudo nvidia-ctk runtime configure --runtime=docker" in table


def test_run_cuda_check_no_gpu_message_from_runner():
    def failing() -> str:
        raise cuda.NoGpu("nvidia-smi failed: No devices were found")

    printed: list[str] = []
    code = cuda.run_cuda_check({}, {}, {}, smi_runner=failing, out=printed.append)
    assert code == cuda.NO_GPU_EXIT
    assert printed == [
        "no NVIDIA GPU on this host: nvidia-smi failed: No devices were found "
        "(GPU services build here but cannot run)"
    ]


def test_run_cuda_check_rejects_bad_policy_before_checking():
    with pytest.raises(ValueError, match="CUDA_CHECK_NO_GPU"):
        cuda.run_cuda_check({}, {}, {"CUDA_CHECK_NO_GPU": "yes"}, smi_runner=lambda: "")


@pytest.mark.skipif(HAS_NVIDIA_SMI, reason="this host has nvidia-smi")
@pytest.mark.parametrize(("env", "expected"), [({}, 3), ({"CUDA_CHECK_NO_GPU": "pass"}, 0)])
def test_run_cuda_check_on_this_host_without_gpu(env: dict[str, str], expected: int):
    printed: list[str] = []
    code = cuda.run_cuda_check({"llm": "demo/llm:latest"}, {"llm": CUDA13}, env, out=printed.append)
    assert code == expected
    assert printed == [
        "no NVIDIA GPU on this host: nvidia-smi not found (GPU services build here but cannot run)"
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
    assert probe["torch"] is None or set(probe["torch"]) == {"version", "cuda_available", "device"}
