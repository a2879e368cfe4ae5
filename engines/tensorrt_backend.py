"""The TensorRT backend: a serialized engine run with ``execute_async_v3`` on a CUDA stream.

Input and output live in torch CUDA tensors; their ``data_ptr()`` are bound with
``set_tensor_address`` after ``set_input_shape`` fixes each batch's shape inside the engine's
optimization profile. Batches outside the profile's batch range are split or zero-padded
(``engines.buckets``). ``tensorrt`` is imported when an engine is loaded.

An engine built from a ``uint8_bgr`` graph (``engines.export_onnx``) has a uint8 input binding
(``trt.uint8``, converted by the graph's first cast): the host hands uint8 BGR crops
``(batch, T, H, W, 3)`` and a quarter of a float batch's bytes crosses to the GPU. The sidecar's
``input_format`` says which input the engine takes, checked against the binding's dtype.

``EngineSpec.weights`` may be a ``.engine``/``.plan`` file (with its JSON sidecar), an
``.onnx`` file (built first, see ``engines.tensorrt_build``) or anything ``build_encoder``
takes (exported to ONNX, then built). Options: ``precision`` (default ``fp16``),
``min_batch``/``opt_batch``/``max_batch`` (1/16/64), ``calibration_clips`` (a clips file,
required for INT8: ``engines.calibration``), ``batch_buckets``, and the export options of
``engines.export_onnx.onnx_path_for_spec``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.base import EngineSpec
from engines.batch_check import check_clip_batch
from engines.buckets import BatchBuckets, run_in_buckets
from engines.devices import PinnedUpload, cuda_device_index
from engines.export_onnx import ExportedEncoderMetadata
from engines.tensorrt_build import (
    BatchProfile,
    TensorRTBuildOptions,
    build_engine,
    import_tensorrt,
    make_tensorrt_logger,
    read_engine_sidecar,
)
from reid_models.clip_input import UINT8_CROPS, InputFormat

logger = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _torch_dtype(trt: Any, data_type: Any) -> torch.dtype:
    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int8: torch.int8,
        trt.uint8: torch.uint8,
        trt.bool: torch.bool,
    }
    if data_type not in table:
        raise TypeError(f"unsupported TensorRT tensor type {data_type}")
    return table[data_type]


class TensorRTEngine:
    """A deserialized TensorRT encoder engine.

    Input float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``, or uint8 ``(batch, T, H, W, 3)``
    BGR crops when ``input_format`` (from the sidecar) is ``"uint8_bgr"``; output float32
    ``(batch, embedding_dim)``. :meth:`infer_torch` keeps everything on the GPU.

    ``device`` is a CUDA device (``cuda`` or ``cuda:N``): inputs are staged through pinned host
    memory, bound and run on the engine's own CUDA stream.

    Raises:
        ValueError: ``device`` is not a CUDA device, or the engine's input binding dtype is
            not the one the metadata's ``input_format`` says.
    """

    name = "tensorrt"

    def __init__(
        self,
        serialized_engine: bytes,
        metadata: ExportedEncoderMetadata,
        device: str = "cuda",
        batch_buckets: BatchBuckets | None = None,
    ) -> None:
        if cuda_device_index(device) is None:
            raise ValueError(f"the tensorrt backend needs a CUDA device, got {device!r}")
        trt = import_tensorrt()
        self._trt = trt
        self.metadata = metadata
        self.device = torch.device(device)
        self._logger = make_tensorrt_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(serialized_engine)
        if self.engine is None:
            errors = "; ".join(self._logger.errors) or "no error logged"
            raise RuntimeError(f"TensorRT could not deserialize the engine: {errors}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"expected one input and one output tensor, got {names}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name))
        self.input_format: InputFormat = metadata.input_format
        takes_crops = metadata.input_format == UINT8_CROPS
        if (self.input_dtype == torch.uint8) != takes_crops:
            raise ValueError(
                f"engine input {self.input_name!r} is {self.input_dtype} but its metadata says "
                f"input_format {metadata.input_format!r}; rebuild it from its ONNX file"
            )
        min_shape, _, max_shape = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_shape = tuple(int(d) for d in min_shape)
        self.max_shape = tuple(int(d) for d in max_shape)
        self.batch_buckets = batch_buckets or BatchBuckets.every_size(
            self.min_shape[0], self.max_shape[0]
        )
        if self.batch_buckets.max_batch > self.max_shape[0]:
            raise ValueError(
                f"bucket {self.batch_buckets.max_batch} exceeds the profile's max batch "
                f"{self.max_shape[0]}"
            )
        self.stream: Any = torch.cuda.Stream(self.device)
        self._upload = PinnedUpload(torch)

    @classmethod
    def load(cls, spec: EngineSpec) -> TensorRTEngine:
        """Load ``spec.weights`` as an engine, or build one (exporting to ONNX first if needed).

        Raises:
            ValueError: ``spec.device`` is not CUDA.
            engines.tensorrt_build.TensorRTUnavailableError: no ``tensorrt``.
        """
        if cuda_device_index(spec.device) is None:
            raise ValueError(f"the tensorrt backend needs a CUDA device, got {spec.device!r}")
        import_tensorrt()  # fail before a long export when TensorRT is missing
        options = spec.options
        weights = None if spec.weights is None else Path(spec.weights)
        if weights is not None and weights.suffix.lower() in ENGINE_SUFFIXES:
            engine_path = weights
        else:
            engine_path = _build_for_spec(spec).engine
        buckets = options.get("batch_buckets")
        return cls.from_file(
            engine_path,
            spec.device,
            batch_buckets=None if buckets is None else BatchBuckets.of(buckets),
        )

    @classmethod
    def from_file(
        cls, engine_path: Path, device: str = "cuda", batch_buckets: BatchBuckets | None = None
    ) -> TensorRTEngine:
        """Deserialize an engine file; its metadata comes from its JSON sidecar."""
        sidecar = read_engine_sidecar(engine_path)
        metadata = ExportedEncoderMetadata.model_validate(sidecar["encoder"])
        engine = cls(Path(engine_path).read_bytes(), metadata, device, batch_buckets)
        logger.info(
            "tensorrt engine: %s %s from %s on %s (%s input, batch %d..%d)",
            metadata.architecture,
            sidecar.get("build", {}).get("precision", "?"),
            engine_path,
            device,
            metadata.input_format,
            engine.min_shape[0],
            engine.max_shape[0],
        )
        return engine

    def infer_torch(self, clips: torch.Tensor) -> torch.Tensor:
        """Run one batch already on ``self.device`` (its size inside the profile's range).

        Args:
            clips: ``(batch, T, 3, H, W)`` tensor, RGB in ``[0, 1]`` (uint8 ``(batch, T, H,
                W, 3)`` BGR crops for a uint8-input engine).

        Returns:
            ``(batch, embedding_dim)`` tensor on ``self.device`` in the engine's output type,
            ready on the current stream.
        """
        if (clips.dtype == torch.uint8) != (self.input_dtype == torch.uint8):
            raise ValueError(
                f"this engine's input {self.input_name!r} is {self.input_dtype} "
                f"({self.input_format}), got a {clips.dtype} tensor"
            )
        inputs = clips.to(self.device, self.input_dtype).contiguous()
        shape = tuple(int(d) for d in inputs.shape)
        if not self.context.set_input_shape(self.input_name, shape):
            raise ValueError(
                f"input shape {shape} is outside the engine's profile "
                f"{self.min_shape} .. {self.max_shape}"
            )
        output_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output_name))
        if any(d < 0 for d in output_shape):
            raise RuntimeError(f"output shape {output_shape} unresolved for input {shape}")
        outputs = torch.empty(output_shape, dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, int(inputs.data_ptr()))
        self.context.set_tensor_address(self.output_name, int(outputs.data_ptr()))
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not self.context.execute_async_v3(int(self.stream.cuda_stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        inputs.record_stream(self.stream)
        outputs.record_stream(self.stream)
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return outputs

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Embed clips: float32 ``(batch, T, 3, H, W)`` (uint8 ``(batch, T, H, W, 3)`` for a
        uint8-input engine) -> float32 ``(batch, D)``.

        Raises:
            ValueError: a batch of the wrong dtype or shape (``engines.batch_check``).
        """
        clips = check_clip_batch(batch, self.metadata)
        return run_in_buckets(clips, self.batch_buckets, self._run)

    def _to_device(self, clips: np.ndarray) -> torch.Tensor:
        return self._upload.to_device(torch.from_numpy(clips), self.device)

    def _run(self, clips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            outputs = self.infer_torch(self._to_device(clips))
            return np.asarray(outputs.float().cpu().numpy(), dtype=np.float32)


def _build_for_spec(spec: EngineSpec) -> Any:
    from engines.calibration import calibration_batches_for
    from engines.export_onnx import onnx_path_for_spec, read_onnx_metadata

    options = spec.options
    onnx_path = onnx_path_for_spec(spec)
    profile = BatchProfile(
        int(options.get("min_batch", 1)),
        int(options.get("opt_batch", 16)),
        int(options.get("max_batch", 64)),
    )
    precision = str(options.get("precision", "fp16"))
    batches = None
    if precision == "int8":
        clips_path = options.get("calibration_clips")
        batches = calibration_batches_for(
            read_onnx_metadata(onnx_path),
            profile.opt_batch,
            None if clips_path is None else Path(clips_path),
        )
    cache_dir = options.get("cache_dir")
    return build_engine(
        onnx_path,
        TensorRTBuildOptions(precision=precision, profile=profile),
        calibration_batches=batches,
        cache_dir=None if cache_dir is None else Path(cache_dir),
        device=spec.device,
    )
