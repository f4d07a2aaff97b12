"""`nox -s cuda_check`: why a GPU service will not start (driver, engine runtime, each image)."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from uvdocker.report import table

# CUDA_CHECK_NO_GPU in .env: the exit status of a check on a host without an NVIDIA GPU.
NO_GPU_POLICIES = {"status": 3, "pass": 0, "fail": 1}
# Oldest Linux driver that runs every minor release of a CUDA major (minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
RUNTIME_FIX = (
    "install nvidia-container-toolkit, then "
    "`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
)
FIXES = {  # what to do when the check of this name fails
    **dict.fromkeys(("engine NVIDIA runtime", "GPU visible", "libcuda loads"), RUNTIME_FIX),
    "libcudnn loads": "build on a cudnn-runtime nvidia/cuda image (CUDA_IMAGE in .env)",
    "torch sees the device": "install a torch wheel built for CUDA (not +cpu) that the driver runs",
    "torch is a CUDA build": "give the service torch: cuda (its `cuda` group, PyTorch's index)",
}


class NoGpu(Exception):
    """nvidia-smi is missing or failed on this host; the message says which."""


class Check(NamedTuple):
    """One row of the report: PASS, FAIL or SKIP; `fix` is listed under the table for a FAIL."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _check(name: str, ok: object, detail: str) -> Check:
    """PASS or FAIL as `ok` says, SKIP when it is None; a FAIL's fix comes from FIXES."""
    status = "SKIP" if ok is None else "PASS" if ok else "FAIL"
    return Check(name, status, detail, FIXES.get(name.rpartition(": ")[2], ""))


def cuda_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) of "12.8", "13.0 ..." or an nvidia/cuda:X.Y image ref; else None ("N/A")."""
    match = re.match(r"(?:(?:.*/)?nvidia/cuda:)?(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def parse_nvidia_smi(text: str) -> tuple[str, tuple[int, int] | None, list[str]]:
    """Driver version, newest CUDA it runs (none before 410), GPU names from `nvidia-smi -q -x`."""
    try:
        root = ET.fromstring(text.strip())
        driver = root.findtext("driver_version", "").strip() if root.tag == "nvidia_smi_log" else ""
    except ET.ParseError:
        driver = ""
    if not driver:
        raise ValueError(f"not `nvidia-smi -q -x` output: {text.strip()[:80]!r}")
    gpus = [gpu.findtext("product_name", "?").strip() for gpu in root.findall("gpu")]
    return driver, cuda_version(root.findtext("cuda_version")), gpus


def coverage(cuda: tuple[int, int] | None, image_cuda: tuple[int, int], driver: str) -> Check:
    """Whether a driver that runs CUDA `cuda` runs an image built on CUDA `image_cuda`."""
    have = f"CUDA {cuda[0]}.{cuda[1]}" if cuda else "no CUDA version"
    need, major = f"{image_cuda[0]}.{image_cuda[1]}", image_cuda[0]
    name = f"driver covers CUDA {need}"
    if cuda and cuda >= image_cuda:
        return Check(name, "PASS", f"driver {driver} supports {have}")
    if cuda and cuda[0] == major:
        detail = f"driver {have} < {need}: runs by minor-version compatibility; PTX JIT may fail"
        return Check(name, "PASS", detail)
    least = f"driver >= {MIN_DRIVER[major]}" if major in MIN_DRIVER else "a newer driver"
    fix = f"install NVIDIA {least}, or set CUDA_IMAGE in .env to an older nvidia/cuda tag"
    return Check(name, "FAIL", f"driver {driver} reports {have}; the image needs {need}", fix)


def engine_check(info: dict[str, Any]) -> Check:
    """An "nvidia" runtime or nvidia.com/ CDI devices in `docker info` (CDISpecDirs prove none)."""
    cdi = [str(device.get("ID")) for device in info.get("DiscoveredDevices") or []]
    cdi = [device for device in cdi if device.startswith("nvidia.com/")]
    found = "nvidia runtime" if "nvidia" in (info.get("Runtimes") or {}) else ", ".join(cdi)
    return _check("engine NVIDIA runtime", found, found or "no nvidia runtime, no CDI devices")


def probe_checks(probe: dict[str, Any], has_cudnn: bool, service: str) -> list[Check]:
    """Rows for the JSON that `python -m shared.gpu` printed inside the image of `service`."""
    gpus, torch = probe.get("gpus", 0), probe.get("torch") or {}
    cudnn = "libcudnn.so" if has_cudnn else "the image flavor has no cuDNN"
    device = torch.get("device") or "torch.cuda.is_available() is False"
    torch_seen = f"torch {torch['version']}: {device}" if torch else "torch is not installed"
    return [
        _check(f"{service}: GPU visible", gpus > 0, f"{gpus} GPU(s) in nvidia-smi -L"),
        _check(f"{service}: libcuda loads", probe.get("libcuda"), "libcuda.so.1"),
        _check(f"{service}: libcudnn loads", probe.get("libcudnn") if has_cudnn else None, cudnn),
        _check(f"{service}: torch sees the device", torch.get("cuda_available"), torch_seen),
    ]


def torch_build(torch: dict[str, Any], cuda: tuple[int, int] | None, driver: str) -> Check:
    """Whether the driver runs the CUDA that an image's torch was built for (torch.version.cuda,
    its own CUDA libraries: the base image's CUDA does not count for it)."""
    built = cuda_version(torch.get("cuda"))
    if not built:
        return _check("torch is a CUDA build", False, f"torch {torch['version']} is a CPU build")
    check = coverage(cuda, built, driver)
    return check._replace(name=f"torch {torch['version']}: {check.name}")


def run_nvidia_smi() -> str:
    """`nvidia-smi -q -x` output; NoGpu when the binary is missing or fails."""
    try:
        out = subprocess.run(  # process names in the XML may be in any encoding
            ["nvidia-smi", "-q", "-x"], capture_output=True, text=True, errors="replace", timeout=60
        )
    except FileNotFoundError:
        raise NoGpu("nvidia-smi not found") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise NoGpu(f"nvidia-smi failed: {error}") from error
    if out.returncode:
        said = out.stdout.strip() or out.stderr.strip() or f"exit {out.returncode}"
        raise NoGpu(f"nvidia-smi failed: {said.splitlines()[0]}")
    return out.stdout


def _probe_image(
    client: Any, service: str, image: str, has_cudnn: bool, driver: tuple[Any, str] = (None, "")
) -> list[Check]:
    """Rows for one GPU image: not built, its probe failed, or what the probe saw; torch's CUDA
    build against the host's `driver` (the newest CUDA it runs, and its version)."""
    import docker

    gpus = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    try:
        client.images.get(image)
        output = client.containers.run(
            image, ["-m", "shared.gpu"], entrypoint="python", remove=True, device_requests=[gpus]
        )
        probe = json.loads(output.strip().splitlines()[-1])
    except docker.errors.ImageNotFound:
        return [Check(f"{service}: image", "FAIL", "not built", f"nox -s build -- {service}")]
    except docker.errors.ContainerError as error:  # the last line of its stderr says why
        said = (error.stderr or b"").decode(errors="replace").strip().splitlines() or [""]
        said = f"python -m shared.gpu exited {error.exit_status}: {said[-1]}"
    except docker.errors.APIError as error:
        said = str(error.explanation or error).splitlines()[0]
    except (ValueError, IndexError):
        said = "python -m shared.gpu printed no JSON"
    else:
        rows = [Check(f"{service}: image", "PASS", image), *probe_checks(probe, has_cudnn, service)]
        torch = probe.get("torch") or {}
        if "cuda" in torch:  # an image built before the probe said torch's CUDA lacks the key
            check = torch_build(torch, *driver)
            rows.append(check._replace(name=f"{service}: {check.name}"))
        return rows
    fix = f"docker run --rm --gpus all --entrypoint python {image} -m shared.gpu"
    return [Check(f"{service}: probe", "FAIL", said, fix)]


def run_cuda_check(
    gpu_images: dict[str, str],
    base_images: dict[str, str],
    env: Mapping[str, str],
    *,
    smi_runner: Callable[[], str] = run_nvidia_smi,
    docker_client: Any = None,
    out: Callable[[str], object] = print,
) -> int:
    """Check the driver, each base image's CUDA, the engine and each image; print; exit status."""
    policy = (env.get("CUDA_CHECK_NO_GPU") or "status").strip()
    if policy not in NO_GPU_POLICIES:
        raise ValueError(f"CUDA_CHECK_NO_GPU={policy!r} in .env: use one of status, pass, fail")
    try:
        driver, cuda, gpus = parse_nvidia_smi(smi_runner())  # ValueError on other output
    except NoGpu as error:
        out(f"no NVIDIA GPU on this host: {error} (GPU services build here but cannot run)")
        return NO_GPU_POLICIES[policy]
    have = f"CUDA {cuda[0]}.{cuda[1]}" if cuda else "no CUDA version"
    checks = [Check("driver", "PASS", f"{driver}, {have}, {', '.join(gpus) or 'no GPU listed'}")]
    for service, base in base_images.items():
        image_cuda, skip = cuda_version(base), Check("CUDA", "SKIP", f"not nvidia/cuda: {base}")
        check = coverage(cuda, image_cuda, driver) if image_cuda else skip
        checks.append(check._replace(name=f"{service}: {check.name}"))
    import docker

    try:
        info = (client := docker_client or docker.from_env()).info()
    except docker.errors.DockerException as error:
        checks.append(Check("engine", "FAIL", str(error).splitlines()[0], "start Docker"))
    else:
        checks.append(engine_check(info))
        for service, image in gpu_images.items():
            cudnn = "cudnn" in base_images.get(service, "")
            checks += _probe_image(client, service, image, cudnn, (cuda, driver))
    failed = [f"  - {c.name}: {c.fix}" for c in checks if c.status == "FAIL"]
    report = table(("check", "status", "detail"), [c[:3] for c in checks], "lll")
    out("\n".join([report, *(["", "fixes:", *failed] if failed else [])]))
    return 1 if failed else 0
