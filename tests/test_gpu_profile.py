"""The streams-per-machine profile (``benchmarks/gpu_profile.py``): video conversion, the
budget, the capacity search; the whole run on the CPU is marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from benchmarks.gpu_profile import (
    Budget,
    StreamTrial,
    VideoFormat,
    find_capacity,
    parse_decoders,
    prepare_streams,
)
from benchmarks.pipeline import Measurement
from pipeline.config import CrosscamConfig, ReplayMode
from tests.conftest import ASSETS, REPOSITORY_ROOT


def test_video_format_parses_and_rejects() -> None:
    assert VideoFormat.parse("1920x1080", 30) == VideoFormat(1920, 1080, 30.0)
    for resolution, fps in (("1080p", 30.0), ("1921x1080", 30.0), ("1920x1080", 0.0)):
        with pytest.raises(ValueError, match="--resolution"):
            VideoFormat.parse(resolution, fps)


def test_decoders_are_checked_before_anything_runs() -> None:
    assert parse_decoders("opencv, nvdec") == ["opencv", "nvdec"]
    for text in ("opencv,cuvid", ""):
        with pytest.raises(ValueError, match="--decoders takes names from opencv, pyav, nvdec"):
            parse_decoders(text)


def measurement(streams: int, fps: float, dropped: int, latencies: list[float]) -> Measurement:
    return Measurement(
        system="crosscam",
        streams=streams,
        wall_seconds=10.0,
        frames=round(fps * 10),
        frames_dropped=dropped,
        latency={"frame_to_identity": latencies},
    )


def test_the_budget_names_the_first_criterion_missed() -> None:
    budget = Budget(p99_ms=100.0, max_drop_fraction=0.01, min_rate_fraction=0.95)
    fast = [20.0] * 99 + [90.0]
    assert budget.judge(measurement(2, 60.0, 0, fast), fps=30.0) == (True, "within budget")
    assert "p99" in budget.judge(measurement(2, 60.0, 0, [20.0] * 90 + [400.0] * 10), 30.0)[1]
    assert "dropped 50" in budget.judge(measurement(2, 60.0, 50, fast), 30.0)[1]
    assert "of 60 frames/s" in budget.judge(measurement(2, 50.0, 0, fast), 30.0)[1]
    assert budget.judge(measurement(2, 60.0, 0, []), 30.0) == (False, "no identity was published")


def fake_trial(capacity: int):
    def trial(streams: int) -> StreamTrial:
        passed = streams <= capacity
        return StreamTrial("opencv", streams, 0.0, 0.0, 0, 0, 0.0, 0.0, 1, passed, "")

    return trial


@pytest.mark.parametrize(
    ("capacity", "carried", "order"),
    [
        (5, 5, [1, 2, 4, 8, 6, 5]),
        (8, 8, [1, 2, 4, 8, 16, 12, 10, 9]),
        (0, 0, [1]),
        (100, 64, [1, 2, 4, 8, 16, 32, 64]),
    ],
)
def test_capacity_doubles_then_bisects(capacity: int, carried: int, order: list[int]) -> None:
    found, trials = find_capacity(fake_trial(capacity), max_streams=64)
    assert found == carried
    assert [trial.streams for trial in trials] == order


def test_streams_are_converted_once_and_replayed_at_their_pace(tmp_path: Path) -> None:
    config = CrosscamConfig.model_validate(
        {
            "cameras": [
                {
                    "id": 0,
                    "uri": str(ASSETS / "videos" / "epfl_terrace1-c0.mp4"),
                    "start_seconds": 40,
                    "fps_cap": 10,
                }
            ]
        }
    )
    video_format = VideoFormat(320, 180, 30.0)
    prepared = prepare_streams(config, video_format, 1.0, cache_dir=tmp_path)
    camera = prepared.cameras[0]
    capture = cv2.VideoCapture(camera.uri)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        320,
        180,
    )
    assert capture.get(cv2.CAP_PROP_FPS) == 30.0
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 30
    capture.release()
    assert camera.replay is ReplayMode.REALTIME and camera.fps_cap is None
    assert camera.start_seconds == 0.0 and config.cameras[0].start_seconds == 40
    written = Path(camera.uri).stat().st_mtime_ns
    again = prepare_streams(config, video_format, 1.0, cache_dir=tmp_path)
    assert again.cameras[0].uri == camera.uri
    assert Path(camera.uri).stat().st_mtime_ns == written  # cached, not converted again


@pytest.mark.slow
def test_profile_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    from benchmarks.gpu_profile import main

    arguments = ["--streams", str(REPOSITORY_ROOT / "configs" / "demo.yaml"), "--device", "cpu"]
    arguments += ["--resolution", "480x270", "--fps", "5", "--duration", "4"]
    arguments += ["--decoders", "opencv,pyav", "--max-streams", "2", "--budget-ms", "60000"]
    arguments += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert main(arguments) == 0
    report = json.loads((tmp_path / "out" / "gpu_profile.json").read_text())
    assert set(report["capacity"]) == {"opencv", "pyav"}
    assert all(trial["frames"] > 0 for trial in report["trials"])
    assert (tmp_path / "out" / "gpu_profile.png").stat().st_size > 0
