"""A clip batch checked against an exported encoder's input contract, before any runtime sees it.

Every runtime backend (ONNX Runtime, TensorRT) calls :func:`check_clip_batch` first, so a
wrong shape is the same one-line ``ValueError`` whichever runs the graph.
"""

from __future__ import annotations

import numpy as np

from engines.export_onnx import ExportedEncoderMetadata


def check_clip_batch(batch: np.ndarray, metadata: ExportedEncoderMetadata) -> np.ndarray:
    """``batch`` as contiguous float32, after checking it against the model's input contract.

    Raises:
        ValueError: not ``(batch, T, 3, H, W)`` with the model's ``H x W`` (and ``T`` when the
            graph has a fixed clip length), or an empty batch.
    """
    array = np.ascontiguousarray(batch, dtype=np.float32)
    expected_tail = (3, metadata.input_height, metadata.input_width)
    if array.ndim != 5 or tuple(array.shape[2:]) != expected_tail or array.shape[0] == 0:
        raise ValueError(
            f"expected clips (batch>=1, T, {', '.join(map(str, expected_tail))}), "
            f"got {tuple(array.shape)}"
        )
    if not metadata.dynamic_clip_length and array.shape[1] != metadata.clip_length:
        raise ValueError(
            f"this {metadata.architecture} graph takes T={metadata.clip_length} frames, "
            f"got T={array.shape[1]}"
        )
    return array
