"""What a GPU service can see of the CUDA driver, without any framework installed.

`python -m shared.gpu` prints one JSON object (see probe()); `nox -s cuda_check` runs it in
each GPU image.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from typing import Any

CUDNN_LIBRARIES = ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so")


def _loads(*names: str) -> bool:
    """True when one of the shared libraries `names` can be loaded."""
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def cuda_driver_loads() -> bool:
    """True when libcuda (mounted by the NVIDIA container runtime) can be loaded."""
    return _loads("libcuda.so.1")


def _nvidia_smi_gpus() -> int | None:
    """GPUs listed by `nvidia-smi -L`; None when the binary is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _torch() -> dict[str, Any] | None:
    """torch's version, the CUDA it was built for (None: a CPU build) and whether it sees a CUDA
    device; None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    available = bool(torch.cuda.is_available())
    device = torch.cuda.get_device_name(0) if available else None
    return {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cuda_available": available,
        "device": device,
    }


def probe() -> dict[str, Any]:
    """What this container sees: nvidia-smi, GPU count, libcuda, libcudnn and torch."""
    gpus = _nvidia_smi_gpus()
    return {
        "nvidia_smi": gpus is not None,
        "gpus": gpus or 0,
        "libcuda": cuda_driver_loads(),
        "libcudnn": _loads(*CUDNN_LIBRARIES),
        "torch": _torch(),
    }


if __name__ == "__main__":
    print(json.dumps(probe()))
