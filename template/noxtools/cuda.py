"""Why a GPU service will not start: the host driver, the engine's NVIDIA runtime, each image.

`nox -s cuda_check` calls run_cuda_check(); the rest are small pure functions it is built from.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NO_GPU_EXIT = 3
# CUDA_CHECK_NO_GPU in .env: the exit status of a check on a host without an NVIDIA GPU.
NO_GPU_POLICIES = {"status": NO_GPU_EXIT, "pass": 0, "fail": 1}
# Oldest Linux driver that runs every minor release of a CUDA major (minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
NVIDIA_RUNTIME_FIX = (
    "install nvidia-container-toolkit and run "
    "`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
)

# "| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |"; drivers from
# 610 on say "KMD Version" and "CUDA UMD Version"; before 410 there is no CUDA field at all.
_SMI_HEADER = re.compile(r"NVIDIA-SMI\s+(\S+)")
_DRIVER = re.compile(r"(?:Driver|KMD) Version:\s*(\S+)")
_CUDA = re.compile(r"CUDA (?:UMD )?Version:\s*(\S+)")
# First line of a GPU in the table: index, name, persistence mode, then the PCI bus id.
_GPU_ROW = re.compile(
    r"^\|\s*\d+\s+(.+?)\s+\S+\s*\|\s*[0-9A-Fa-f]+:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\."
)
_CUDA_IMAGE = re.compile(r"(?:^|/)nvidia/cuda:(\d+)\.(\d+)")


class NoGpu(Exception):
    """nvidia-smi is missing or failed on this host; the message says which."""


@dataclass(frozen=True)
class SmiInfo:
    """What the host's nvidia-smi reports: driver, the newest CUDA it supports, GPU names."""

    driver_version: str
    cuda_version: tuple[int, int] | None
    gpus: list[str]


@dataclass(frozen=True)
class Check:
    """One row of the report; `fix` says what to do when status is FAIL."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _cuda_tuple(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def _cuda_str(version: tuple[int, int] | None) -> str:
    return f"{version[0]}.{version[1]}" if version else "unknown"


def parse_nvidia_smi(text: str) -> SmiInfo:
    """Parse plain `nvidia-smi` output; ValueError when `text` is not such output."""
    header = next((line for line in text.splitlines() if _SMI_HEADER.search(line)), None)
    if header is None:
        first = text.strip().splitlines()[0][:80] if text.strip() else "empty output"
        raise ValueError(f"not nvidia-smi output (no 'NVIDIA-SMI' header line): {first}")
    driver = _DRIVER.search(header) or _SMI_HEADER.search(header)
    cuda = _CUDA.search(header)
    gpus = [match[1] for line in text.splitlines() if (match := _GPU_ROW.match(line))]
    return SmiInfo(driver[1], _cuda_tuple(cuda[1]) if cuda else None, gpus)


def image_cuda_version(image: str) -> tuple[int, int] | None:
    """CUDA major.minor of an nvidia/cuda image ref (behind any mirror); None for other images."""
    match = _CUDA_IMAGE.search(image)
    return (int(match[1]), int(match[2])) if match else None


def _driver_fix(image_cuda: tuple[int, int]) -> str:
    major = image_cuda[0]
    need = f"driver >= {MIN_DRIVER[major]}" if major in MIN_DRIVER else "a driver"
    return (
        f"install NVIDIA {need} (CUDA {major}.x), or set CUDA_IMAGE in .env to an older "
        "nvidia/cuda tag the driver supports"
    )


def coverage(
    driver_cuda: tuple[int, int] | None, image_cuda: tuple[int, int], driver_version: str
) -> Check:
    """Whether a driver supporting CUDA `driver_cuda` runs an image built on `image_cuda`."""
    name = f"driver covers CUDA {_cuda_str(image_cuda)}"
    have, need = _cuda_str(driver_cuda), _cuda_str(image_cuda)
    if driver_cuda is None:
        detail = f"driver {driver_version} reports no CUDA version; the image needs {need}"
        return Check(name, FAIL, detail, _driver_fix(image_cuda))
    if driver_cuda >= image_cuda:
        return Check(name, PASS, f"driver {driver_version} supports CUDA {have}")
    if driver_cuda[0] == image_cuda[0]:
        detail = (
            f"driver CUDA {have} < {need}: runs by CUDA minor-version compatibility, "
            "but PTX JIT of newer kernels may fail"
        )
        return Check(name, PASS, detail)
    detail = f"driver {driver_version} supports CUDA {have}, older than the image's {need}"
    return Check(name, FAIL, detail, _driver_fix(image_cuda))


def engine_has_nvidia(info: dict[str, Any]) -> bool:
    """Whether `docker info` shows an NVIDIA runtime or NVIDIA devices discovered through CDI.

    CDISpecDirs alone proves nothing (it lists /etc/cdi with or without an NVIDIA spec), so only
    the "nvidia" runtime and DiscoveredDevices such as nvidia.com/gpu=0 (API 1.50+) count.
    """
    if "nvidia" in (info.get("Runtimes") or {}):
        return True
    devices = info.get("DiscoveredDevices") or []
    return any(str(device.get("ID", "")).startswith("nvidia.com/") for device in devices)


def probe_checks(probe: dict[str, Any], flavor_has_cudnn: bool, service: str) -> list[Check]:
    """Rows for the JSON that `python -m shared.gpu` printed inside the image of `service`."""
    gpus = probe.get("gpus", 0)
    checks = [
        Check(f"{service}: GPU visible", PASS, f"{gpus} GPU(s) in nvidia-smi -L")
        if gpus
        else Check(
            f"{service}: GPU visible",
            FAIL,
            "no GPU in the container with --gpus all",
            "the NVIDIA container runtime did not pass the GPU through: " + NVIDIA_RUNTIME_FIX,
        ),
        Check(f"{service}: libcuda loads", PASS, "libcuda.so.1")
        if probe.get("libcuda")
        else Check(
            f"{service}: libcuda loads",
            FAIL,
            "libcuda.so.1 cannot be loaded",
            "libcuda is mounted from the host by the NVIDIA runtime: " + NVIDIA_RUNTIME_FIX,
        ),
    ]
    if not flavor_has_cudnn:
        checks.append(Check(f"{service}: libcudnn loads", SKIP, "image flavor has no cuDNN"))
    elif probe.get("libcudnn"):
        checks.append(Check(f"{service}: libcudnn loads", PASS, "libcudnn.so"))
    else:
        fix = "build on a cudnn-runtime nvidia/cuda image (CUDA_IMAGE in .env)"
        checks.append(Check(f"{service}: libcudnn loads", FAIL, "libcudnn cannot be loaded", fix))
    torch = probe.get("torch")
    name = f"{service}: torch sees the device"
    if torch is None:
        checks.append(Check(name, SKIP, "torch is not installed"))
    elif torch.get("cuda_available"):
        checks.append(Check(name, PASS, f"torch {torch['version']}: {torch.get('device')}"))
    else:
        detail = f"torch {torch['version']}: torch.cuda.is_available() is False"
        fix = "install a torch wheel built for CUDA (not +cpu) whose CUDA the driver supports"
        checks.append(Check(name, FAIL, detail, fix))
    return checks


def render_table(checks: list[Check]) -> str:
    """The checks as a check/status/detail table, then a "fixes:" list for each FAIL."""
    rows = [("check", "status", "detail"), *((c.name, c.status, c.detail) for c in checks)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
    fixes = [f"  - {c.name}: {c.fix}" for c in checks if c.status == FAIL and c.fix]
    return "\n".join([*lines, *(["", "fixes:", *fixes] if fixes else [])])


def _no_gpu_exit(policy: str) -> int:
    if policy not in NO_GPU_POLICIES:
        allowed = ", ".join(NO_GPU_POLICIES)
        raise ValueError(f"CUDA_CHECK_NO_GPU={policy!r} in .env: use one of {allowed}")
    return NO_GPU_POLICIES[policy]


def exit_status(checks: list[Check], no_gpu: bool, no_gpu_policy: str = "status") -> int:
    """1 on any FAIL; on a host without a GPU what the policy says (NO_GPU_EXIT by default)."""
    no_gpu_exit = _no_gpu_exit(no_gpu_policy)
    if any(check.status == FAIL for check in checks):
        return 1
    return no_gpu_exit if no_gpu else 0


def run_nvidia_smi() -> str:
    """Plain `nvidia-smi` output; NoGpu when the binary is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise NoGpu("nvidia-smi not found")
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise NoGpu(f"nvidia-smi failed: {error}") from error
    if out.returncode != 0:
        said = (out.stdout.strip() or out.stderr.strip() or f"exit {out.returncode}").splitlines()
        raise NoGpu(f"nvidia-smi failed: {said[0]}")
    return out.stdout


def _probe_image(client: Any, service: str, image: str, has_cudnn: bool) -> list[Check]:
    """Rows for one service image: missing, probe failed, or the probe's own rows."""
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return [
            Check(f"{service}: image", FAIL, f"{image} not built", f"nox -s build -- {service}")
        ]
    try:
        output = client.containers.run(
            image,
            ["-m", "shared.gpu"],
            entrypoint="python",
            remove=True,
            device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])],
        )
        lines = (output.decode() if isinstance(output, bytes) else str(output)).strip()
        probe = json.loads(lines.splitlines()[-1])
    except docker.errors.ContainerError as error:
        said = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        detail = f"python -m shared.gpu exited {error.exit_status}: {said[-1] if said else ''}"
        fix = f"run `docker run --rm --gpus all --entrypoint python {image} -m shared.gpu`"
        return [Check(f"{service}: probe", FAIL, detail.rstrip(": "), fix)]
    except docker.errors.APIError as error:
        detail = str(error.explanation or error).splitlines()[0]
        return [Check(f"{service}: probe", FAIL, detail, NVIDIA_RUNTIME_FIX)]
    except (ValueError, IndexError):
        detail = "python -m shared.gpu printed no JSON"
        return [Check(f"{service}: probe", FAIL, detail, f"nox -s build -- {service}")]
    return [Check(f"{service}: image", PASS, image), *probe_checks(probe, has_cudnn, service)]


def run_cuda_check(
    gpu_images: dict[str, str],
    base_images: dict[str, str],
    env: Mapping[str, str],
    *,
    smi_runner: Callable[[], str] = run_nvidia_smi,
    docker_client: Any = None,
    out: Callable[[str], object] = print,
) -> int:
    """Check the host driver, the engine and each GPU image; print a table; return the exit code.

    gpu_images maps each GPU service to its image name, base_images to its nvidia/cuda base image
    ref; env is .env, whose CUDA_CHECK_NO_GPU says what a host without a GPU exits with.
    """
    policy = (env.get("CUDA_CHECK_NO_GPU") or "status").strip()
    _no_gpu_exit(policy)  # a bad value is an error on every host, not just GPU-less ones
    try:
        text = smi_runner()
    except NoGpu as error:
        out(f"no NVIDIA GPU on this host: {error} (GPU services build here but cannot run)")
        return exit_status([], True, policy)
    checks: list[Check] = []
    try:
        smi = parse_nvidia_smi(text)
    except ValueError as error:
        smi = SmiInfo("unknown", None, [])
        checks.append(Check("driver", FAIL, str(error), "run nvidia-smi and fix the driver"))
    else:
        detail = f"{smi.driver_version}, CUDA {_cuda_str(smi.cuda_version)}, " + (
            ", ".join(smi.gpus) or "no GPU listed"
        )
        checks.append(Check("driver", PASS, detail))
    for service, base in base_images.items():
        image_cuda = image_cuda_version(base)
        if image_cuda is None:
            checks.append(Check(f"{service}: CUDA", SKIP, f"not an nvidia/cuda image: {base}"))
            continue
        check = coverage(smi.cuda_version, image_cuda, smi.driver_version)
        checks.append(dataclasses.replace(check, name=f"{service}: {check.name}"))

    import docker

    try:
        client = docker_client or docker.from_env()
        info = client.info()
    except docker.errors.DockerException as error:
        checks.append(Check("engine", FAIL, str(error).splitlines()[0], "start Docker"))
    else:
        if engine_has_nvidia(info):
            how = "nvidia runtime" if "nvidia" in (info.get("Runtimes") or {}) else "CDI devices"
            checks.append(Check("engine NVIDIA runtime", PASS, how))
        else:
            detail = f"runtimes: {', '.join(info.get('Runtimes') or {}) or 'none'}"
            checks.append(Check("engine NVIDIA runtime", FAIL, detail, NVIDIA_RUNTIME_FIX))
        for service, image in gpu_images.items():
            has_cudnn = "cudnn" in base_images.get(service, "")
            checks.extend(_probe_image(client, service, image, has_cudnn))
    out(render_table(checks))
    return exit_status(checks, False, policy)
