"""``backend: auto``: the fastest runtime this machine has, chosen once at load time and logged.

Order, for a CUDA device (``device: cuda``, ``cuda:N`` or ``auto`` with a GPU present):

1. TensorRT, when ``tensorrt`` imports (an FP16 engine, built or taken from the cache);
2. ONNX Runtime with the CUDA execution provider;
3. torch on CUDA with FP16 autocast.

A candidate that fails to load is logged with its error and the next one is tried. On the CPU
(``device: cpu``, or ``auto`` without a GPU) ONNX Runtime and torch are both loaded and timed
on a short random batch in the input each takes (``auto_timing_batch`` clips, default 4;
``auto_timing_repeats`` runs, default 2, after one warm-up), and the faster one is kept. The
choice and the reason are logged at INFO and kept on the returned engine as ``auto_choice``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engines.base import Engine, EngineSpec, engine_input_format, load_engine
from engines.devices import cuda_available, module_available
from reid_models.clip_input import FLOAT_CLIPS, UINT8_CROPS, InputFormat, input_shape

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendChoice:
    """What ``auto`` picked.

    Attributes:
        backend: registered backend name.
        device: device it runs on.
        options: options it was loaded with.
        reason: one line saying why.
        timings_ms: median batch latency per timed candidate (CPU choice only).
    """

    backend: str
    device: str
    options: dict[str, Any]
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)


def tensorrt_available() -> bool:
    """Whether ``tensorrt`` can be imported (checked without importing it)."""
    return module_available("tensorrt")


def onnxruntime_cuda_available() -> bool:
    """Whether ONNX Runtime is installed with its CUDA execution provider."""
    if not module_available("onnxruntime"):
        return False
    from engines.onnxruntime_backend import CUDA_PROVIDER, available_providers

    return CUDA_PROVIDER in available_providers()


def _resolve_device(device: str) -> str:
    if device.strip().lower() != "auto":
        return device
    return "cuda" if cuda_available() else "cpu"


def _gpu_candidates() -> list[tuple[str, dict[str, Any], str]]:
    candidates: list[tuple[str, dict[str, Any], str]] = []
    if tensorrt_available():
        candidates.append(
            ("tensorrt", {"precision": "fp16"}, "TensorRT is installed and CUDA is present")
        )
    else:
        logger.info("auto: tensorrt is not installed")
    if onnxruntime_cuda_available():
        candidates.append(("onnxruntime", {}, "ONNX Runtime has the CUDA execution provider"))
    else:
        logger.info("auto: ONNX Runtime has no CUDA execution provider here")
    candidates.append(("torch", {"precision": "fp16"}, "torch CUDA with FP16 autocast"))
    return candidates


def _median_latency_ms(engine: Engine, batch: np.ndarray, repeats: int) -> float:
    engine.infer(batch)  # warm-up: first-call allocations and kernel selection
    latencies = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        engine.infer(batch)
        latencies.append((time.perf_counter() - started) * 1000.0)
    return float(np.median(latencies))


def _timing_batch(spec: EngineSpec, input_format: InputFormat = FLOAT_CLIPS) -> np.ndarray:
    """A random batch in what the engine takes: float clips, or uint8 crops."""
    from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH

    options = spec.options
    batch = int(options.get("auto_timing_batch", 4))
    clip_length = int(options.get("clip_length", 8))
    generator = np.random.default_rng(0)
    shape = tuple(
        int(size)
        for size in input_shape(input_format, batch, clip_length, INPUT_HEIGHT, INPUT_WIDTH)
    )
    if input_format == UINT8_CROPS:
        return generator.integers(0, 256, shape, dtype=np.uint8)
    return generator.random(shape, dtype=np.float32)


def choose_cpu_engine(spec: EngineSpec) -> tuple[Engine, BackendChoice]:
    """Load ONNX Runtime (CPU) and torch (CPU), time both, keep the faster.

    Raises:
        RuntimeError: neither loads.
    """
    batch = _timing_batch(spec)  # float clips: its shape names the batch in the reason
    repeats = int(spec.options.get("auto_timing_repeats", 2))
    timings: dict[str, float] = {}
    engines: dict[str, Engine] = {}
    failures: dict[str, str] = {}
    for backend in ("onnxruntime", "torch"):
        if backend == "onnxruntime" and not module_available("onnxruntime"):
            failures[backend] = "not installed"
            continue
        try:
            engine = load_engine(backend, replace(spec, device="cpu"))
            engine_batch = _timing_batch(spec, engine_input_format(engine))
            timings[backend] = _median_latency_ms(engine, engine_batch, repeats)
            engines[backend] = engine
        except Exception as error:  # any load or run failure just removes the candidate
            logger.warning("auto: %s on the CPU failed: %s", backend, error)
            failures[backend] = str(error)
    if not engines:
        raise RuntimeError(f"auto: no CPU backend could run: {failures}")
    fastest = min(timings, key=timings.__getitem__)
    batch_size, clip_length = batch.shape[0], batch.shape[1]
    if len(timings) == 2:
        slower = max(timings, key=timings.__getitem__)
        reason = (
            f"no CUDA; {fastest} CPU {timings[fastest]:.1f} ms vs {slower} CPU "
            f"{timings[slower]:.1f} ms per batch of {batch_size} clips (T={clip_length}), "
            f"median of {repeats}"
        )
    else:
        failed = ", ".join(f"{name}: {why}" for name, why in failures.items())
        reason = f"no CUDA; only {fastest} CPU runs ({failed})"
    choice = BackendChoice(fastest, "cpu", dict(spec.options), reason, timings)
    return engines[fastest], choice


def choose_engine(spec: EngineSpec) -> tuple[Engine, BackendChoice]:
    """Load the best engine for ``spec`` (see the module docstring); returns it and why."""
    device = _resolve_device(spec.device)
    if device.strip().lower() == "cpu":
        if spec.device.strip().lower() == "cpu" and cuda_available():
            logger.info("auto: a GPU is present but device is 'cpu'; set device: auto to use it")
        return choose_cpu_engine(spec)
    if not cuda_available():
        raise RuntimeError(f"auto: device {spec.device!r} asked for, but torch sees no CUDA GPU")
    errors = []
    for backend, extra_options, why in _gpu_candidates():
        options = {**extra_options, **spec.options}
        try:
            engine = load_engine(backend, replace(spec, device=device, options=options))
        except Exception as error:  # a failed candidate falls through to the next one
            logger.warning("auto: %s on %s failed (%s); trying the next", backend, device, error)
            errors.append(f"{backend}: {error}")
            continue
        reason = why if not errors else f"{why}; earlier candidates failed: {'; '.join(errors)}"
        return engine, BackendChoice(backend, device, options, reason)
    raise RuntimeError(f"auto: no backend could load on {device}: {'; '.join(errors)}")


class AutoEngine:
    """Registry entry ``auto``: :meth:`load` returns the chosen backend's engine itself."""

    name = "auto"

    @classmethod
    def load(cls, spec: EngineSpec) -> Engine:
        engine, choice = choose_engine(spec)
        logger.info("backend auto chose %s on %s: %s", choice.backend, choice.device, choice.reason)
        try:
            engine.auto_choice = choice  # type: ignore[attr-defined]
        except AttributeError:
            logger.debug("engine %s does not keep attributes", type(engine).__name__)
        return engine
