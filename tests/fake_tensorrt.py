"""A fake ``tensorrt`` module (the parts of the TensorRT 10 Python API that ``engines`` uses).

Injected with ``monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt())``. It
records what the code under test asks for (network flags, builder flags, profile shapes,
memory pools, timing caches, calibrator calls, runtime shapes and tensor addresses) in
``module.record``, and behaves enough like TensorRT to run the build and runtime paths:

- ``OnnxParser`` reads the real ONNX file (tensor names and shapes) with ``onnx``, or fails
  with ``module.parse_errors``;
- the builder drives an INT8 calibrator the way TensorRT does (read cache, else ``get_batch``
  until ``None``, then write cache) and serializes a JSON "engine";
- the execution context checks shapes against the profile and, when ``module.read_memory`` is
  set (host memory only), reads the input from its bound address (float32, or uint8 when the
  ONNX graph's input is uint8: ``get_tensor_dtype`` says ``uint8`` then) and writes
  ``output[b, d] = mean(input[b]) * (d + 1)`` to the output address.

The backend runs on CUDA devices only. Without a GPU, :func:`emulate_cuda_on_host` makes the
CUDA calls it makes land on the host (CUDA devices are the CPU, pinned memory is plain memory,
the stream is handle 0 and its waits do nothing), so the same binding code runs and the fake
can read and write the bound addresses.
"""

from __future__ import annotations

import ctypes
import enum
import json
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch


@dataclass
class Record:
    """Everything the code under test asked the fake for."""

    network_flags: list[int] = field(default_factory=list)
    builder_flags: set[str] = field(default_factory=set)
    memory_pools: dict[str, int] = field(default_factory=dict)
    profile_shapes: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    timing_cache_inputs: list[bytes] = field(default_factory=list)
    builds: int = 0
    calibration_batch_means: list[float] = field(default_factory=list)
    calibration_cache_reads: int = 0
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    addresses: list[dict[str, int]] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)


class _DataType(enum.Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT32 = "int32"
    INT8 = "int8"
    UINT8 = "uint8"
    BOOL = "bool"


class FakeTensorRT(ModuleType):
    """The fake module, with its switches.

    Attributes:
        record: what was asked for.
        parse_errors: messages the parser fails with (none: it parses).
        fail_build: make ``build_serialized_network`` log an error and return ``None``.
        read_memory: read/write bound addresses (host memory: :func:`emulate_cuda_on_host`).
    """

    __version__: str
    record: Record
    parse_errors: list[str]
    fail_build: bool
    read_memory: bool


def make_fake_tensorrt(version: str = "10.3.0") -> FakeTensorRT:
    """A new fake ``tensorrt`` module with an empty ``record``."""
    trt = FakeTensorRT("tensorrt")
    record = Record()
    trt.__version__ = version
    trt.record = record
    trt.parse_errors = []
    trt.fail_build = False
    trt.read_memory = True
    for name, data_type in (
        ("float32", _DataType.FLOAT),
        ("float16", _DataType.HALF),
        ("int32", _DataType.INT32),
        ("int8", _DataType.INT8),
        ("uint8", _DataType.UINT8),
        ("bool", _DataType.BOOL),
    ):
        setattr(trt, name, data_type)

    class SeverityLevel(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        Severity = SeverityLevel

        def __init__(self) -> None:
            pass

        def log(self, severity: SeverityLevel, message: str) -> None:
            raise NotImplementedError

    class BuilderFlag(enum.Enum):
        FP16 = "FP16"
        INT8 = "INT8"

    class MemoryPoolType(enum.Enum):
        WORKSPACE = "WORKSPACE"

    class TensorIOMode(enum.Enum):
        INPUT = "INPUT"
        OUTPUT = "OUTPUT"

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            pass

    @dataclass
    class Tensor:
        name: str
        shape: tuple[int, ...]
        dtype: _DataType = _DataType.FLOAT

    class Network:
        def __init__(self) -> None:
            self.inputs: list[Tensor] = []
            self.outputs: list[Tensor] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        @property
        def num_outputs(self) -> int:
            return len(self.outputs)

        def get_input(self, index: int) -> Tensor:
            return self.inputs[index]

        def get_output(self, index: int) -> Tensor:
            return self.outputs[index]

    class ParserError:
        def __init__(self, message: str, node: int) -> None:
            self.message, self.node_index = message, node

        def desc(self) -> str:
            return self.message

        def node(self) -> int:
            return self.node_index

        def node_name(self) -> str:
            return f"/node_{self.node_index}"

        def node_operator(self) -> str:
            return "FakeOp"

        def code(self) -> str:
            return "ErrorCode.UNSUPPORTED_NODE"

    class OnnxParser:
        def __init__(self, network: Network, logger: ILogger) -> None:
            self.network = network
            self.errors: list[ParserError] = []

        def parse_from_file(self, path: str) -> bool:
            if trt.parse_errors:
                self.errors = [
                    ParserError(message, index) for index, message in enumerate(trt.parse_errors)
                ]
                return False
            import onnx

            graph = onnx.load(path, load_external_data=False).graph

            def shape(value: Any) -> tuple[int, ...]:
                dims = value.type.tensor_type.shape.dim
                return tuple(d.dim_value if d.dim_value else -1 for d in dims)

            def dtype(value: Any) -> _DataType:
                uint8 = value.type.tensor_type.elem_type == onnx.TensorProto.UINT8
                return _DataType.UINT8 if uint8 else _DataType.FLOAT

            self.network.inputs = [Tensor(v.name, shape(v), dtype(v)) for v in graph.input]
            self.network.outputs = [Tensor(v.name, shape(v)) for v in graph.output]
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> ParserError:
            return self.errors[index]

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data + b"+timing"

    class BuilderConfig:
        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.profiles: list[Profile] = []
            self.int8_calibrator: Any = None
            self.timing_cache: TimingCache | None = None

        def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
            record.memory_pools[pool.value] = size

        def set_flag(self, flag: BuilderFlag) -> None:
            self.flags.add(flag.value)

        def add_optimization_profile(self, profile: Profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> TimingCache:
            record.timing_cache_inputs.append(bytes(data))
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            assert self.timing_cache is not None
            return self.timing_cache

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> Network:
            record.network_flags.append(flags)
            return Network()

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: BuilderConfig) -> Any:
            record.builds += 1
            record.builder_flags = set(config.flags)
            (profile,) = config.profiles
            record.profile_shapes = dict(profile.shapes)
            if trt.fail_build:
                self.logger.log(SeverityLevel.ERROR, "fake: out of workspace for /conv_7")
                return None
            (input_tensor,) = network.inputs
            low, opt, high = profile.shapes[input_tensor.name]
            if "INT8" in config.flags:
                self._calibrate(config.int8_calibrator, input_tensor.name, opt, input_tensor.dtype)
            (output_tensor,) = network.outputs
            description = {
                "input": input_tensor.name,
                "input_dtype": input_tensor.dtype.value,
                "output": output_tensor.name,
                "embedding_dim": output_tensor.shape[-1],
                "profile": [low, opt, high],
                "flags": sorted(config.flags),
            }
            return bytearray(json.dumps(description).encode())

        def _calibrate(
            self, calibrator: Any, input_name: str, opt: tuple[int, ...], input_dtype: _DataType
        ) -> None:
            assert calibrator is not None, "INT8 without a calibrator"
            record.calibration_cache_reads += 1
            if calibrator.read_calibration_cache():
                return
            assert calibrator.get_batch_size() == opt[0]
            while (pointers := calibrator.get_batch([input_name])) is not None:
                reads = bool(trt.read_memory)
                dtype = np.uint8 if input_dtype == _DataType.UINT8 else np.float32
                mean = float(_read(pointers[0], opt, dtype).mean()) if reads else math.nan
                record.calibration_batch_means.append(mean)
            calibrator.write_calibration_cache(b"fake-calibration-table")

    class ExecutionContext:
        def __init__(self, engine: CudaEngine) -> None:
            self.engine = engine
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: Any) -> bool:
            low, _, high = self.engine.profile
            shape = tuple(shape)
            inside = len(shape) == len(low) and all(
                lo <= s <= hi for lo, s, hi in zip(low, shape, high, strict=True)
            )
            if inside:
                self.shapes[name] = shape
                record.input_shapes.append(shape)
            return inside

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            if name == self.engine.input:
                return self.shapes[name]
            batch = self.shapes[self.engine.input][0]
            return (batch, self.engine.embedding_dim)

        def set_tensor_address(self, name: str, address: int) -> bool:
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream: int) -> bool:
            record.streams.append(stream)
            record.addresses.append(dict(self.addresses))
            if not trt.read_memory:
                return True
            dtype = np.uint8 if self.engine.input_dtype == _DataType.UINT8 else np.float32
            address, shape = self.addresses[self.engine.input], self.shapes[self.engine.input]
            inputs = _read(address, shape, dtype)
            batch = inputs.shape[0]
            means = inputs.reshape(batch, -1).mean(axis=1, dtype=np.float64)
            outputs = (means[:, None] * np.arange(1, self.engine.embedding_dim + 1)).astype(
                np.float32
            )
            ctypes.memmove(self.addresses[self.engine.output], outputs.ctypes.data, outputs.nbytes)
            return True

    class CudaEngine:
        def __init__(self, description: dict[str, Any]) -> None:
            self.input, self.output = description["input"], description["output"]
            self.input_dtype = _DataType(description.get("input_dtype", "float32"))
            self.embedding_dim = int(description["embedding_dim"])
            self.profile = [tuple(shape) for shape in description["profile"]]

        @property
        def num_io_tensors(self) -> int:
            return 2

        def get_tensor_name(self, index: int) -> str:
            return [self.input, self.output][index]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if name == self.input else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> _DataType:
            return self.input_dtype if name == self.input else _DataType.FLOAT

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Any]:
            assert name == self.input and profile_index == 0
            return list(self.profile)

        def create_execution_context(self) -> ExecutionContext:
            return ExecutionContext(self)

    class Runtime:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> CudaEngine | None:
            try:
                return CudaEngine(json.loads(bytes(data)))
            except ValueError:
                self.logger.log(SeverityLevel.ERROR, "fake: serialization version mismatch")
                return None

    for name, value in dict(locals()).items():
        if isinstance(value, type) and name not in ("Record",):
            setattr(trt, name, value)
    return trt


class _HostStream:
    """``torch.cuda.Stream`` on the host: handle 0; host copies are synchronous, so waiting
    on or recording a stream has nothing to do."""

    cuda_stream = 0

    def __init__(self, device: Any = None) -> None:
        self.device = device

    def wait_stream(self, stream: Any) -> None:
        del stream


class _HostCuda:
    """``torch.cuda`` with host streams; everything else is the real module."""

    Stream = _HostStream

    @staticmethod
    def current_stream(device: Any = None) -> _HostStream:
        return _HostStream(device)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cuda, name)


class _HostTorch:
    """``torch`` as the TensorRT modules see it under :func:`emulate_cuda_on_host`."""

    cuda = _HostCuda()

    @staticmethod
    def device(spec: Any) -> torch.device:
        device = torch.device(spec)
        return torch.device("cpu") if device.type == "cuda" else device

    @staticmethod
    def empty(*size: Any, pin_memory: bool = False, **options: Any) -> torch.Tensor:
        del pin_memory  # pinning needs a CUDA driver
        return torch.empty(*size, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


def emulate_cuda_on_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CUDA device, pinned memory and stream calls of the TensorRT build (calibration
    batches) and runtime on the host, for the rest of the test (both still insist on a
    ``cuda`` device)."""
    from engines import tensorrt_backend, tensorrt_build

    host_torch = _HostTorch()
    monkeypatch.setattr(tensorrt_backend, "torch", host_torch)
    monkeypatch.setattr(tensorrt_build, "torch", host_torch)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda tensor, stream: None)


def _read(address: int, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """A copy of the ``shape`` array of ``dtype`` (float32 or uint8) at host ``address``."""
    count = int(np.prod(shape))
    element = ctypes.c_uint8 if dtype is np.uint8 else ctypes.c_float
    buffer = (element * count).from_address(address)
    return np.ctypeslib.as_array(buffer).reshape(shape).copy()
