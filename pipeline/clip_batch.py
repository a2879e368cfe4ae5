"""The encoder's host buffer: the clips of a batch assembled in place, in one reused array.

Stacking a batch's clips and converting them (``reid_models.clip_input.crops_to_clips``)
allocates a uint8 array and two float32 ones per engine call, about 50 MB for 16 clips of 8
frames of 256x128. :class:`ClipBatchBuffer` keeps, per clip shape, one uint8 staging array and
one float32 engine input sized for ``max_batch`` clips, and fills them in place with the same
values, bit for bit (2-3x faster on a CPU). With ``pinned`` (an encoder on CUDA) the float32
input is page-locked host memory (allocated by torch), so the engine's copy to the GPU needs
no staging copy of its own. The engine still takes float32 RGB in ``[0, 1]``
(``reid_models/contract.py``): the conversion from uint8 BGR happens here, on the CPU.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from pipeline.clips import Clip

logger = logging.getLogger(__name__)

MAX_SHAPES = 4
"""Clip shapes kept buffers for (``all`` sampling makes clips of several lengths)."""


class ClipBatchBuffer:
    """``fill(clips) -> float32 (len(clips), T, 3, H, W)``, a view valid until the next fill.

    Args:
        max_batch: the most clips one fill takes (the encoder's ``max_batch``); larger
            batches get arrays of their own.
        pinned: allocate the float32 input in page-locked memory (needs torch with CUDA).
    """

    def __init__(self, max_batch: int, pinned: bool = False) -> None:
        self.max_batch = max_batch
        self.pinned = pinned
        self.allocations = 0
        """Buffers allocated so far (one per clip shape while at most MAX_SHAPES are seen)."""
        self._buffers: OrderedDict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def fill(self, clips: list[Clip]) -> np.ndarray:
        """The engine input of ``clips`` (uint8 BGR ``(T, H, W, 3)`` crops each, one shape):
        float32 ``(batch, T, 3, H, W)``, RGB, values in ``[0, 1]``."""
        if not clips:
            raise ValueError("no clips to fill a batch with")
        shape = tuple(clips[0].crops.shape)
        if any(tuple(clip.crops.shape) != shape for clip in clips):
            raise ValueError("clips of one batch must have one shape")
        staging, inputs = self._buffers_for(shape, len(clips))
        count = len(clips)
        for index, clip in enumerate(clips):
            staging[index] = clip.crops
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
        frames, height, width, channels = shape
        self.allocations += 1
        staging = np.empty((count, frames, height, width, channels), dtype=np.uint8)
        input_shape = (count, frames, channels, height, width)
        if not self.pinned:
            return staging, np.empty(input_shape, dtype=np.float32)
        try:
            import torch

            pinned = torch.empty(input_shape, dtype=torch.float32, pin_memory=True)
        except (ImportError, RuntimeError) as error:  # no torch, or torch without CUDA
            logger.warning("encoder host buffer not page-locked (%s); using plain memory", error)
            self.pinned = False
            return staging, np.empty(input_shape, dtype=np.float32)
        return staging, pinned.numpy()  # the array keeps the pinned tensor alive
