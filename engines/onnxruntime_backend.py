"""The ONNX Runtime backend: an exported encoder graph on the CPU or the CUDA execution provider.

``onnxruntime`` is imported when an engine is built, never when this module is imported.

Options (``EngineSpec.options``):

- ``backbone``, ``clip_length``, ``cache_dir``, ``opset``, ``input_format``: used when
  ``spec.weights`` is not an ``.onnx`` file and the encoder is exported first
  (``engines.export_onnx``). Whatever exported it, the file's metadata says what the engine
  takes (:attr:`OnnxRuntimeEngine.input_format`).
- ``intra_op_threads``: ONNX Runtime's intra-op thread count (default: its own choice).
- ``allow_spinning``: let idle intra-op threads spin-wait for the next call (default off: in
  the pipeline the encoder shares the cores with the detector and the readers, and spinning
  threads take CPU from them; on the 2-core VM turning it off used about 7 % less CPU for the
  same or slightly higher end-to-end frames/s).
- ``io_binding``: run through an ``IOBinding`` (default: on for CUDA, where the input is copied
  to the GPU once and the output is bound on the device; off for the CPU).
- ``batch_buckets``: list of batch sizes to pad batches up to (``engines.buckets``); default
  none on the CPU, powers of two up to ``max_batch`` (default 64) on CUDA so that cuDNN
  kernels are chosen for a few shapes only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import EngineSpec
from engines.batch_check import check_clip_batch
from engines.buckets import BatchBuckets, run_in_buckets
from engines.devices import cuda_device_index
from engines.export_onnx import ExportedEncoderMetadata, metadata_from_props
from reid_models.clip_input import InputFormat

logger = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers on this machine ([] when it is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


class OnnxRuntimeEngine:
    """An exported encoder run by ONNX Runtime.

    Input float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``, or uint8 ``(batch, T, H, W, 3)``
    BGR crops for a graph exported with ``input_format="uint8_bgr"``; output float32
    ``(batch, embedding_dim)``. The model's metadata comes from the ONNX file.

    Attributes:
        metadata: the file's :class:`~engines.export_onnx.ExportedEncoderMetadata`.
        input_format: ``metadata.input_format``, what :meth:`infer` takes.
        providers: execution providers the session actually uses, in priority order.
    """

    name = "onnxruntime"

    def __init__(
        self,
        session: Any,
        metadata: ExportedEncoderMetadata,
        *,
        device_index: int | None = None,
        io_binding: bool | None = None,
        batch_buckets: BatchBuckets | None = None,
    ) -> None:
        self.session = session
        self.metadata = metadata
        self.device_index = device_index
        self.providers: list[str] = list(session.get_providers())
        self.io_binding = device_index is not None if io_binding is None else io_binding
        self.batch_buckets = batch_buckets
        self.input_format: InputFormat = metadata.input_format

    @classmethod
    def load(cls, spec: EngineSpec) -> OnnxRuntimeEngine:
        """Open ``spec.weights`` (an ``.onnx`` file), exporting ``spec.model`` first otherwise.

        Raises:
            RuntimeError: ``spec.device`` is CUDA but ONNX Runtime has no CUDA provider here.
        """
        from engines.export_onnx import onnx_path_for_spec

        path = onnx_path_for_spec(spec)
        options = spec.options
        buckets = options.get("batch_buckets")
        device_index = cuda_device_index(spec.device)
        bucket_sizes: BatchBuckets | None = None
        if buckets is not None:
            bucket_sizes = BatchBuckets.of(buckets)
        elif device_index is not None:
            bucket_sizes = BatchBuckets.powers_of_two(int(options.get("max_batch", 64)))
        engine = cls.from_path(
            path,
            spec.device,
            intra_op_threads=options.get("intra_op_threads"),
            allow_spinning=bool(options.get("allow_spinning", False)),
            io_binding=options.get("io_binding"),
            batch_buckets=bucket_sizes,
        )
        if engine.metadata.architecture != spec.model:
            logger.warning(
                "%s holds a %r encoder; the config asked for %r (the file wins)",
                path,
                engine.metadata.architecture,
                spec.model,
            )
        return engine

    @classmethod
    def from_path(
        cls,
        path: Path,
        device: str = "cpu",
        *,
        intra_op_threads: int | None = None,
        allow_spinning: bool = False,
        io_binding: bool | None = None,
        batch_buckets: BatchBuckets | None = None,
    ) -> OnnxRuntimeEngine:
        """Open an exported encoder file on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``)."""
        import onnxruntime

        device_index = cuda_device_index(device)
        providers: list[Any] = [CPU_PROVIDER]
        if device_index is not None:
            if CUDA_PROVIDER not in onnxruntime.get_available_providers():
                raise RuntimeError(
                    f"device {device!r} asked for, but this onnxruntime has no "
                    f"{CUDA_PROVIDER} (install onnxruntime-gpu); providers: "
                    f"{onnxruntime.get_available_providers()}"
                )
            providers = [(CUDA_PROVIDER, {"device_id": device_index}), CPU_PROVIDER]
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads is not None:
            options.intra_op_num_threads = int(intra_op_threads)
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
        if device_index is not None and session.get_providers()[0] != CUDA_PROVIDER:
            raise RuntimeError(
                f"ONNX Runtime could not start {CUDA_PROVIDER} for {path} (CUDA/cuDNN libraries "
                f"missing?); session providers: {session.get_providers()}"
            )
        metadata = metadata_from_props(dict(session.get_modelmeta().custom_metadata_map))
        engine = cls(
            session,
            metadata,
            device_index=device_index,
            io_binding=io_binding,
            batch_buckets=batch_buckets,
        )
        logger.info(
            "onnxruntime engine: %s from %s on %s (%s input, io binding %s, buckets %s)",
            metadata.architecture,
            path,
            engine.providers[0],
            metadata.input_format,
            "on" if engine.io_binding else "off",
            None if batch_buckets is None else list(batch_buckets.sizes),
        )
        return engine

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Embed clips: float32 ``(batch, T, 3, H, W)`` (uint8 ``(batch, T, H, W, 3)`` for a
        uint8 graph) -> float32 ``(batch, D)``.

        Raises:
            ValueError: a batch of the wrong dtype or shape (``engines.batch_check``).
        """
        clips = check_clip_batch(batch, self.metadata)
        if self.batch_buckets is None:
            return self._run(clips)
        return run_in_buckets(clips, self.batch_buckets, self._run)

    def _run(self, clips: np.ndarray) -> np.ndarray:
        if not self.io_binding:
            (embeddings,) = self.session.run(
                [self.metadata.output_name], {self.metadata.input_name: clips}
            )
            return np.asarray(embeddings, dtype=np.float32)
        import onnxruntime

        device = "cpu" if self.device_index is None else "cuda"
        device_id = self.device_index or 0
        binding = self.session.io_binding()
        value = onnxruntime.OrtValue.ortvalue_from_numpy(clips, device, device_id)
        binding.bind_ortvalue_input(self.metadata.input_name, value)
        binding.bind_output(self.metadata.output_name, device, device_id)
        self.session.run_with_iobinding(binding)
        (embeddings,) = binding.copy_outputs_to_cpu()
        return np.asarray(embeddings, dtype=np.float32)
