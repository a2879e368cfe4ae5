"""Calibration files, a user's own camera calibration, and ``crosscam calibrate``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.config import ConfigError, load_config
from pipeline.identity import calibrate
from pipeline.identity.calibration import known_homographies, load_calibration
from pipeline.identity.homography import project
from pipeline.identity.track_log import TrackLog
from tests.test_refine import MATRIX, _calibration_crowd

REPOSITORY = Path(__file__).resolve().parents[1]
VIDEOS = REPOSITORY / "assets" / "videos"


def _streams(tmp_path: Path, extra: str = "", cameras: str = "") -> Path:
    path = tmp_path / "cams.yaml"
    camera_lines = cameras or (
        f"  - {{id: 0, uri: {VIDEOS / 'epfl_terrace1-c0.mp4'}}}\n"
        f"  - {{id: 1, uri: {VIDEOS / 'epfl_terrace1-c1.mp4'}}}\n"
    )
    path.write_text("cameras:\n" + camera_lines + extra)
    return path


def _crowd_log(tmp_path: Path) -> Path:
    log = TrackLog()
    _calibration_crowd(log, np.random.default_rng(0), people=10)
    path = tmp_path / "tracks.npz"
    log.save(path)
    return path


def test_calibrate_writes_a_file_the_streams_file_loads(tmp_path, capsys):
    streams = _streams(tmp_path)
    out = tmp_path / "calibration.yaml"
    code = calibrate.main(
        ["--streams", str(streams), "--track-log", str(_crowd_log(tmp_path)), "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == calibrate.EXIT_WRITTEN
    assert "cameras 0 -> 1:" in printed and "inliers" in printed
    picture = cv2.imread(str(out.with_suffix(".png")))
    assert picture is not None and picture.shape[1] == 3 * 360
    config = load_config(
        _streams(tmp_path, extra=f"identity:\n  calibration: {out.name}\n"), require_cameras=True
    )
    views = known_homographies(config)
    probe = np.array([[100.0, 200.0], [250.0, 260.0]])
    np.testing.assert_allclose(views[(0, 1)].project(probe), project(MATRIX, probe), atol=1.0)
    np.testing.assert_allclose(views[(1, 0)].project(project(MATRIX, probe)), probe, atol=1.0)


def test_calibrate_says_when_no_views_overlap(tmp_path, capsys):
    log = TrackLog()
    rng = np.random.default_rng(1)
    _calibration_crowd(log, rng)
    for key in [key for key in log.records if key[0] == 1]:  # camera 1 sees elsewhere
        record = log.records[key]
        start = rng.uniform([40, 120], [320, 280])
        velocity = rng.uniform(-20, 20, size=2)
        for index in range(len(record.boxes)):
            x, y = start + velocity * index / 10.0
            record.boxes[index] = np.array([x - 15, y - 80, x + 15, y], dtype=np.float32)
    path = tmp_path / "tracks.npz"
    log.save(path)
    out = tmp_path / "calibration.yaml"
    code = calibrate.main(
        ["--streams", str(_streams(tmp_path)), "--track-log", str(path), "--out", str(out)]
    )
    assert code == calibrate.EXIT_NO_OVERLAP
    assert "no overlap found" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize(
    "contents, expected",
    [
        ("homographies: [{from_camera: 0, to_camera: 1, matrix: [[1, 0], [0, 1]]}]", "3x3"),
        ("homographies: [{from_camera: 0, to_camera: 1}]", "matrix"),
        ("cameras: []", "not a crosscam calibration file"),
        ("homographies: [ {", "not valid YAML"),
    ],
)
def test_a_bad_calibration_file_is_one_clear_error(tmp_path, contents, expected):
    path = tmp_path / "calibration.yaml"
    path.write_text(contents)
    with pytest.raises(ConfigError) as raised:
        load_calibration(path)
    message = str(raised.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_a_missing_calibration_file_names_the_fix(tmp_path):
    streams = _streams(tmp_path, extra="identity:\n  calibration: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="crosscam calibrate"):
        load_config(streams)


def test_user_ground_calibration_relates_the_views(tmp_path):
    """Each camera calibrated to the ground (metres) by points or a matrix: the view-to-view
    homography is derived from them, and it replaces a calibration file's."""
    ground_of_first = np.array([[0.02, 0.0, -1.0], [0.0, 0.03, -2.0], [0.0, 0.0, 1.0]])
    ground_of_second = ground_of_first @ np.linalg.inv(MATRIX)
    image_points = np.array([[40.0, 150], [320, 150], [320, 280], [40, 280], [180, 220]])
    ground_points = project(ground_of_first, image_points)
    points_yaml = ", ".join(
        f"{{image: [{x}, {y}], ground: [{gx:.6f}, {gy:.6f}]}}"
        for (x, y), (gx, gy) in zip(image_points, ground_points, strict=True)
    )
    matrix_yaml = yaml.safe_dump(ground_of_second.tolist(), default_flow_style=True).strip()
    first, second = VIDEOS / "epfl_terrace1-c0.mp4", VIDEOS / "epfl_terrace1-c1.mp4"
    cameras = (
        f"  - {{id: 0, uri: {first}, ground: {{points: [{points_yaml}]}}}}\n"
        f"  - {{id: 1, uri: {second}, ground: {{homography: {matrix_yaml}}}}}\n"
    )
    config = load_config(_streams(tmp_path, cameras=cameras))
    views = known_homographies(config)
    probe = np.array([[100.0, 200.0], [250.0, 260.0]])
    np.testing.assert_allclose(views[(0, 1)].project(probe), project(MATRIX, probe), atol=0.5)


def test_user_ground_calibration_needs_four_points(tmp_path):
    cameras = (
        f"  - {{id: 0, uri: {VIDEOS / 'epfl_terrace1-c0.mp4'}, "
        "ground: {points: [{image: [0, 0], ground: [0, 0]}]}}\n"
    )
    with pytest.raises(ConfigError, match="at least 4"):
        load_config(_streams(tmp_path, cameras=cameras))


def test_calibrate_learns_the_bundled_views_from_the_cameras(tmp_path, capsys):
    """The real path: 30 s of both terrace cameras through the pipeline (detector, tracker,
    encoder, a throwaway embedded Redis), then the fit and its picture."""
    out = tmp_path / "calibration.yaml"
    streams = REPOSITORY / "configs" / "demo.yaml"
    code = calibrate.main(["--streams", str(streams), "--seconds", "30", "--out", str(out)])
    assert code == calibrate.EXIT_WRITTEN, capsys.readouterr().out
    views = load_calibration(out)
    assert views[(0, 1)].inliers >= 30
    assert cv2.imread(str(out.with_suffix(".png"))) is not None
