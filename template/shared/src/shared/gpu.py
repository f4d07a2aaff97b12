"""What a GPU service can see of the CUDA driver, without any framework installed."""

from __future__ import annotations

import ctypes


def cuda_driver_loads() -> bool:
    """True when libcuda (mounted by the NVIDIA container runtime) can be loaded."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True
