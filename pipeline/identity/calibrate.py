"""``crosscam calibrate`` (``python run.py calibrate``): learn how the camera views relate.

    crosscam calibrate --streams cams.yaml [--out calibration.yaml] [--picture views.png]
                       [--seconds 120] [--track-log run.tracks.npz] [--set key=value …]

Runs the pipeline over the cameras for ``--seconds`` of footage (files: from their
``start_seconds``, however long that takes; live cameras: that long), on a fresh embedded Redis
in a temporary folder (stored identities are not touched), or reads a saved track log
instead, learns the ground-plane homography of every camera pair whose views overlap (no labels:
:mod:`pipeline.identity.homography`), prints per pair its inliers and reprojection error, and
writes:

- the calibration file (:mod:`pipeline.identity.calibration`), which the streams file
  references as ``identity: {calibration: calibration.yaml}``;
- a picture, one row per overlapping pair: the first view with the feet it was learned from,
  the second view with those feet carried across (red) next to where they really were
  (green), and the first view warped onto the second's ground plane, so a glance shows
  whether the ground lines up.

Exit codes: 0 written; 1 no pair of cameras found to overlap (nothing written); 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.config import ConfigError, CrosscamConfig, load_config
from pipeline.identity.calibration import save_calibration
from pipeline.identity.homography import ViewHomography
from pipeline.identity.refine import centred_embeddings, learn_homographies
from pipeline.identity.track_log import TrackLog
from pipeline.identity.trajectories import common_positions

if TYPE_CHECKING:
    from pipeline.runner import Pipeline

logger = logging.getLogger("crosscam.calibrate")

EXIT_WRITTEN, EXIT_NO_OVERLAP, EXIT_USAGE = 0, 1, 2


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="crosscam calibrate",
        description="Learn the ground-plane homographies between overlapping camera views.",
    )
    parser.add_argument("--streams", type=Path, required=True, help="camera YAML file")
    parser.add_argument(
        "--out", type=Path, default=None, help="calibration file (default: next to --streams)"
    )
    parser.add_argument(
        "--picture", type=Path, default=None, help="picture of the fit (default: --out as .png)"
    )
    parser.add_argument(
        "--seconds", type=float, default=120.0,
        help="watch the cameras this long (files: from their start_seconds); default 120",
    )  # fmt: skip
    parser.add_argument(
        "--track-log", type=Path, default=None,
        help="learn from this saved track log (outputs.save_track_log) instead of running",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key (repeatable)",
    )  # fmt: skip
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def record_tracks(config: CrosscamConfig, seconds: float) -> TrackLog:
    """Run the pipeline for ``seconds`` on a throwaway embedded Redis; its track log."""
    from pipeline.redis_server import EmbeddedRedis
    from pipeline.runner import Pipeline

    for camera in config.cameras:
        end = camera.start_seconds + seconds
        camera.end_seconds = end if camera.end_seconds is None else min(camera.end_seconds, end)
    if not all(camera.is_file for camera in config.cameras):  # live: watch for that long
        config.max_seconds = seconds if config.max_seconds is None else config.max_seconds
    config.metrics.enabled = False
    config.identity.refine_at_end = False
    config.outputs.save_mtmc = None
    config.outputs.save_video = None
    config.redis.url = ""
    config.redis.restore_identities = False
    with tempfile.TemporaryDirectory(prefix="crosscam-calibrate-") as scratch:
        scratch_path = Path(scratch)
        config.outputs.run_directory = scratch_path
        config.outputs.save_track_log = scratch_path / "tracks.npz"
        config.redis.spool_directory = scratch_path / "spool"
        embedded = EmbeddedRedis(scratch_path / "redis").start()
        try:
            pipeline = Pipeline(
                config, embedded.url, "calibrate", scratch_path, on_tick=_progress(seconds)
            )
            pipeline.run()
        finally:
            embedded.stop()
            sys.stderr.write("\n")
        assert pipeline.track_log is not None
        return pipeline.track_log


def _progress(seconds: float) -> Callable[[Pipeline], None]:
    """An ``on_tick`` callback printing how much footage has been watched."""
    from rich.console import Console

    console = Console(stderr=True)
    newest: dict[int, float] = {}
    first: dict[int, float] = {}

    def on_tick(pipeline: Pipeline) -> None:
        log = pipeline.track_log
        for record in log.records.values() if log is not None else []:
            if record.timestamps:
                camera = record.camera_id
                first.setdefault(camera, record.timestamps[0])
                newest[camera] = max(newest.get(camera, 0.0), record.timestamps[-1])
        watched = min((newest[c] - first[c] for c in newest), default=0.0)
        tracks = len(log) if log is not None else 0
        console.print(
            f"calibrating: {watched:5.1f} of {seconds:.0f} s watched, {tracks} tracks",
            end="\r",
            highlight=False,
        )

    return on_tick


def learn(log: TrackLog, config: CrosscamConfig) -> dict[tuple[int, int], ViewHomography]:
    """The learned homographies of ``log``'s cameras (both directions)."""
    records = log.usable(config.identity.min_boxes, need_embedding=False)
    trajectories = [record.trajectory() for record in records]
    embeddings = centred_embeddings(records, config.identity.center_cameras)
    return learn_homographies(records, trajectories, embeddings, config.identity)


def describe(views: dict[tuple[int, int], ViewHomography], cameras: list[int]) -> list[str]:
    """One line per camera pair: the fit, or that the views were found not to overlap."""
    lines = []
    for index, first in enumerate(cameras):
        for second in cameras[index + 1 :]:
            view = views.get((first, second))
            if view is None:
                lines.append(f"cameras {first} -> {second}: no overlap found")
                continue
            lines.append(
                f"cameras {first} -> {second}: {view.inliers} inliers of "
                f"{view.correspondences} correspondences from {view.track_pairs} track pairs, "
                f"median reprojection error {view.median_error_px:.1f} px"
            )
    return lines


def first_frame(uri: str, at_seconds: float) -> np.ndarray | None:
    """One BGR frame of a camera (files: at ``at_seconds``), or None when unreadable."""
    capture = cv2.VideoCapture(int(uri) if uri.isdigit() else uri)
    try:
        if at_seconds > 0:
            capture.set(cv2.CAP_PROP_POS_MSEC, at_seconds * 1000.0)
        ok, image = capture.read()
        return image if ok else None
    finally:
        capture.release()


def draw_pair(
    first_image: np.ndarray,
    second_image: np.ndarray,
    view: ViewHomography,
    log: TrackLog,
    points_per_pair: int = 12,
) -> np.ndarray:
    """Three panels side by side (see the module docstring), each of the second view's size.

    A grid over the ground the first camera's feet covered is drawn in the first view and,
    carried by the homography, in the warped panel: straight, evenly spaced lines on the
    second view's floor mean the ground planes agree.
    """
    height, width = second_image.shape[:2]
    scale = np.diag([width / first_image.shape[1], height / first_image.shape[0], 1.0])
    first = cv2.resize(first_image, (width, height))
    second = second_image.copy()
    warped = cv2.warpPerspective(first_image, view.matrix, (width, height))
    overlay = cv2.addWeighted(second_image, 0.5, warped, 0.5, 0.0)
    all_feet = []
    for first_key, second_key in view.pairs:
        if first_key not in log.records or second_key not in log.records:
            continue
        second_trajectory = log.records[second_key].trajectory()
        _, feet, other_feet = common_positions(
            log.records[first_key].trajectory(), second_trajectory
        )
        if len(feet) == 0:
            continue
        keep = np.unique(np.linspace(0, len(feet) - 1, points_per_pair).round().astype(int))
        feet, other_feet = feet[keep], other_feet[keep]
        all_feet.append(feet)
        carried = view.project(feet)
        for point, target, actual in zip(_scaled(feet, scale), carried, other_feet, strict=True):
            cv2.circle(first, _pixel(point), 2, (0, 200, 0), -1)
            cv2.line(second, _pixel(actual), _pixel(target), (0, 220, 255), 1)
            cv2.circle(second, _pixel(actual), 2, (0, 200, 0), -1)
            cv2.circle(second, _pixel(target), 2, (0, 0, 255), -1)
    if all_feet:
        _draw_ground_grid(first, overlay, np.concatenate(all_feet), view, scale)
    labels = [
        f"camera {view.from_camera}: feet and ground grid",
        f"camera {view.to_camera}: green seen, red carried",
        f"camera {view.from_camera} warped onto {view.to_camera}",
    ]
    panels = [first, second, overlay]
    for panel, label in zip(panels, labels, strict=True):
        for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(panel, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, thickness)
    return np.hstack(panels)


def _draw_ground_grid(
    first: np.ndarray,
    overlay: np.ndarray,
    feet: np.ndarray,
    view: ViewHomography,
    scale: np.ndarray,
    lines: int = 7,
) -> None:
    """A grid spanning the feet (first view pixels, from the 5th to the 95th percentile) in
    the first view and its image under the homography in the overlay."""
    low, high = np.percentile(feet, 5, axis=0), np.percentile(feet, 95, axis=0)
    steps = np.linspace(0.0, 1.0, 50)[:, None]
    for fraction in np.linspace(0.0, 1.0, lines):
        for start, end in (
            (
                low + [fraction * (high[0] - low[0]), 0.0],
                low + [fraction * (high[0] - low[0]), high[1] - low[1]],
            ),
            (
                low + [0.0, fraction * (high[1] - low[1])],
                low + [high[0] - low[0], fraction * (high[1] - low[1])],
            ),
        ):
            segment = start + steps * (end - start)
            for panel, points in (
                (first, _scaled(segment, scale)),
                (overlay, view.project(segment)),
            ):
                cv2.polylines(panel, [np.round(points).astype(np.int32)], False, (255, 200, 0), 1)


def _scaled(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.hstack([points, np.ones((len(points), 1))]) @ scale.T)[:, :2]


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return (round(float(point[0])), round(float(point[1])))


def save_picture(
    path: Path,
    config: CrosscamConfig,
    views: dict[tuple[int, int], ViewHomography],
    log: TrackLog,
) -> bool:
    """Write the picture (one row per overlapping pair); False when no frame could be read."""
    cameras = {camera.id: camera for camera in config.cameras}
    rows = []
    for (first, second), view in sorted(views.items()):
        if first > second or first not in cameras or second not in cameras:
            continue
        images = [
            first_frame(cameras[c].uri, cameras[c].start_seconds + 1.0) for c in (first, second)
        ]
        if images[0] is None or images[1] is None:
            continue
        rows.append(draw_pair(images[0], images[1], view, log))
    if not rows:
        return False
    width = max(row.shape[1] for row in rows)
    padded = [cv2.copyMakeBorder(r, 0, 4, 0, width - r.shape[1], cv2.BORDER_CONSTANT) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    return bool(cv2.imwrite(str(path), np.vstack(padded)))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("ultralytics", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(arguments.streams, arguments.overrides)
        if arguments.seconds <= 0:
            raise ConfigError(f"--seconds must be positive, got {arguments.seconds}")
        if arguments.track_log is not None:
            if not arguments.track_log.is_file():
                raise ConfigError(f"--track-log: file not found: {arguments.track_log}")
            log = TrackLog.load(arguments.track_log)
        else:
            log = record_tracks(config, arguments.seconds)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    camera_ids = sorted({camera.id for camera in config.cameras})
    views = learn(log, config)
    for line in describe(views, camera_ids):
        sys.stdout.write(line + "\n")
    if not views:
        sys.stdout.write(
            "no camera pair was found to overlap; nothing written (views that never share a "
            "person at the same time are related by matching.topology instead)\n"
        )
        return EXIT_NO_OVERLAP
    out = arguments.out or arguments.streams.resolve().parent / "calibration.yaml"
    no_overlap = [
        (first, second)
        for index, first in enumerate(camera_ids)
        for second in camera_ids[index + 1 :]
        if (first, second) not in views
    ]
    save_calibration(out, views, no_overlap)
    sys.stdout.write(f"calibration written to {out}\n")
    picture = arguments.picture or out.with_suffix(".png")
    if save_picture(picture, config, views, log):
        sys.stdout.write(f"picture written to {picture}\n")
    else:
        sys.stdout.write("no picture: no frame could be read from the cameras\n")
    sys.stdout.write(
        f"use it: add to {arguments.streams.name}:  identity: {{calibration: {out}}}\n"
    )
    return EXIT_WRITTEN


if __name__ == "__main__":
    sys.exit(main())
