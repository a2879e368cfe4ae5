"""End to end: run.py on a few seconds of both terrace cameras against a real Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import yaml

from pipeline.events import SCHEMA_VERSION, EventType, parse_fields
from pipeline.redis_server import EmbeddedRedis
from tests.conftest import ASSETS, REPOSITORY_ROOT

EVENT_FIELDS = {
    "schema_version",
    "event_id",
    "type",
    "camera_id",
    "track_id",
    "global_id",
    "bbox",
    "frame_index",
    "timestamp",
    "score",
}


def write_config(directory: Path, cameras: list[dict[str, object]]) -> Path:
    config = {
        "cameras": cameras,
        "detector": {"weights": str(ASSETS / "weights" / "yolov8_person_hfd.pt")},
        "outputs": {"run_directory": str(directory / "runs"), "status_interval_seconds": 0.5},
    }
    path = directory / "cams.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def terrace_camera(camera_id: int, start: float, end: float) -> dict[str, object]:
    return {
        "id": camera_id,
        "uri": str(ASSETS / "videos" / f"epfl_terrace1-c{camera_id}.mp4"),
        "fps_cap": 10,
        "start_seconds": start,
        "end_seconds": end,
    }


def read_events(client: redis.Redis) -> list[dict[str, object]]:
    entries = client.xrange("crosscam:events")
    events = []
    for _entry_id, raw in entries:
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        assert set(fields) >= EVENT_FIELDS, f"missing fields in {fields}"
        events.append(parse_fields(fields))
    return events


def run_crosscam(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "run.py", "--quiet", *arguments],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def redis_server(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def test_two_cameras_publish_identities_seen_in_both(tmp_path: Path, redis_server: EmbeddedRedis):
    config = write_config(tmp_path, [terrace_camera(0, 12, 24), terrace_camera(1, 12, 24)])
    mtmc = tmp_path / "out.mtmc"
    completed = run_crosscam(
        "--streams", str(config), "--redis-url", redis_server.url, "--save-mtmc", str(mtmc)
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    client = redis.Redis.from_url(redis_server.url)
    events = read_events(client)
    assert {event["schema_version"] for event in events} == {SCHEMA_VERSION}
    kinds = Counter(event["type"] for event in events)
    assert kinds[EventType.TRACK_STARTED] >= 2
    assert kinds[EventType.IDENTITY_ASSIGNED] >= 2
    assert kinds[EventType.TRACK_ENDED] == kinds[EventType.TRACK_STARTED]
    assert len({event["event_id"] for event in events}) == len(events)

    cameras_by_identity: dict[int, set[int]] = {}
    for event in events:
        if event["type"] == EventType.IDENTITY_ASSIGNED:
            assert int(event["global_id"]) >= 1  # type: ignore[call-overload]
            cameras_by_identity.setdefault(event["global_id"], set()).add(event["camera_id"])  # type: ignore[arg-type]
    assert any(len(cameras) == 2 for cameras in cameras_by_identity.values()), cameras_by_identity

    identity_ids = client.zrange("crosscam:identities", 0, -1)
    assert identity_ids
    stored = client.hgetall(f"crosscam:identity:{identity_ids[0].decode()}")
    assert len(stored[b"embedding"]) == 4 * int(stored[b"embedding_dim"])

    lines = mtmc.read_text().splitlines()
    assert lines
    for line in lines[:50]:
        camera, identity, frame, _x, _y, width, height, world_x, world_y = line.split()
        assert camera in {"0", "1"} and int(identity) >= 1 and int(frame) >= 12 * 25
        assert int(width) > 0 and int(height) > 0 and (world_x, world_y) == ("-1", "-1")
    assert "identities seen in 2+ cameras" in completed.stderr


def test_corrupt_video_gives_one_clear_error_and_other_camera_keeps_running(
    tmp_path: Path, redis_server: EmbeddedRedis
):
    corrupt = tmp_path / "broken.mp4"
    good_bytes = (ASSETS / "videos" / "epfl_terrace1-c1.mp4").read_bytes()
    corrupt.write_bytes(b"\x00not a video\x00" * 100 + good_bytes[50_000:60_000])
    cameras = [terrace_camera(0, 12, 16), {"id": 1, "uri": str(corrupt)}]
    completed = run_crosscam(
        "--streams", str(write_config(tmp_path, cameras)), "--redis-url", redis_server.url
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    error_lines = [line for line in completed.stderr.splitlines() if "broken.mp4" in line]
    assert error_lines and "camera 1" in error_lines[0]
    events = read_events(redis.Redis.from_url(redis_server.url))
    assert {event["camera_id"] for event in events} == {0}
    assert any(event["type"] == EventType.TRACK_STARTED for event in events)


def test_sigint_flushes_in_flight_clips_and_exits_zero(tmp_path: Path, redis_server: EmbeddedRedis):
    cameras = [terrace_camera(0, 40, 100), terrace_camera(1, 40, 100)]
    config = write_config(tmp_path, cameras)
    process = subprocess.Popen(
        [
            sys.executable,
            "run.py",
            "--quiet",
            "--streams",
            str(config),
            "--redis-url",
            redis_server.url,
        ],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and client.xlen("crosscam:events") < 10:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    assert time.monotonic() - signalled < 20
    events = read_events(client)
    kinds = Counter(event["type"] for event in events)
    assert kinds[EventType.TRACK_ENDED] == kinds[EventType.TRACK_STARTED] > 0
    assert kinds[EventType.IDENTITY_ASSIGNED] > 0


def test_demo_config_is_valid_and_points_at_bundled_assets():
    from pipeline.config import load_config

    config = load_config(REPOSITORY_ROOT / "configs" / "demo.yaml")
    assert len(config.cameras) == 2
    assert all(Path(camera.uri).is_file() for camera in config.cameras)
