"""Config reload on SIGHUP: run.py as a subprocess on two looped file cameras; a bad file keeps
the running config, a camera removed stops cleanly (ended tracks published, state ``removed`` in
/metrics), one added starts, the other keeps producing frames, SIGINT still exits 0.

Plus the pure parts: the reload plan and track ids that continue across a camera restart.
The subprocess tests take about 20 s and 12 s on a 2-core CPU (most of it loading the models).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import supervision as sv
import yaml

from pipeline.config import CameraConfig, CrosscamConfig
from pipeline.records import Frame, FrameDetections
from pipeline.redis_server import EmbeddedRedis
from pipeline.reload import ConfigReloader, ConfigWatcher, ContinuingTracker, plan_reload
from tests.conftest import ASSETS, REPOSITORY_ROOT
from tests.rtsp_server import free_port
from tests.test_operations import fetch, sample, wait_until_ready, write_config

VIDEOS = ASSETS / "videos"


def file_camera(camera_id: int, view: str) -> dict[str, object]:
    return {
        "id": camera_id,
        "uri": str(VIDEOS / f"epfl_terrace1-{view}.mp4"),
        "replay": "realtime",
        "loop": True,
        "start_seconds": 40,
        "fps_cap": 3,
    }


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def start_crosscam(
    config: Path, redis_url: str, folder: Path, *options: str
) -> tuple[subprocess.Popen[str], int, Path]:
    """``run.py`` on ``config`` with metrics on a free port; stderr goes to ``folder``'s log."""
    port = free_port()
    log = folder / "crosscam.log"
    command = [
        sys.executable, "run.py", "--quiet", *options, "--streams", str(config),
        "--redis-url", redis_url, "--set", f"metrics.port={port}",
    ]  # fmt: skip
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command, cwd=REPOSITORY_ROOT, stdout=subprocess.DEVNULL, stderr=log_file, text=True
        )
    return process, port, log


def interrupt(process: subprocess.Popen[str]) -> None:
    """SIGINT, then wait up to 30 s for the exit (killed and an error if it hangs)."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def wait_for_line(log: Path, text: str, timeout_seconds: float, after: int = 0) -> str:
    """The first log line containing ``text`` past character ``after`` (waits for it)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for line in log.read_text()[after:].splitlines():
            if text in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no log line with {text!r} within {timeout_seconds} s:\n" + tail(log))


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def frames_processed(port: int, camera_id: int) -> float:
    return sample(
        fetch(f"http://127.0.0.1:{port}/metrics")[1], "crosscam_frames_processed_total", camera_id
    )


def wait_for_frames(port: int, camera_id: int, more_than: float, timeout_seconds: float) -> float:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        text = fetch(f"http://127.0.0.1:{port}/metrics")[1]
        if f'crosscam_frames_processed_total{{camera="{camera_id}"}}' in text:
            value = sample(text, "crosscam_frames_processed_total", camera_id)
            if value > more_than:
                return value
        time.sleep(0.3)
    raise AssertionError(
        f"camera {camera_id}: no more than {more_than} frames in {timeout_seconds} s"
    )


def started_track_ids(redis_url: str, camera_id: int) -> list[int]:
    """Track ids of the ``track_started`` events of one camera, in stream order."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return [
        int(fields["track_id"])
        for _, fields in client.xrange("crosscam:events")
        if fields["camera_id"] == str(camera_id) and fields["type"] == "track_started"
    ]


def track_events(redis_url: str, camera_id: int) -> dict[str, set[int]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    events: dict[str, set[int]] = {"track_started": set(), "track_ended": set()}
    for _, fields in client.xrange("crosscam:events"):
        if fields["camera_id"] == str(camera_id) and fields["type"] in events:
            events[fields["type"]].add(int(fields["track_id"]))
    return events


def test_sighup_removes_and_adds_cameras_and_a_bad_file_keeps_the_running_config(
    tmp_path: Path, redis_server: EmbeddedRedis
):
    config = write_config(tmp_path, [file_camera(0, "c0"), file_camera(1, "c1")])
    process, port, log = start_crosscam(config, redis_server.url, tmp_path)
    try:
        wait_until_ready(process, port, timeout_seconds=120)
        wait_for_frames(port, 1, 6, timeout_seconds=30)

        good = config.read_text()
        config.write_text("cameras:\n  - id: 0\n    uri: [unclosed\n")
        process.send_signal(signal.SIGHUP)
        failed = wait_for_line(log, "config reload failed", timeout_seconds=15)
        assert str(config) in failed and "not valid YAML" in failed
        frames_one = frames_processed(port, 1)
        wait_for_frames(port, 1, frames_one + 3, timeout_seconds=15)  # still running
        config.write_text(good)

        mark = len(log.read_text())
        write_config(tmp_path, [file_camera(0, "c0")], matching={"similarity_threshold": 0.7})
        process.send_signal(signal.SIGHUP)
        removed = wait_for_line(log, "camera 1 removed", timeout_seconds=15, after=mark)
        restart = wait_for_line(log, "restart crosscam to apply", timeout_seconds=5, after=mark)
        assert "INFO" in removed and "matching" in restart
        metrics = fetch(f"http://127.0.0.1:{port}/metrics")[1]
        assert 'crosscam_source_state{camera="1",state="removed"} 1.0' in metrics
        assert 'crosscam_frames_processed_total{camera="1"}' not in metrics
        assert 'crosscam_camera_info{camera="1"' not in metrics
        removed_at = time.monotonic()
        frames_zero = frames_processed(port, 0)
        wait_for_frames(port, 0, frames_zero + 6, timeout_seconds=10)
        zero_rate = (frames_processed(port, 0) - frames_zero) / (time.monotonic() - removed_at)
        time.sleep(3.0)  # the flushed last clips are encoded and matched in the next ticks
        ended = track_events(redis_server.url, 1)
        assert ended["track_started"] and ended["track_started"] <= ended["track_ended"]

        mark = len(log.read_text())
        started_before = len(started_track_ids(redis_server.url, 0))
        write_config(tmp_path, [file_camera(0, "c0") | {"fps_cap": 4}, file_camera(2, "c1")])
        process.send_signal(signal.SIGHUP)
        wait_for_line(log, "camera 2 added", timeout_seconds=15, after=mark)
        wait_for_line(log, "camera 0 restarted", timeout_seconds=5, after=mark)
        wait_for_frames(port, 2, 3, timeout_seconds=20)
        wait_for_frames(port, 0, frames_processed(port, 0) + 6, timeout_seconds=20)
        deadline = time.monotonic() + 20  # the restarted camera 0 tracks people again
        while len(started_track_ids(redis_server.url, 0)) == started_before:
            assert time.monotonic() < deadline, "camera 0: no track after its restart"
            time.sleep(0.3)
        health = fetch(f"http://127.0.0.1:{port}/healthz")[1]
        assert '"1"' not in health and '"2"' in health
    finally:
        interrupt(process)
    text = log.read_text()
    assert process.returncode == 0, tail(log)
    assert "Traceback" not in text
    assert text.count("camera 1 removed") == 1
    started = started_track_ids(redis_server.url, 0)
    assert len(started) == len(set(started)), started  # the restart reused no track id
    assert text.count("restart crosscam to apply") == 1  # camera-only reloads do not warn
    assert zero_rate > 1.5, zero_rate  # fps_cap 3: camera 0 did not stall
    print(f"camera 0 at {zero_rate:.1f} fps right after camera 1 was removed")


def test_watch_config_applies_a_rewritten_file(tmp_path: Path, redis_server: EmbeddedRedis):
    config = write_config(tmp_path, [file_camera(0, "c0"), file_camera(1, "c1")])
    process, port, log = start_crosscam(config, redis_server.url, tmp_path, "--watch-config")
    try:
        wait_until_ready(process, port, timeout_seconds=120)
        write_config(tmp_path, [file_camera(1, "c1")])
        wait_for_line(log, "camera 0 removed", timeout_seconds=15)
        wait_for_frames(port, 1, frames_processed(port, 1) + 3, timeout_seconds=15)
    finally:
        interrupt(process)
    assert process.returncode == 0, tail(log)
    assert "changed: reloading the config" in log.read_text()


def camera(camera_id: int, **settings: object) -> CameraConfig:
    return CameraConfig.model_validate({"id": camera_id, "uri": "rtsp://10.0.0.7/s", **settings})


def test_reload_plan_sorts_camera_changes_from_restart_only_keys():
    current = CrosscamConfig(cameras=[camera(0), camera(1), camera(2, fps_cap=5)])
    new = CrosscamConfig(cameras=[camera(0), camera(2, fps_cap=3), camera(4)])
    new.matching.similarity_threshold = 0.5
    plan = plan_reload(current, new)
    assert plan.removed == [1]
    assert [c.id for c in plan.changed] == [2] and [c.id for c in plan.added] == [4]
    assert plan.restart_needed == ["matching"]
    unchanged = plan_reload(current, current.model_copy(deep=True))
    assert unchanged.empty and not unchanged.restart_needed


def test_reloader_logs_one_line_naming_the_file_and_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump({"cameras": [{"id": 0, "uri": "rtsp://x/s", "fps": 3}]}))
    assert ConfigReloader(path).load() is None
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(path) in errors[0] and "cameras.0.fps" in errors[0]


class CountingTracker:
    """A fake tracker that numbers each detection from 0, like a fresh ByteTrack."""

    def update(self, frame_detections: FrameDetections) -> FrameDetections:
        count = len(frame_detections.detections)
        frame_detections.detections.tracker_id = np.arange(count, dtype=np.int64)
        return frame_detections

    def reset(self) -> None:
        pass


def test_restarted_camera_track_ids_continue_after_the_old_ones():
    detections = sv.Detections(xyxy=np.zeros((2, 4), dtype=np.float32))
    frame = Frame(0, 0, 0.0, np.zeros((4, 4, 3), dtype=np.uint8), 0.0)
    tracked = ContinuingTracker(CountingTracker(), 7).update(FrameDetections(frame, detections))
    assert tracked.detections.tracker_id.tolist() == [7, 8]


def test_watch_config_calls_back_once_per_change(tmp_path: Path):
    path = tmp_path / "cams.yaml"
    path.write_text("cameras: []\n")
    changes: list[float] = []
    watcher = ConfigWatcher(path, lambda: changes.append(time.monotonic()), 0.05).start()
    try:
        time.sleep(0.3)
        assert changes == []  # nothing changed yet
        replacement = tmp_path / "cams.yaml.new"  # editors replace the file
        replacement.write_text("cameras: [{id: 0, uri: rtsp://x/s}]\n")
        replacement.replace(path)
        deadline = time.monotonic() + 5
        while not changes and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        watcher.stop()
    assert len(changes) == 1
