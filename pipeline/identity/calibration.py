"""Camera geometry a run can be given: a calibration file, or a user's own calibration.

Two sources, both turned into view-to-view ground-plane homographies
(:class:`~pipeline.identity.homography.ViewHomography`) for the identity layer:

- **A calibration file** written by ``crosscam calibrate`` (:mod:`.calibrate`) and referenced
  from the streams file as ``calibration: calibration.yaml``::

      homographies:
        - from_camera: 0
          to_camera: 1
          matrix: [[...], [...], [...]]   # foot pixels of camera 0 -> foot pixels of camera 1
          inliers: 595
          median_error_px: 7.6

- **A user's calibration**, per camera in the streams file (``cameras[].ground``): either a
  3x3 image-to-ground homography (``ground.homography``) or at least four image↔ground point
  pairs in metres (``ground.points: [{image: [x, y], ground: [X, Y]}, …]``, fitted with
  OpenCV). Two calibrated cameras give ``H(a→b) = G_b⁻¹ · G_a``; it replaces the learned one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.config import (
    CameraConfig,
    ConfigError,
    CrosscamConfig,
    GroundCalibration,
    describe_validation_error,
)
from pipeline.identity.homography import ViewHomography


class CalibratedPair(BaseModel):
    """One learned view-to-view homography in a calibration file."""

    model_config = ConfigDict(extra="forbid")

    from_camera: int = Field(ge=0)
    to_camera: int = Field(ge=0)
    matrix: list[list[float]]
    inliers: int = Field(default=0, ge=0)
    correspondences: int = Field(default=0, ge=0)
    track_pairs: int = Field(default=0, ge=0)
    median_error_px: float = 0.0

    @field_validator("matrix")
    @classmethod
    def _three_by_three(cls, value: list[list[float]]) -> list[list[float]]:
        return _checked_matrix(value, "matrix")


class CalibrationFile(BaseModel):
    """The contents of a calibration YAML file."""

    model_config = ConfigDict(extra="forbid")

    homographies: list[CalibratedPair] = Field(default_factory=list)
    no_overlap: list[list[int]] = Field(
        default_factory=list, description="camera pairs found not to overlap"
    )


def _checked_matrix(value: list[list[float]], name: str) -> list[list[float]]:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (3, 3):
        raise ValueError(f"{name} must be 3x3, got shape {array.shape}")
    if not np.isfinite(array).all() or abs(np.linalg.det(array)) < 1e-12:
        raise ValueError(f"{name} must be finite and invertible")
    return value


def view_homography(pair: CalibratedPair) -> ViewHomography:
    matrix = np.asarray(pair.matrix, dtype=np.float64)
    return ViewHomography(
        pair.from_camera,
        pair.to_camera,
        matrix / matrix[2, 2],
        pair.inliers,
        pair.correspondences,
        pair.track_pairs,
        pair.median_error_px,
        [],
    )


def load_calibration(path: Path) -> dict[tuple[int, int], ViewHomography]:
    """The homographies of a calibration file, both directions, by ``(from, to)`` camera.

    Raises:
        ConfigError: the file is missing, not YAML, or not a calibration (one line, naming it).
    """
    if not path.is_file():
        raise ConfigError(
            f"calibration file not found: {path} (write one with: crosscam calibrate --streams "
            f"cams.yaml --out {path.name})"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        calibration = CalibrationFile.model_validate(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
    except ValidationError as error:
        raise ConfigError(
            f"{path}: not a crosscam calibration file: {describe_validation_error(error)} "
            f"(write a new one with: crosscam calibrate)"
        ) from None
    views: dict[tuple[int, int], ViewHomography] = {}
    for pair in calibration.homographies:
        view = view_homography(pair)
        views[(view.from_camera, view.to_camera)] = view
        views[(view.to_camera, view.from_camera)] = view.inverse()
    return views


def save_calibration(
    path: Path, views: dict[tuple[int, int], ViewHomography], no_overlap: list[tuple[int, int]]
) -> None:
    """Write ``views`` (one direction per camera pair kept) as a calibration file."""
    pairs = [
        CalibratedPair(
            from_camera=view.from_camera,
            to_camera=view.to_camera,
            matrix=[[round(float(v), 9) for v in row] for row in view.matrix],
            inliers=view.inliers,
            correspondences=view.correspondences,
            track_pairs=view.track_pairs,
            median_error_px=round(view.median_error_px, 2),
        )
        for (first, second), view in sorted(views.items())
        if first < second
    ]
    contents = CalibrationFile(homographies=pairs, no_overlap=[list(p) for p in no_overlap])
    header = (
        "# crosscam calibration: view-to-view ground-plane homographies learned from the\n"
        "# footage (foot pixels of from_camera -> foot pixels of to_camera). Reference it from\n"
        "# the streams file with `identity: {calibration: <this file>}`; re-create it with\n"
        "# `crosscam calibrate`.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(contents.model_dump(), sort_keys=False))


def ground_matrix(ground: GroundCalibration) -> np.ndarray:
    """float64 ``(3, 3)`` image-pixel → ground-metre homography of one camera."""
    if ground.homography is not None:
        matrix = np.asarray(ground.homography, dtype=np.float64)
        return matrix / matrix[2, 2]
    image = np.asarray([point.image for point in ground.points], dtype=np.float64)
    world = np.asarray([point.ground for point in ground.points], dtype=np.float64)
    fitted, _ = cv2.findHomography(image, world, 0)
    if fitted is None:
        raise ConfigError(
            "ground.points: no homography fits these points (are four of them on one line?)"
        )
    matrix = np.asarray(fitted, dtype=np.float64)
    return matrix / matrix[2, 2]


def user_homographies(cameras: list[CameraConfig]) -> dict[tuple[int, int], ViewHomography]:
    """View-to-view homographies between every two cameras the user calibrated."""
    grounds = {
        camera.id: ground_matrix(camera.ground) for camera in cameras if camera.ground is not None
    }
    views: dict[tuple[int, int], ViewHomography] = {}
    for first, first_matrix in grounds.items():
        for second, second_matrix in grounds.items():
            if first == second:
                continue
            matrix = np.linalg.inv(second_matrix) @ first_matrix
            views[(first, second)] = ViewHomography(
                first, second, matrix / matrix[2, 2], 0, 0, 0, 0.0, []
            )
    return views


def known_homographies(config: CrosscamConfig) -> dict[tuple[int, int], ViewHomography]:
    """The geometry a run is given: the calibration file's, then the user's own calibration
    of cameras (which wins where both cover a pair). Empty: everything is learned."""
    views: dict[tuple[int, int], ViewHomography] = {}
    if config.identity.calibration is not None:
        views.update(load_calibration(config.identity.calibration))
    views.update(user_homographies(config.cameras))
    return views
