"""The small protocol every inference engine follows, and the lazy backend registry.

An engine wraps one exported or in-memory model and turns a batch of inputs into a batch of
outputs. Backends are registered by name with a dotted import path, so that importing
``engines`` never imports torch, onnxruntime or tensorrt; a backend's module is imported only
when that backend is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from reid_models.clip_input import FLOAT_CLIPS, UINT8_CROPS, InputFormat


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is asked to load.

    Attributes:
        model: encoder name known to ``reid_models.factory`` (e.g. ``"tp"``).
        weights: path of the model file (checkpoint, ONNX file or serialized engine).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        options: backend-specific settings (precision, batch buckets, ...).
    """

    model: str
    weights: Path | None
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A loaded model: ``infer`` maps a batch to a batch.

    For ReID encoders the input is float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]`` and the
    output float32 ``(batch, embedding_dim)``, L2-normalised (see ``reid_models.contract``).
    An engine whose graph takes uint8 BGR crops ``(batch, T, H, W, 3)`` instead says so in an
    ``input_format`` attribute (``"uint8_bgr"``, from its model file's metadata); read it with
    :func:`engine_input_format`, which gives ``"float32_rgb"`` for an engine without one.
    """

    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch; returns a NumPy array whose first axis matches ``batch``."""
        ...


def engine_input_format(engine: Engine) -> InputFormat:
    """What ``engine.infer`` takes: its ``input_format`` attribute, else float clips."""
    value = getattr(engine, "input_format", FLOAT_CLIPS)
    return UINT8_CROPS if value == UINT8_CROPS else FLOAT_CLIPS


BackendName = Literal["torch", "onnxruntime", "tensorrt", "auto"]
"""The backends a config may name (``encoder.backend``); each is a key of :data:`BACKENDS`."""

BACKENDS: dict[str, str] = {
    "torch": "engines.torch_backend:TorchEngine",
    "onnxruntime": "engines.onnxruntime_backend:OnnxRuntimeEngine",
    "tensorrt": "engines.tensorrt_backend:TensorRTEngine",
    "auto": "engines.auto:AutoEngine",
}


def register_backend(name: str, target: str) -> None:
    """Register a backend class by ``"module.path:ClassName"`` without importing it."""
    BACKENDS[name] = target


def load_engine(backend: str, spec: EngineSpec) -> Engine:
    """Import the backend's module and build its engine from ``spec``.

    Raises:
        ValueError: when ``backend`` is not registered, naming the known ones.
    """
    if backend not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown engine backend {backend!r}; choose one of: {known}")
    module_name, class_name = BACKENDS[backend].split(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    engine: Engine = engine_class.load(spec)
    return engine
