"""A clip batch checked against an exported encoder's input contract, before any runtime sees it.

Every runtime backend (ONNX Runtime, TensorRT) calls :func:`check_clip_batch` first, so a
wrong shape, or float clips fed to a uint8 graph (and uint8 crops to a float one), is the same
one-line ``ValueError`` whichever runs the graph.
"""

from __future__ import annotations

import numpy as np

from engines.export_onnx import ExportedEncoderMetadata
from reid_models.clip_input import UINT8_CROPS, InputFormat, input_dtype


def check_input_dtype(batch: np.ndarray, input_format: InputFormat, model: str) -> np.ndarray:
    """``batch`` as a contiguous array of ``input_format``'s dtype (float clips of any float
    dtype are cast to float32; uint8 crops must already be uint8).

    Raises:
        ValueError: uint8 for a float input, or anything but uint8 for a uint8 input.
    """
    array = np.asarray(batch)
    if input_format == UINT8_CROPS and array.dtype != np.uint8:
        raise ValueError(
            f"this {model} encoder takes uint8 BGR crops (batch, T, H, W, 3), got "
            f"{array.dtype} {tuple(array.shape)} (float clips need a graph exported with "
            "input_format float32_rgb)"
        )
    if input_format != UINT8_CROPS and array.dtype == np.uint8:
        raise ValueError(
            f"this {model} encoder takes float32 RGB clips (batch, T, 3, H, W) in [0, 1], got "
            f"uint8 {tuple(array.shape)} (uint8 crops need a graph exported with input_format "
            "uint8_bgr, or reid_models.clip_input.crops_to_clips first)"
        )
    return np.ascontiguousarray(array, dtype=input_dtype(input_format))


def check_clip_batch(batch: np.ndarray, metadata: ExportedEncoderMetadata) -> np.ndarray:
    """``batch`` as a contiguous array of the graph's input dtype, after checking it against
    the model's input contract (``metadata.input_format``).

    A float graph takes ``(batch, T, 3, H, W)`` clips of any float dtype (cast to float32); a
    ``uint8_bgr`` graph takes uint8 ``(batch, T, H, W, 3)`` crops only, since float values
    would have to be rounded to reach it.

    Raises:
        ValueError: the wrong dtype for the graph's input format (uint8 crops for a float
            graph, anything but uint8 for a uint8 graph); not the model's shape (``H x W``,
            and ``T`` when the graph has a fixed clip length); an empty batch.
    """
    array = check_input_dtype(batch, metadata.input_format, metadata.architecture)
    crops_graph = metadata.input_format == UINT8_CROPS
    height, width = metadata.input_height, metadata.input_width
    expected_tail = (height, width, 3) if crops_graph else (3, height, width)
    if array.ndim != 5 or tuple(array.shape[2:]) != expected_tail or array.shape[0] == 0:
        raise ValueError(
            f"expected {'crops' if crops_graph else 'clips'} "
            f"(batch>=1, T, {', '.join(map(str, expected_tail))}), got {tuple(array.shape)}"
        )
    if not metadata.dynamic_clip_length and array.shape[1] != metadata.clip_length:
        raise ValueError(
            f"this {metadata.architecture} graph takes T={metadata.clip_length} frames, "
            f"got T={array.shape[1]}"
        )
    return array
