"""ONNX → TensorRT engine (TensorRT 10 Python API), with timing, calibration and engine caches.

:func:`build_engine` parses an exported encoder (``engines.export_onnx``) and builds a
serialized engine with one optimization profile (min/opt/max batch; ``T`` fixed at the
graph's clip length unless a range is asked for and the graph allows it):

- precision ``fp32``, ``fp16`` (``BuilderFlag.FP16``) or ``int8`` (``BuilderFlag.INT8`` plus
  FP16 for layers without INT8 kernels, scales from an entropy calibrator fed by real clips;
  TensorRT 10 calibrates at the profile's *opt* shape, so calibration batches have
  ``opt_batch`` clips). The calibration cache is saved and reused.
- a timing cache shared by all builds on the machine (``tensorrt/timing-<gpu>-<trt>.cache``).
- an engine cache: the engine file name carries :func:`engine_cache_key` (sha256 of ONNX
  sha256 + GPU name + TensorRT version + precision + profile); a file with the same key is
  reused without building. Every engine has a JSON sidecar (``<engine>.json``) holding the
  encoder metadata and the build settings; the runtime reads it.
- parser failures raise :class:`TensorRTBuildError` with every message of the ONNX parser;
  a failed build raises with the errors TensorRT logged.

``tensorrt`` is imported by :func:`import_tensorrt` when a build starts, never at import time.
What was verified against a real TensorRT and what only against a fake module is written in
``engines/README.md``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from engines.cache import default_cache_dir, file_sha256, write_bytes_atomically
from engines.devices import cuda_device_index, gpu_name
from engines.export_onnx import ExportedEncoderMetadata, read_onnx_metadata
from reid_models.clip_input import FLOAT_CLIPS, UINT8_CROPS, InputFormat, input_dtype, input_shape

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
SIDECAR_SUFFIX = ".json"


class TensorRTUnavailableError(ImportError):
    """``tensorrt`` cannot be imported here."""


class TensorRTBuildError(RuntimeError):
    """Parsing the ONNX file or building the engine failed; the message lists TensorRT's."""


def import_tensorrt() -> ModuleType:
    """Import ``tensorrt`` (10.x) now.

    Raises:
        TensorRTUnavailableError: not installed, with a one-line explanation.
    """
    try:
        return importlib.import_module("tensorrt")
    except ImportError as error:
        raise TensorRTUnavailableError(
            "TensorRT is not installed (pip install 'tensorrt>=10,<11' on a machine with an "
            "NVIDIA GPU); use the onnxruntime or torch backend here"
        ) from error


def tensorrt_major_version(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".", 1)[0])


@dataclass(frozen=True)
class BatchProfile:
    """The optimization profile's batch range (and, for a dynamic-``T`` graph, clip lengths).

    Attributes:
        min_batch, opt_batch, max_batch: batch sizes; TensorRT tunes kernels for ``opt``.
        clip_lengths: ``(min, opt, max)`` ``T`` for a graph with a dynamic clip axis;
            ``None`` = the graph's ``clip_length`` only.
    """

    min_batch: int = 1
    opt_batch: int = 16
    max_batch: int = 64
    clip_lengths: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                "need 1 <= min_batch <= opt_batch <= max_batch, got "
                f"{self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if self.clip_lengths is not None:
            low, opt, high = self.clip_lengths
            if not 1 <= low <= opt <= high:
                raise ValueError(f"need 1 <= min T <= opt T <= max T, got {self.clip_lengths}")

    def input_shapes(
        self, metadata: ExportedEncoderMetadata
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """``(min, opt, max)`` input shapes ``(batch, T, 3, H, W)`` for ``metadata``'s graph
        (``(batch, T, H, W, 3)`` for a uint8-crops graph).

        Raises:
            ValueError: a ``T`` range for a graph with a fixed clip length.
        """
        if self.clip_lengths is None:
            lengths = (metadata.clip_length,) * 3
        elif not metadata.dynamic_clip_length and len(set(self.clip_lengths)) > 1:
            raise ValueError(
                f"the {metadata.architecture} graph has a fixed T={metadata.clip_length}; "
                f"a T range {self.clip_lengths} is not possible"
            )
        else:
            lengths = self.clip_lengths
        tail = tuple(
            int(size)
            for size in input_shape(
                metadata.input_format, 0, 0, metadata.input_height, metadata.input_width
            )[2:]
        )
        batches = (self.min_batch, self.opt_batch, self.max_batch)
        low, opt, high = (
            (batch, length, *tail) for batch, length in zip(batches, lengths, strict=True)
        )
        return low, opt, high


@dataclass(frozen=True)
class TensorRTBuildOptions:
    """How to build an engine.

    Attributes:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        profile: the optimization profile.
        workspace_bytes: builder workspace memory pool limit.
        calibration_batch_count: most calibration batches (of ``opt_batch`` clips) for INT8.
        recalibrate: ignore a saved calibration cache.
        force: build even if the engine cache has this engine.
    """

    precision: str = "fp16"
    profile: BatchProfile = field(default_factory=BatchProfile)
    workspace_bytes: int = 4 << 30
    calibration_batch_count: int = 32
    recalibrate: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def engine_cache_key(
    onnx_sha256: str,
    gpu: str,
    tensorrt_version: str,
    precision: str,
    profile: BatchProfile,
) -> str:
    """Hex sha256 naming one engine: same ONNX bytes, GPU, TensorRT, precision and profile."""
    identity = {
        "onnx_sha256": onnx_sha256,
        "gpu": gpu,
        "tensorrt_version": tensorrt_version,
        "precision": precision,
        "profile": asdict(profile),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


@dataclass(frozen=True)
class EngineFiles:
    """Where one engine and its companions live in the cache.

    Attributes:
        engine: the serialized engine.
        sidecar: its JSON metadata (``engine`` + ``.json``).
        key: :func:`engine_cache_key`.
    """

    engine: Path
    sidecar: Path
    key: str


def engine_files(
    cache_dir: Path, metadata: ExportedEncoderMetadata, precision: str, key: str
) -> EngineFiles:
    """Cache paths for an engine: ``<cache>/tensorrt/<arch>-<backbone>-<precision>[-u8]-<key>``
    (``-u8``: a graph that takes uint8 crops)."""
    format_tag = "-u8" if metadata.input_format == UINT8_CROPS else ""
    name = f"{metadata.architecture}-{metadata.backbone}-{precision}{format_tag}-{key[:16]}.engine"
    engine = Path(cache_dir) / "tensorrt" / name
    return EngineFiles(engine, engine.with_name(engine.name + SIDECAR_SUFFIX), key)


def timing_cache_path(cache_dir: Path, gpu: str, tensorrt_version: str) -> Path:
    """One timing cache per GPU model and TensorRT version."""
    return Path(cache_dir) / "tensorrt" / f"timing-{_slug(gpu)}-trt{tensorrt_version}.cache"


def calibration_cache_path(
    cache_dir: Path, metadata: ExportedEncoderMetadata, onnx_sha256: str, batch_size: int
) -> Path:
    """The INT8 calibration cache of one ONNX file at one calibration batch size."""
    name = f"{metadata.architecture}-{onnx_sha256[:16]}-b{batch_size}.calibration"
    return Path(cache_dir) / "tensorrt" / name


def read_engine_sidecar(engine_path: Path) -> dict[str, Any]:
    """The JSON sidecar of an engine file (``"encoder"`` metadata and ``"build"`` settings).

    Raises:
        FileNotFoundError: the engine has no sidecar.
    """
    sidecar = Path(engine_path).with_name(Path(engine_path).name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        raise FileNotFoundError(f"{engine_path} has no metadata sidecar {sidecar.name}")
    loaded: dict[str, Any] = json.loads(sidecar.read_text())
    return loaded


def parser_error_messages(parser: Any) -> list[str]:
    """Every error the ONNX parser recorded, one readable line each."""
    messages = []
    for index in range(int(parser.num_errors)):
        error = parser.get_error(index)
        description = error.desc() if hasattr(error, "desc") else str(error)
        details = []
        if hasattr(error, "node"):
            details.append(f"node {error.node()}")
        if hasattr(error, "node_name") and error.node_name():
            details.append(str(error.node_name()))
        if hasattr(error, "node_operator") and error.node_operator():
            details.append(f"op {error.node_operator()}")
        if hasattr(error, "code"):
            details.append(f"code {error.code()}")
        messages.append(f"{description} ({', '.join(details)})" if details else description)
    return messages


def make_tensorrt_logger(trt: ModuleType) -> Any:
    """A TensorRT logger that forwards to ``logging`` and keeps the errors it saw."""

    class ForwardingLogger(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, message: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(str(message))
                logger.error("TensorRT: %s", message)
            elif severity == trt.ILogger.Severity.WARNING:
                logger.warning("TensorRT: %s", message)
            else:
                logger.debug("TensorRT: %s", message)

    return ForwardingLogger()


def make_entropy_calibrator(
    trt: ModuleType,
    batches: Iterable[np.ndarray],
    batch_size: int,
    cache_path: Path,
    device: str,
    use_cache: bool = True,
    input_format: InputFormat = FLOAT_CLIPS,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` that feeds ``batches`` (float32 ``(batch_size, T, 3, H,
    W)`` clips, RGB in ``[0, 1]``; uint8 ``(batch_size, T, H, W, 3)`` BGR crops for a
    ``uint8_bgr`` graph) to TensorRT through device memory, and reads/writes the calibration
    cache at ``cache_path``."""
    dtype = input_dtype(input_format)

    class ClipEntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches: Iterator[np.ndarray] = iter(batches)
            self.device = torch.device(device)
            self.current: torch.Tensor | None = None  # keeps the batch alive while TRT reads it
            self.batches_served = 0
            self.error: Exception | None = None  # raised by build_engine after the build

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            # An exception would be swallowed inside TensorRT: keep it and end calibration.
            try:
                batch = next(self.batches)
                if batch.shape[0] != batch_size:
                    raise ValueError(
                        f"calibration batch of {batch.shape[0]} clips, expected {batch_size}"
                    )
                if input_format == UINT8_CROPS and batch.dtype != np.uint8:
                    raise ValueError(
                        f"a uint8_bgr graph calibrates on uint8 crops, got {batch.dtype}"
                    )
                self.current = torch.from_numpy(np.ascontiguousarray(batch, dtype)).to(self.device)
            except StopIteration:
                return None
            except Exception as error:
                self.error = error
                return None
            self.batches_served += 1
            return [int(self.current.data_ptr())] * len(names)

        def read_calibration_cache(self) -> bytes | None:
            if use_cache and cache_path.exists():
                logger.info("using INT8 calibration cache %s", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            write_bytes_atomically(cache_path, bytes(memoryview(cache)))
            logger.info("saved INT8 calibration cache %s", cache_path)

    return ClipEntropyCalibrator()


def _network_io_summary(network: Any) -> str:
    parts = []
    for index in range(int(network.num_inputs)):
        tensor = network.get_input(index)
        parts.append(f"input {tensor.name} {tuple(tensor.shape)}")
    for index in range(int(network.num_outputs)):
        tensor = network.get_output(index)
        parts.append(f"output {tensor.name} {tuple(tensor.shape)}")
    return ", ".join(parts)


def build_engine(
    onnx_path: Path,
    options: TensorRTBuildOptions | None = None,
    *,
    calibration_batches: Iterable[np.ndarray] | None = None,
    cache_dir: Path | None = None,
    device: str = "cuda",
    gpu: str | None = None,
) -> EngineFiles:
    """Build (or find in the cache) a TensorRT engine for an exported encoder.

    Args:
        onnx_path: an ONNX file written by ``engines.export_onnx`` (its metadata is required).
        options: precision, profile, workspace, calibration settings.
        calibration_batches: for ``int8``: batches of ``opt_batch`` real clips in the graph's
            input format (float32 ``(opt_batch, T, 3, H, W)``, or uint8 BGR crops for a
            ``uint8_bgr`` graph: ``engines.calibration.calibration_batches_for``); not needed
            when a calibration cache exists.
        cache_dir: cache root; ``None`` = ``engines.cache.default_cache_dir()``.
        device: ``"cuda"``/``"cuda:N"``, where calibration batches are copied (a CUDA device is
            required, as by TensorRT itself).
        gpu: GPU name for the cache key; ``None`` = asked from torch.

    Returns:
        The engine's files (existing ones on a cache hit).

    Raises:
        ValueError: ``device`` is not a CUDA device.
        TensorRTUnavailableError: no ``tensorrt``.
        TensorRTBuildError: parser errors (every message), no calibration data, or a failed
            build (the errors TensorRT logged).
    """
    device_index = cuda_device_index(device)
    if device_index is None:
        raise ValueError(f"a TensorRT build needs a CUDA device, got {device!r}")
    options = TensorRTBuildOptions() if options is None else options
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    trt = import_tensorrt()
    major = tensorrt_major_version(trt)
    if major < 10:
        raise TensorRTBuildError(f"TensorRT {trt.__version__} found; this builder needs 10.x")
    if major > 10 and options.precision != "fp32":
        raise TensorRTBuildError(
            f"TensorRT {trt.__version__} has no FP16/INT8 builder flags or calibrators "
            "(strongly typed only); build fp32 or use TensorRT 10.x"
        )
    metadata = read_onnx_metadata(onnx_path)
    onnx_sha256 = file_sha256(onnx_path)
    if gpu is None:
        gpu = gpu_name(device_index)
    version = str(trt.__version__)
    key = engine_cache_key(onnx_sha256, gpu, version, options.precision, options.profile)
    files = engine_files(cache_dir, metadata, options.precision, key)
    if (
        not options.force
        and files.engine.exists()
        and files.sidecar.exists()
        and read_engine_sidecar(files.engine).get("build", {}).get("key") == key
    ):
        logger.info("engine cache hit: %s", files.engine)
        return files
    min_shape, opt_shape, max_shape = options.profile.input_shapes(metadata)

    trt_logger = make_tensorrt_logger(trt)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        messages = parser_error_messages(parser) or trt_logger.errors or ["no message"]
        raise TensorRTBuildError(
            f"TensorRT could not parse {onnx_path}:\n" + "\n".join(f"  {m}" for m in messages)
        )
    logger.info("parsed %s: %s", onnx_path, _network_io_summary(network))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_bytes))
    profile = builder.create_optimization_profile()
    profile.set_shape(metadata.input_name, min_shape, opt_shape, max_shape)
    config.add_optimization_profile(profile)

    if options.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator = None
    calibration_path = calibration_cache_path(cache_dir, metadata, onnx_sha256, opt_shape[0])
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        has_cache = calibration_path.exists() and not options.recalibrate
        if calibration_batches is None and not has_cache:
            raise TensorRTBuildError(
                "INT8 needs calibration clips (engines.calibration) or a calibration cache at "
                f"{calibration_path}"
            )
        limited = _take(calibration_batches or (), options.calibration_batch_count)
        calibrator = make_entropy_calibrator(
            trt,
            limited,
            opt_shape[0],
            calibration_path,
            device,
            use_cache=has_cache,
            input_format=metadata.input_format,
        )
        config.int8_calibrator = calibrator

    timing_path = timing_cache_path(cache_dir, gpu, version)
    timing_cache = config.create_timing_cache(
        timing_path.read_bytes() if timing_path.exists() else b""
    )
    if not config.set_timing_cache(timing_cache, False):
        logger.warning("timing cache %s does not match this TensorRT/GPU; ignored", timing_path)
        config.set_timing_cache(config.create_timing_cache(b""), False)

    logger.info(
        "building %s engine for %s (profile %s / %s / %s) ...",
        options.precision,
        metadata.architecture,
        min_shape,
        opt_shape,
        max_shape,
    )
    serialized = builder.build_serialized_network(network, config)
    calibration_error = getattr(calibrator, "error", None)
    if calibration_error is not None:
        raise TensorRTBuildError(f"INT8 calibration failed: {calibration_error}") from (
            calibration_error
        )
    if serialized is None:
        detail = "\n".join(f"  {m}" for m in trt_logger.errors) or "  (no error logged)"
        raise TensorRTBuildError(f"TensorRT failed to build {onnx_path}:\n{detail}")
    write_bytes_atomically(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    write_bytes_atomically(files.engine, bytes(memoryview(serialized)))
    sidecar = {
        "encoder": metadata.model_dump(mode="json"),
        "build": {
            "key": key,
            "onnx_path": str(onnx_path),
            "onnx_sha256": onnx_sha256,
            "gpu": gpu,
            "tensorrt_version": version,
            "precision": options.precision,
            "profile": asdict(options.profile),
            "input_shapes": {"min": min_shape, "opt": opt_shape, "max": max_shape},
            "calibration_cache": str(calibration_path) if calibrator is not None else None,
            "calibration_batches": getattr(calibrator, "batches_served", None),
        },
    }
    write_bytes_atomically(files.sidecar, json.dumps(sidecar, indent=2).encode())
    logger.info("built %s", files.engine)
    return files


def _take(batches: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
    for index, batch in enumerate(batches):
        if index >= count:
            return
        yield batch
