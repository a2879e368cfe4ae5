"""Device strings (``"cpu"``, ``"cuda"``, ``"cuda:N"``) and what the machine has, asked lazily.

Nothing here imports torch at module import time; the CUDA questions import it when asked.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def cuda_device_index(device: str) -> int | None:
    """``None`` for ``"cpu"``, ``N`` for ``"cuda:N"``, ``0`` for ``"cuda"``.

    Raises:
        ValueError: any other string.
    """
    device = device.strip().lower()
    if device == "cpu":
        return None
    if device == "cuda":
        return 0
    kind, _, index = device.partition(":")
    if kind == "cuda" and index.isdigit():
        return int(index)
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def gpu_name(index: int = 0) -> str:
    """The CUDA device's name as torch reports it (e.g. ``"NVIDIA H100 80GB HBM3"``)."""
    import torch

    return str(torch.cuda.get_device_name(index))


def module_available(name: str) -> bool:
    """Whether ``import name`` would find a module, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def host_is_pinned(tensor: Any) -> bool:
    """Whether a CPU torch tensor lies in page-locked memory (``False`` without CUDA).

    A NumPy view of a pinned tensor (``pipeline.clip_batch.ClipBatchBuffer``) wrapped again
    by ``torch.from_numpy`` is found pinned too: CUDA is asked about the address itself.
    """
    try:
        return bool(tensor.is_pinned())
    except RuntimeError:  # torch without a CUDA driver
        return False


class PinnedUpload:
    """Host clips to a CUDA device through one reused page-locked buffer (grown as needed); a
    tensor that is page-locked already (the clip buffer's) goes up as it is. The caller copies
    each batch's output back (synchronising) before the next upload overwrites the buffer.
    ``torch_module``: the backend's own ``torch`` (tests run the CUDA calls on the host)."""

    def __init__(self, torch_module: Any) -> None:
        self._torch = torch_module
        self._pinned: Any = None

    def to_device(self, host: Any, device: Any) -> Any:
        """``host`` (a CPU torch tensor) on ``device``, copied without blocking."""
        if host_is_pinned(host):  # the caller's page-locked buffer, valid until its output
            return host.to(device, non_blocking=True)
        pinned = self._pinned
        if pinned is None or pinned.numel() < host.numel() or pinned.dtype != host.dtype:
            pinned = self._pinned = self._torch.empty(
                host.numel(), dtype=host.dtype, pin_memory=True
            )
        staging = pinned[: host.numel()].view(host.shape)
        staging.copy_(host)
        return staging.to(device, non_blocking=True)
