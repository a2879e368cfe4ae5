"""Camera crops to the encoder input contract (``reid_models.contract``), NumPy only.

The pipeline's clip buffer and the INT8 calibration clips both hold uint8 BGR crops; this is
the one place they become what every encoder takes, so torch, ONNX Runtime and TensorRT are
fed the same values.

An exported graph takes one of two input formats, recorded in its metadata
(``engines.export_onnx.ExportedEncoderMetadata.input_format``):

- :data:`FLOAT_CLIPS` (``"float32_rgb"``): float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``,
  the torch encoders' own input; the host converts the crops with :func:`crops_to_clips`.
- :data:`UINT8_CROPS` (``"uint8_bgr"``): the crops themselves, uint8 ``(batch, T, H, W, 3)``
  BGR in ``[0, 255]``; the graph does what :func:`crops_to_clips` does
  (``reid_models.contract.CropsInput``), so the host copies a quarter of the bytes and does
  no arithmetic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

InputFormat = Literal["float32_rgb", "uint8_bgr"]
"""What an encoder graph takes: float clips or uint8 crops (module docstring)."""

FLOAT_CLIPS: InputFormat = "float32_rgb"
UINT8_CROPS: InputFormat = "uint8_bgr"
INPUT_FORMATS: tuple[InputFormat, ...] = (FLOAT_CLIPS, UINT8_CROPS)


def input_dtype(input_format: InputFormat) -> np.dtype:
    """The NumPy dtype of an input format: float32 or uint8."""
    return np.dtype(np.uint8 if input_format == UINT8_CROPS else np.float32)


def input_shape(
    input_format: InputFormat, batch: int | str, clip_length: int | str, height: int, width: int
) -> list[int | str]:
    """``[batch, T, 3, H, W]`` (float clips) or ``[batch, T, H, W, 3]`` (uint8 crops)."""
    if input_format == UINT8_CROPS:
        return [batch, clip_length, height, width, 3]
    return [batch, clip_length, 3, height, width]


def crops_to_clips(crops: np.ndarray) -> np.ndarray:
    """uint8 BGR crops ``(N, T, H, W, 3)`` -> float32 ``(N, T, 3, H, W)`` RGB in ``[0, 1]``."""
    rgb = crops[..., ::-1].transpose(0, 1, 4, 2, 3)
    return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)


def clips_to_crops(clips: np.ndarray) -> np.ndarray:
    """float32 ``(N, T, 3, H, W)`` RGB in ``[0, 1]`` -> uint8 BGR crops ``(N, T, H, W, 3)``,
    rounded to the nearest level (the inverse of :func:`crops_to_clips` on its outputs)."""
    levels = np.clip(np.rint(np.asarray(clips, dtype=np.float32) * 255.0), 0, 255)
    return np.ascontiguousarray(levels.astype(np.uint8).transpose(0, 1, 3, 4, 2)[..., ::-1])
