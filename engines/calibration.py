"""Real clips for INT8 calibration: mined from videos by the pipeline's own stages, or read back.

:func:`mine_clips` runs the detector, the per-camera tracker and the clip buffer
(``pipeline.detect``, ``pipeline.track``, ``pipeline.clips``) over video files, so calibration
sees the crops the encoder sees in production (same resize, same sampling policy). Mined clips
are saved as uint8 BGR crops ``(N, T, H, W, 3)`` in an ``.npz`` (key ``crops``);
:func:`load_clips` turns them (or float clips, key ``clips``) into the encoder input contract.
By default the bundled ``assets/videos`` are mined once and the result kept in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from engines.cache import default_cache_dir
from engines.export_onnx import ExportedEncoderMetadata

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_VIDEOS = (
    REPOSITORY_ROOT / "assets" / "videos" / "epfl_terrace1-c0.mp4",
    REPOSITORY_ROOT / "assets" / "videos" / "epfl_terrace1-c1.mp4",
    REPOSITORY_ROOT / "assets" / "videos" / "vtest.avi",
)
BUNDLED_DETECTOR = REPOSITORY_ROOT / "assets" / "weights" / "yolov8_person_hfd.pt"


def crops_to_clips(crops: np.ndarray) -> np.ndarray:
    """uint8 BGR crops ``(N, T, H, W, 3)`` -> float32 ``(N, T, 3, H, W)`` RGB in ``[0, 1]``
    (the transform of ``pipeline.encode.clips_to_batch``)."""
    rgb = crops[..., ::-1].transpose(0, 1, 4, 2, 3)
    return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)


def save_crops(path: Path, crops: np.ndarray) -> None:
    """Save uint8 BGR crops ``(N, T, H, W, 3)`` as ``.npz`` (key ``crops``), atomically."""
    if crops.dtype != np.uint8 or crops.ndim != 5 or crops.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N, T, H, W, 3) crops, got {crops.dtype} {crops.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.npz")
    np.savez_compressed(partial, crops=crops)
    os.replace(partial, path)


def load_clips(path: Path) -> np.ndarray:
    """Clips from a ``.npz``/``.npy`` file as float32 ``(N, T, 3, H, W)`` RGB in ``[0, 1]``.

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
        return crops_to_clips(array)
    if array.ndim == 5 and array.shape[2] == 3:
        return np.ascontiguousarray(array, dtype=np.float32)
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


def mine_clips(
    videos: Sequence[Path],
    clip_length: int,
    crop_size: tuple[int, int],
    *,
    max_clips: int = 256,
    max_frames_per_video: int = 1500,
    frame_step: int = 2,
    detector_weights: Path = BUNDLED_DETECTOR,
) -> np.ndarray:
    """Detect, track and buffer persons in ``videos``; return up to ``max_clips`` clips.

    Args:
        videos: video files, each read from its first frame.
        clip_length: ``T`` of each clip.
        crop_size: ``(H, W)`` of each crop.
        max_frames_per_video: frames read per video at most (``frame_step`` apart).

    Returns:
        uint8 BGR crops ``(N, T, H, W, 3)``.
    """
    import cv2

    from pipeline.clips import ClipBuffer
    from pipeline.config import ClipsConfig, DetectorConfig, TrackerConfig
    from pipeline.detect import PersonDetector
    from pipeline.records import Frame
    from pipeline.track import CameraTracker

    detector = PersonDetector(DetectorConfig(weights=detector_weights))
    clips_config = ClipsConfig(
        clip_length=clip_length,
        crop_height=crop_size[0],
        crop_width=crop_size[1],
        refresh_seconds=1.0,
    )
    mined: list[np.ndarray] = []
    for camera_id, video in enumerate(videos):
        capture = cv2.VideoCapture(str(video))
        frame_rate = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
        tracker = CameraTracker(TrackerConfig(), frame_rate / frame_step)
        buffer = ClipBuffer(clips_config, camera_id)
        try:
            for frame_index in range(max_frames_per_video):
                ok, image = capture.read()
                if not ok or len(mined) >= max_clips:
                    break
                if frame_index % frame_step:
                    continue
                frame = Frame(camera_id, frame_index, frame_index / frame_rate, image, 0.0)
                tracked = tracker.update(detector.detect([frame])[0])
                for clip in buffer.update(tracked).clips:
                    if len(clip.crops) == clip_length:
                        mined.append(clip.crops)
        finally:
            capture.release()
        logger.info("mined %d clips so far (after %s)", len(mined), Path(video).name)
    if not mined:
        raise RuntimeError(f"no clips found in {[str(v) for v in videos]}")
    return np.stack(mined[:max_clips])


def calibration_batches_for(
    metadata: ExportedEncoderMetadata,
    batch_size: int,
    clips_path: Path | None = None,
    *,
    cache_dir: Path | str | None = None,
    max_clips: int = 256,
) -> Iterator[np.ndarray]:
    """Calibration batches for an exported encoder: clips from ``clips_path``, or clips mined
    from the bundled videos (mined once, then kept in the cache).

    A generator: nothing is read or mined until the first batch is asked for, so a build that
    finds a calibration cache never mines.

    Raises:
        ValueError: the clips' ``(T, H, W)`` differ from the encoder's.
    """
    if clips_path is None:
        cache_root = default_cache_dir() if cache_dir is None else Path(cache_dir)
        videos_key = hashlib.sha256(
            "|".join(f"{v.name}:{v.stat().st_size}" for v in BUNDLED_VIDEOS).encode()
        ).hexdigest()[:12]
        clips_path = (
            cache_root
            / "calibration"
            / (
                f"mined-T{metadata.clip_length}-{metadata.input_height}x{metadata.input_width}"
                f"-{max_clips}-{videos_key}.npz"
            )
        )
        if not clips_path.exists():
            logger.info("mining calibration clips from %d bundled videos", len(BUNDLED_VIDEOS))
            crops = mine_clips(
                BUNDLED_VIDEOS,
                metadata.clip_length,
                (metadata.input_height, metadata.input_width),
                max_clips=max_clips,
            )
            save_crops(clips_path, crops)
    clips = load_clips(clips_path)
    expected = (metadata.clip_length, 3, metadata.input_height, metadata.input_width)
    if tuple(clips.shape[1:]) != expected:
        raise ValueError(f"{clips_path}: clips {clips.shape[1:]} but the encoder takes {expected}")
    logger.info("calibrating on %d clips from %s", len(clips), clips_path)
    yield from calibration_batches(clips, batch_size)
