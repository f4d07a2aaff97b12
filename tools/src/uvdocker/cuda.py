"""`nox -s cuda_check`: why a GPU service will not start (driver, engine runtime, each image).

Everything is asked of the engine, which may be another machine (an ssh:// context): the GPU
runtime it offers (`docker info`), and the driver as `nvidia-smi -q -x` reports it in a
container given the GPUs the way Compose gives them to the service. This host's own nvidia-smi
is read only when the engine is local and cannot run that container (no runtime yet).
"""

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
    """nvidia-smi is missing or failed (on this host, or in a container); the message says which."""


class NoImage(Exception):
    """The engine has no GPU image to run nvidia-smi in; the message says what to build."""


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


def device_requests(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The GPUs a service of `docker compose config` reserves, as the DeviceRequests Compose
    sends the engine for them: `count: all` is -1, the capabilities are one set."""
    import docker

    deploy = service.get("deploy") or {}
    devices = ((deploy.get("resources") or {}).get("reservations") or {}).get("devices") or []
    requests = []
    for device in devices:
        ids = device.get("device_ids") or []
        count = device.get("count")
        requests.append(
            docker.types.DeviceRequest(
                driver=device.get("driver") or "",
                count=int(count) if count is not None else (0 if ids else -1),
                device_ids=ids,
                capabilities=[device.get("capabilities") or []],
                options=device.get("options") or {},
            )
        )
    return requests


ALL_GPUS = {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]]}


def engine_nvidia_smi(
    client: Any, images: list[tuple[str, str]], requests: Mapping[str, list]
) -> tuple[str, str]:
    """(`nvidia-smi -q -x` output, the image it ran in): run in a container of the first image
    of `images` ((service, image) pairs) that the engine has, given that service's GPUs as
    Compose gives them; NoGpu when it fails, NoImage when the engine has none of the images."""
    import docker

    for service, image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            continue
        try:
            output = client.containers.run(
                image,
                ["-q", "-x"],
                entrypoint="nvidia-smi",
                remove=True,
                device_requests=list(requests.get(service) or [ALL_GPUS]),
            )
        except docker.errors.ContainerError as error:  # its stderr, or its status
            said = (error.stderr or b"").decode(errors="replace").strip().splitlines() or ["?"]
            raise NoGpu(f"nvidia-smi in {image} exited {error.exit_status}: {said[-1]}") from None
        except docker.errors.APIError as error:  # no such device driver, no nvidia-smi mounted
            said = str(error.explanation or error).splitlines()[0]
            raise NoGpu(f"nvidia-smi in a container of {image} failed: {said}") from None
        return output.decode(errors="replace"), image
    first = images[0][0] if images else ""
    raise NoImage(f"the engine has no image of {first} to run it in: nox -s build -- {first}")


def _probe_image(
    client: Any,
    service: str,
    image: str,
    has_cudnn: bool,
    driver: tuple[Any, str] = (None, ""),
    requests: list | None = None,
) -> list[Check]:
    """Rows for one GPU image: not built, its probe failed, or what the probe saw; torch's CUDA
    build against the engine's `driver` (the newest CUDA it runs, and its version). The probe
    gets the GPUs the service reserves (`requests`; all of them by default)."""
    import docker

    try:
        client.images.get(image)
        output = client.containers.run(
            image,
            ["-m", "shared.gpu"],
            entrypoint="python",
            remove=True,
            device_requests=list(requests or [ALL_GPUS]),
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
    docker_client: Any,
    where: str = "unix:///var/run/docker.sock",
    requests: Mapping[str, list] | None = None,
    smi_runner: Callable[[], str] = run_nvidia_smi,
    out: Callable[[str], object] = print,
) -> int:
    """Check the engine's GPU runtime and driver, each base image's CUDA, and each image; print
    the table; return the exit status. `where`: the engine's endpoint (this host's nvidia-smi
    is read only when it is local); `requests`: each service's GPUs as Compose requests them."""
    import docker

    policy = (env.get("CUDA_CHECK_NO_GPU") or "status").strip()
    if policy not in NO_GPU_POLICIES:
        raise ValueError(f"CUDA_CHECK_NO_GPU={policy!r} in .env: use one of status, pass, fail")
    requests = requests or {}
    try:
        runtime = engine_check(docker_client.info())
    except docker.errors.DockerException as error:
        out(f"Docker Engine not reachable at {where}: {str(error).splitlines()[0]}")
        return 1
    local = where.startswith(("unix://", "npipe://"))
    checks, smi = [Check("engine", "PASS", where), runtime], ""
    if runtime.status == "PASS":
        images = [*gpu_images.items(), *base_images.items()]  # a service's own image first
        try:
            smi, ran_in = engine_nvidia_smi(docker_client, images, requests)
            checks.append(Check("GPU in a container", "PASS", f"nvidia-smi in {ran_in}"))
        except (NoGpu, NoImage) as error:
            if not local:
                out(f"no NVIDIA GPU reaches containers on the engine at {where}: {error}")
                return NO_GPU_POLICIES[policy] if isinstance(error, NoGpu) else 1
            checks.append(Check("GPU in a container", "FAIL", str(error), RUNTIME_FIX))
    elif not local:
        out(
            f"the engine at {where} offers no GPU runtime (no nvidia runtime, no CDI devices): "
            f"GPU services build there but cannot run; on that machine, {RUNTIME_FIX}"
        )
        return NO_GPU_POLICIES[policy]
    if not smi:  # a local engine that cannot run it: this host's own
        try:
            smi = smi_runner()
            checks.append(Check("GPU on this host", "PASS", "nvidia-smi (the engine is local)"))
        except NoGpu as error:
            runs = "" if runtime.status == "PASS" else ", and the engine offers no GPU runtime"
            why = f"{error}{runs} (GPU services build here but cannot run)"
            out(f"no NVIDIA GPU on this host: {why}")
            return NO_GPU_POLICIES[policy]
    driver, cuda, gpus = parse_nvidia_smi(smi)  # ValueError on other output
    have = f"CUDA {cuda[0]}.{cuda[1]}" if cuda else "no CUDA version"
    listed = ", ".join(gpus) or "no GPU listed"
    checks.insert(1, Check("driver", "PASS", f"{driver}, {have}, {listed}"))
    for service, base in base_images.items():
        image_cuda, skip = cuda_version(base), Check("CUDA", "SKIP", f"not nvidia/cuda: {base}")
        check = coverage(cuda, image_cuda, driver) if image_cuda else skip
        checks.append(check._replace(name=f"{service}: {check.name}"))
    for service, image in gpu_images.items():
        cudnn = "cudnn" in base_images.get(service, "")
        probe = (docker_client, service, image, cudnn, (cuda, driver), requests.get(service))
        checks += _probe_image(*probe)
    failed = [f"  - {c.name}: {c.fix}" for c in checks if c.status == "FAIL"]
    report = table(("check", "status", "detail"), [c[:3] for c in checks], "lll")
    out("\n".join([report, *(["", "fixes:", *failed] if failed else [])]))
    return 1 if failed else 0
