"""Real clips for INT8 calibration, read from a clips file and cut into calibrator batches.

Clips are uint8 BGR crops ``(N, T, H, W, 3)`` in an ``.npz`` (key ``crops``, as
:func:`save_crops` writes) or float clips (key ``clips``); :func:`load_clips` turns them into
the encoder input contract (or, for a ``uint8_bgr`` graph, into uint8 BGR crops, the graph's
own input). Calibration needs clips of the site the engine will serve: make
them from its footage with ``python -m tools.calibration_clips`` (the pipeline's own detector,
tracker and clip buffer, so calibration sees the crops the encoder sees in production). There
is no default: an INT8 build without clips is an error (:data:`MISSING_CLIPS_MESSAGE`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engines.export_onnx import ExportedEncoderMetadata
from reid_models.clip_input import (
    FLOAT_CLIPS,
    UINT8_CROPS,
    InputFormat,
    clips_to_crops,
    crops_to_clips,
    input_shape,
)

logger = logging.getLogger(__name__)

MISSING_CLIPS_MESSAGE = (
    "INT8 calibration needs clips from your cameras: make them with "
    "'python -m tools.calibration_clips --out clips.npz VIDEO...', then pass "
    "--calibration-clips clips.npz (python -m engines.build) or the encoder option "
    "calibration_clips: clips.npz"
)


class MissingCalibrationClipsError(ValueError):
    """An INT8 build was asked for without a calibration clips file."""


def save_crops(path: Path, crops: np.ndarray) -> None:
    """Save uint8 BGR crops ``(N, T, H, W, 3)`` as ``.npz`` (key ``crops``), atomically."""
    if crops.dtype != np.uint8 or crops.ndim != 5 or crops.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N, T, H, W, 3) crops, got {crops.dtype} {crops.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.npz")
    np.savez_compressed(partial, crops=crops)
    os.replace(partial, path)


def load_clips(path: Path, input_format: InputFormat = FLOAT_CLIPS) -> np.ndarray:
    """Clips from a ``.npz``/``.npy`` file as float32 ``(N, T, 3, H, W)`` RGB in ``[0, 1]``, or
    with ``input_format="uint8_bgr"`` as uint8 BGR crops ``(N, T, H, W, 3)`` (float clips
    rounded to the nearest level).

    Accepted: ``.npz`` with ``crops`` (uint8 BGR ``(N, T, H, W, 3)``, as :func:`save_crops`
    writes) or ``clips`` (float32 ``(N, T, 3, H, W)``); ``.npy`` with either layout.
    """
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as archive:
            array = archive["crops"] if "crops" in archive else archive["clips"]
    else:
        array = np.load(path)
    if array.dtype == np.uint8 and array.ndim == 5 and array.shape[-1] == 3:
        return np.ascontiguousarray(array) if input_format == UINT8_CROPS else crops_to_clips(array)
    if array.ndim == 5 and array.shape[2] == 3:
        clips = np.ascontiguousarray(array, dtype=np.float32)
        return clips_to_crops(clips) if input_format == UINT8_CROPS else clips
    raise ValueError(f"{path}: expected (N, T, H, W, 3) uint8 or (N, T, 3, H, W) float clips")


def calibration_batches(clips: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Full batches of ``batch_size`` clips covering every clip once (the last batch is
    completed from the start, since a calibrator takes fixed-size batches only)."""
    if len(clips) == 0:
        raise ValueError("no calibration clips")
    batch_count = -(-len(clips) // batch_size)
    for index in range(batch_count):
        rows = np.arange(index * batch_size, (index + 1) * batch_size) % len(clips)
        yield clips[rows]


def calibration_batches_for(
    metadata: ExportedEncoderMetadata, batch_size: int, clips_path: Path | None
) -> Iterator[np.ndarray]:
    """Calibration batches for an exported encoder from the clips file ``clips_path``, in the
    graph's input format (``metadata.input_format``: float clips or uint8 BGR crops).

    Checked at once: ``clips_path`` must be given (else :class:`MissingCalibrationClipsError`,
    whose message says how to make and pass clips) and exist. The clips are read lazily, when
    the first batch is asked for, so a build that finds a calibration cache never reads them.

    Raises:
        MissingCalibrationClipsError: ``clips_path`` is ``None``.
        FileNotFoundError: ``clips_path`` does not exist.
        ValueError: (on the first batch) the clips' ``(T, H, W)`` differ from the encoder's.
    """
    if clips_path is None:
        raise MissingCalibrationClipsError(MISSING_CLIPS_MESSAGE)
    clips_path = Path(clips_path)
    if not clips_path.is_file():
        raise FileNotFoundError(f"calibration clips not found: {clips_path}")
    return _batches_from_file(metadata, batch_size, clips_path)


def _batches_from_file(
    metadata: ExportedEncoderMetadata, batch_size: int, clips_path: Path
) -> Iterator[np.ndarray]:
    clips = load_clips(clips_path, metadata.input_format)
    expected = tuple(
        input_shape(
            metadata.input_format,
            len(clips),
            metadata.clip_length,
            metadata.input_height,
            metadata.input_width,
        )[1:]
    )
    if tuple(clips.shape[1:]) != expected:
        raise ValueError(f"{clips_path}: clips {clips.shape[1:]} but the encoder takes {expected}")
    logger.info("calibrating on %d clips from %s", len(clips), clips_path)
    yield from calibration_batches(clips, batch_size)
