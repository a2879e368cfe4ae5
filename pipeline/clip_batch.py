"""The encoder's host buffer: the clips of a batch assembled in place, in one reused array.

Stacking a batch's clips and converting them (``reid_models.clip_input.crops_to_clips``)
allocates a uint8 array and two float32 ones per engine call, about 50 MB for 16 clips of 8
frames of 256x128. :class:`ClipBatchBuffer` keeps, per clip shape, one uint8 staging array and
(for a float engine) one float32 engine input sized for ``max_batch`` clips, and fills them in
place.

What it hands on is what the engine takes (``engines.base.engine_input_format``, read from the
engine's model file):

- ``float32_rgb``: float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``, converted here on the
  CPU with the same values as ``crops_to_clips``, bit for bit (2-3x faster);
- ``uint8_bgr``: the uint8 BGR staging array ``(batch, T, H, W, 3)`` itself, no conversion at
  all (the engine's graph does it, on the GPU when there is one).

With ``pinned`` (an encoder on CUDA) the array handed on is page-locked host memory
(allocated by torch), so the engine's copy to the GPU needs no staging copy of its own.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from pipeline.clips import Clip
from reid_models.clip_input import FLOAT_CLIPS, INPUT_FORMATS, UINT8_CROPS, InputFormat

logger = logging.getLogger(__name__)

MAX_SHAPES = 4
"""Clip shapes kept buffers for (``all`` sampling makes clips of several lengths)."""


class ClipBatchBuffer:
    """``fill(clips) -> engine input``, a view valid until the next fill.

    Args:
        max_batch: the most clips one fill takes (the encoder's ``max_batch``); larger
            batches get arrays of their own.
        pinned: allocate the array handed on in page-locked memory (needs torch with CUDA).
        input_format: what the engine takes: ``"float32_rgb"`` (float32 ``(batch, T, 3, H,
            W)`` RGB in ``[0, 1]``) or ``"uint8_bgr"`` (the uint8 BGR crops, unconverted).
    """

    def __init__(
        self, max_batch: int, pinned: bool = False, input_format: InputFormat = FLOAT_CLIPS
    ) -> None:
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self.max_batch = max_batch
        self.pinned = pinned
        self.input_format = input_format
        self.allocations = 0
        """Buffers allocated so far (one per clip shape while at most MAX_SHAPES are seen)."""
        self._buffers: OrderedDict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def fill(self, clips: list[Clip]) -> np.ndarray:
        """The engine input of ``clips`` (uint8 BGR ``(T, H, W, 3)`` crops each, one shape):
        float32 ``(batch, T, 3, H, W)``, RGB, values in ``[0, 1]``; or for ``uint8_bgr`` the
        uint8 BGR crops ``(batch, T, H, W, 3)`` as they are."""
        if not clips:
            raise ValueError("no clips to fill a batch with")
        shape = tuple(clips[0].crops.shape)
        if any(tuple(clip.crops.shape) != shape for clip in clips):
            raise ValueError("clips of one batch must have one shape")
        staging, inputs = self._buffers_for(shape, len(clips))
        count = len(clips)
        for index, clip in enumerate(clips):
            staging[index] = clip.crops
        if self.input_format == UINT8_CROPS:
            return staging[:count]
        # BGR -> RGB and (T, H, W, 3) -> (T, 3, H, W) as a view; one pass writes the floats
        np.divide(
            staging[:count, ..., ::-1].transpose(0, 1, 4, 2, 3),
            np.float32(255.0),
            out=inputs[:count],
        )
        return inputs[:count]

    def _buffers_for(self, shape: tuple[int, ...], count: int) -> tuple[np.ndarray, np.ndarray]:
        if count > self.max_batch:
            return self._allocate(shape, count)
        buffers = self._buffers.get(shape)
        if buffers is None:
            buffers = self._buffers[shape] = self._allocate(shape, self.max_batch)
            if len(self._buffers) > MAX_SHAPES:
                self._buffers.popitem(last=False)
        self._buffers.move_to_end(shape)
        return buffers

    def _allocate(self, shape: tuple[int, ...], count: int) -> tuple[np.ndarray, np.ndarray]:
        """``(uint8 staging, engine input)``; for uint8 crops both are the same array."""
        frames, height, width, channels = shape
        self.allocations += 1
        staging_shape = (count, frames, height, width, channels)
        if self.input_format == UINT8_CROPS:
            staging = self._host_array(staging_shape, np.uint8)
            return staging, staging
        staging = np.empty(staging_shape, dtype=np.uint8)
        return staging, self._host_array((count, frames, channels, height, width), np.float32)

    def _host_array(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """The array the engine gets: page-locked when ``pinned`` and torch can, else plain."""
        if not self.pinned:
            return np.empty(shape, dtype=dtype)
        try:
            import torch

            torch_dtype = torch.uint8 if dtype is np.uint8 else torch.float32
            pinned = torch.empty(shape, dtype=torch_dtype, pin_memory=True)
        except (ImportError, RuntimeError) as error:  # no torch, or torch without CUDA
            logger.warning("encoder host buffer not page-locked (%s); using plain memory", error)
            self.pinned = False
            return np.empty(shape, dtype=dtype)
        return pinned.numpy()  # the array keeps the pinned tensor alive
