"""Make INT8 calibration clips from a site's own footage with the pipeline's own stages.

    python -m tools.calibration_clips --out runs/calibration/site.npz cam0.mp4 cam1.mp4 \
        [--clip-length 8] [--crop-size 256x128] [--max-clips 256]

The detector, the per-camera tracker and the clip buffer (``pipeline.detect``,
``pipeline.track``, ``pipeline.clips``) run over each video from its first frame, so the clips
are the crops the encoder sees in production (same resize, same sampling policy). The file
(uint8 BGR crops ``(N, T, H, W, 3)``, ``engines.calibration.save_crops``) is what
``python -m engines.build --precision int8 --calibration-clips`` and the TensorRT encoder
option ``calibration_clips`` take. ``--clip-length`` and ``--crop-size`` must match the
exported encoder (its ``T`` and input ``H x W``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from engines.calibration import save_crops
from pipeline.clips import ClipBuffer
from pipeline.config import ClipsConfig, DetectorConfig, TrackerConfig
from pipeline.detect import PersonDetector
from pipeline.frame_rate import frame_rate_or_default
from pipeline.records import Frame
from pipeline.track import CameraTracker

logger = logging.getLogger("tools.calibration_clips")


def mine_clips(
    videos: Sequence[Path],
    clip_length: int,
    crop_size: tuple[int, int],
    *,
    max_clips: int = 256,
    max_frames_per_video: int = 1500,
    frame_step: int = 2,
    detector_weights: Path | None = None,
) -> np.ndarray:
    """Detect, track and buffer persons in ``videos``; return up to ``max_clips`` clips.

    Args:
        videos: video files, each read from its first frame.
        clip_length: ``T`` of each clip.
        crop_size: ``(H, W)`` of each crop.
        max_frames_per_video: frames read per video at most (``frame_step`` apart).
        detector_weights: the person detector (default: the pipeline's default detector).

    Returns:
        uint8 BGR crops ``(N, T, H, W, 3)``.
    """
    detector_config = (
        DetectorConfig() if detector_weights is None else DetectorConfig(weights=detector_weights)
    )
    detector = PersonDetector(detector_config)
    clips_config = ClipsConfig(
        clip_length=clip_length,
        crop_height=crop_size[0],
        crop_width=crop_size[1],
        refresh_seconds=1.0,
    )
    mined: list[np.ndarray] = []
    for camera_id, video in enumerate(videos):
        capture = cv2.VideoCapture(str(video))
        frame_rate = frame_rate_or_default(capture.get(cv2.CAP_PROP_FPS))
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


def _crop_size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    try:
        return int(height), int(width)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.calibration_clips", description=__doc__.split("\n")[0]
    )
    parser.add_argument("videos", type=Path, nargs="+", help="video files of the site")
    parser.add_argument("--out", type=Path, required=True, help=".npz clips file to write")
    parser.add_argument("--clip-length", type=int, default=8, help="T of each clip")
    parser.add_argument("--crop-size", type=_crop_size, default=(256, 128), help="HxW")
    parser.add_argument("--max-clips", type=int, default=256)
    parser.add_argument("--max-frames-per-video", type=int, default=1500)
    parser.add_argument("--detector-weights", type=Path, default=None)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    missing = [str(video) for video in arguments.videos if not video.is_file()]
    if missing:
        sys.stderr.write(f"error: video not found: {', '.join(missing)}\n")
        return 2
    crops = mine_clips(
        arguments.videos,
        arguments.clip_length,
        arguments.crop_size,
        max_clips=arguments.max_clips,
        max_frames_per_video=arguments.max_frames_per_video,
        detector_weights=arguments.detector_weights,
    )
    save_crops(arguments.out, crops)
    logger.info("%d clips written to %s", len(crops), arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
