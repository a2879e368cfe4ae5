"""The YOLO detector in another runtime, through ultralytics' own exporter, kept in the cache.

``ultralytics`` writes an export next to its source weights, so the weights are first copied
into a cache folder named after their sha256 and the export settings; ``assets/`` is never
written. ultralytics stores its own metadata (image size, class names, stride, batch) inside
the exported file and ``YOLO(path)`` reads it back, for ``.onnx`` (ONNX Runtime, CUDA provider
when available) and ``.engine`` (TensorRT) alike.

- ``onnx``: dynamic batch and image size (``dynamic=True``), graph not simplified (no
  ``onnxslim`` here).
- ``tensorrt``: an FP16 engine with a dynamic batch up to ``max_batch`` frames; needs
  ``tensorrt`` and a CUDA device.
- ``auto`` (:func:`choose_detector_backend`): TensorRT on a CUDA device when it is installed,
  else torch there; ONNX Runtime on the CPU, where it runs the same boxes about twice as fast
  as torch (``benchmarks/results/vm/``), else torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from engines.cache import default_cache_dir, file_sha256
from engines.devices import module_available

logger = logging.getLogger(__name__)

DETECTOR_BACKENDS = ("torch", "onnx", "tensorrt")


def choose_detector_backend(device: str) -> tuple[str, str]:
    """The runtime ``backend: auto`` resolves to on ``device``, and one line saying why.

    Returns:
        ``(backend, reason)``, backend one of :data:`DETECTOR_BACKENDS`.
    """
    on_cpu = device.strip().lower() == "cpu"
    if not on_cpu:
        if module_available("tensorrt"):
            return "tensorrt", "TensorRT is installed and the device is CUDA"
        return "torch", "the device is CUDA and TensorRT is not installed"
    if module_available("onnx") and module_available("onnxruntime"):
        return "onnx", "ONNX Runtime runs the exported detector faster than torch on the CPU"
    return "torch", "onnx or onnxruntime is not installed"


def resolve_detector_backend(backend: str, device: str) -> tuple[str, str]:
    """The runtime a configured ``backend`` runs on ``device``: ``auto`` resolved by
    :func:`choose_detector_backend`, any other as it is; with one line saying why."""
    if backend == "auto":
        return choose_detector_backend(device)
    return backend, "configured"


_SUFFIXES = {"onnx": ".onnx", "tensorrt": ".engine"}


def detector_export_path(
    weights: Path,
    backend: str,
    image_size: int,
    *,
    max_batch: int = 32,
    cache_dir: Path | None = None,
) -> Path:
    """Where the export of ``weights`` for ``backend`` lives in the cache."""
    if backend not in _SUFFIXES:
        raise ValueError(f"detector backend must be one of {tuple(_SUFFIXES)}, got {backend!r}")
    weights = Path(weights)
    checksum = file_sha256(weights)[:12]
    variant = f"{backend}-{image_size}" + (f"-b{max_batch}-fp16" if backend == "tensorrt" else "")
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    folder = root / "detector" / f"{weights.stem}-{checksum}" / variant
    return folder / (weights.stem + _SUFFIXES[backend])


def export_detector(
    weights: Path,
    backend: str,
    image_size: int,
    *,
    device: str = "cpu",
    max_batch: int = 32,
    cache_dir: Path | None = None,
) -> Path:
    """Export YOLO ``weights`` for ``backend`` (``"onnx"`` or ``"tensorrt"``), or reuse the
    cached export; returns the path to give ``YOLO(...)``.

    Raises:
        ImportError: ``tensorrt`` asked for but not installed.
        ValueError: ``tensorrt`` on a CPU device, or an unknown backend.
    """
    target = detector_export_path(
        weights, backend, image_size, max_batch=max_batch, cache_dir=cache_dir
    )
    if target.exists():
        logger.info("reusing exported detector %s", target)
        return target
    arguments: dict[str, object] = {"imgsz": image_size, "dynamic": True, "simplify": False}
    if backend == "tensorrt":
        if not module_available("tensorrt"):
            raise ImportError("the tensorrt detector backend needs TensorRT (pip install tensorrt)")
        if device.strip().lower() == "cpu":
            raise ValueError("the tensorrt detector backend needs a CUDA device")
        arguments.update(format="engine", batch=max_batch, quantize=16, device=device)
    else:
        arguments.update(format="onnx", batch=1, device="cpu")

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        source_copy = Path(scratch) / Path(weights).name
        shutil.copy2(weights, source_copy)
        exported = Path(str(YOLO(str(source_copy), task="detect").export(**arguments)))
        os.replace(exported, target)
    logger.info("exported detector %s for %s: %s", Path(weights).name, backend, target)
    return target
