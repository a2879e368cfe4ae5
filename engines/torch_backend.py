"""The PyTorch backend: an encoder module run under ``torch.inference_mode``.

Options (``EngineSpec.options``), all off by default (plain eager fp32):

- ``precision``: ``"fp32"`` or ``"fp16"`` (autocast to half on CUDA; ignored with a warning on
  the CPU).
- ``channels_last``: store 2-D convolution weights in channels-last memory format.
- ``compile``: ``True`` or a ``torch.compile`` mode (``"reduce-overhead"`` captures CUDA graphs,
  ``"max-autotune"``); batches are then padded to fixed buckets so that each size is compiled
  (and captured) once.
- ``batch_buckets``: list of batch sizes to pad batches up to; default powers of two up to
  ``max_batch`` (default 64) when compiling, none otherwise.
- ``input_format``: ``"float32_rgb"`` (default) or ``"uint8_bgr"``: take uint8 BGR crops
  ``(batch, T, H, W, 3)`` and convert them on the device (the module is wrapped in
  ``reid_models.contract.CropsInput``, the same operations an exported uint8 graph holds).

On CUDA the input goes through a reused pinned host buffer and a non-blocking copy (an input
that is already page-locked, as the pipeline's clip buffer is on CUDA, is copied from directly).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from engines.base import EngineSpec
from engines.batch_check import check_input_dtype
from engines.buckets import BatchBuckets, run_in_buckets
from engines.devices import PinnedUpload
from reid_models.clip_input import FLOAT_CLIPS, INPUT_FORMATS, UINT8_CROPS, InputFormat
from reid_models.contract import CropsInput

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


class TorchEngine:
    """Runs a ``torch.nn.Module`` encoder on CPU or CUDA.

    Input float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``, or with
    ``input_format="uint8_bgr"`` uint8 ``(batch, T, H, W, 3)`` BGR crops; output float32
    ``(batch, embedding_dim)``.
    """

    name = "torch"

    def __init__(
        self,
        module: torch.nn.Module,
        device: str = "cpu",
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        compile_mode: str | None = None,
        batch_buckets: BatchBuckets | None = None,
        input_format: InputFormat = FLOAT_CLIPS,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self.input_format: InputFormat = input_format
        self.device = torch.device(device)
        self.precision = precision
        if precision == "fp16" and self.device.type != "cuda":
            logger.warning("fp16 autocast needs CUDA; running fp32 on %s", self.device)
            self.precision = "fp32"
        module = module.to(self.device).eval()
        if channels_last:
            # Only 2-D convolutions: Module.to(memory_format=...) would also take the 5-D weights
            # of 3-D convolutions (RRU+STIM), which channels_last cannot hold.
            for layer in module.modules():
                if isinstance(layer, torch.nn.Conv2d):
                    layer.to(memory_format=torch.channels_last)
        if input_format == UINT8_CROPS:
            module = CropsInput(module).to(self.device).eval()
        self.module = module
        self.channels_last = channels_last
        self.compile_mode = compile_mode
        self._forward: Callable[[torch.Tensor], Any] = (
            module if compile_mode is None else torch.compile(module, mode=compile_mode)
        )
        self.batch_buckets = batch_buckets
        self._upload = PinnedUpload(torch)

    @classmethod
    def load(cls, spec: EngineSpec) -> TorchEngine:
        """Build the encoder named by ``spec.model`` (or a saved checkpoint) on its device."""
        from engines.export_onnx import input_format_option
        from reid_models.factory import build_encoder

        options = spec.options
        module = build_encoder(
            spec.model, spec.weights, backbone=str(options.get("backbone", "osnet_x0_25"))
        )
        compile_option = options.get("compile", False)
        compile_mode: str | None
        if compile_option is True:
            compile_mode = "default"
        elif isinstance(compile_option, str) and compile_option:
            compile_mode = compile_option
        else:
            compile_mode = None
        buckets = options.get("batch_buckets")
        if buckets is not None:
            batch_buckets: BatchBuckets | None = BatchBuckets.of(buckets)
        elif compile_mode is not None:
            batch_buckets = BatchBuckets.powers_of_two(int(options.get("max_batch", 64)))
        else:
            batch_buckets = None
        engine = cls(
            module,
            spec.device,
            precision=str(options.get("precision", "fp32")),
            channels_last=bool(options.get("channels_last", False)),
            compile_mode=compile_mode,
            batch_buckets=batch_buckets,
            input_format=input_format_option(options),
        )
        logger.info(
            "torch engine: %s on %s (%s input, %s%s%s)",
            spec.model,
            spec.device,
            engine.input_format,
            engine.precision,
            ", channels_last" if engine.channels_last else "",
            f", compiled ({compile_mode})" if compile_mode else "",
        )
        return engine

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Embed clips: float32 ``(batch, T, 3, H, W)`` (uint8 ``(batch, T, H, W, 3)`` crops
        with ``input_format="uint8_bgr"``) -> float32 ``(batch, D)``.

        Raises:
            ValueError: uint8 crops for a float engine, or float clips for a uint8 one.
        """
        clips = check_input_dtype(batch, self.input_format, "torch")
        if self.batch_buckets is None:
            return self._run(clips)
        return run_in_buckets(clips, self.batch_buckets, self._run)

    def _to_device(self, clips: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(clips)
        if self.device.type != "cuda":
            return host
        return self._upload.to_device(host, self.device)

    def _run(self, clips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = self._to_device(clips)
            if self.precision == "fp16":
                with torch.autocast(device_type="cuda", dtype=torch.float16):
                    outputs = self._forward(inputs)
            else:
                outputs = self._forward(inputs)
        return np.asarray(outputs.float().cpu().numpy(), dtype=np.float32)
