"""Camera crops to the encoder input contract (``reid_models.contract``), NumPy only.

The pipeline's clip buffer and the INT8 calibration clips both hold uint8 BGR crops; this is
the one place they become what every encoder takes, so torch, ONNX Runtime and TensorRT are
fed the same values.
"""

from __future__ import annotations

import numpy as np


def crops_to_clips(crops: np.ndarray) -> np.ndarray:
    """uint8 BGR crops ``(N, T, H, W, 3)`` -> float32 ``(N, T, 3, H, W)`` RGB in ``[0, 1]``."""
    rgb = crops[..., ::-1].transpose(0, 1, 4, 2, 3)
    return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)
