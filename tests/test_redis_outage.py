"""Redis killed for 30 s and restarted during a run: every event is delivered, in order per
camera, counted end to end by a consumer that follows the stream across both Redis lives.

Slow (about 70 s): ``make slow`` or ``pytest --run-slow tests/test_redis_outage.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml

from pipeline.redis_server import EmbeddedRedis, free_tcp_port
from tests.conftest import ASSETS, REPOSITORY_ROOT

OUTAGE_SECONDS = 30.0


class StreamFollower:
    """Reads ``crosscam:events`` as it grows (XREAD), surviving the server going away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[tuple[int, int]] = []  # (sequence, camera_id) in arrival order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last_id = "0-0"
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)
                while not self._stop.is_set():
                    answer = client.xread({"crosscam:events": last_id}, count=500, block=500)
                    for _stream, entries in answer or []:
                        for entry_id, fields in entries:
                            last_id = entry_id.decode()
                            sequence = int(fields[b"event_id"].decode().rsplit(":", 1)[1])
                            self.events.append((sequence, int(fields[b"camera_id"])))
            except redis.RedisError:
                time.sleep(0.2)


@pytest.mark.slow
def test_redis_killed_for_30_s_loses_no_event_and_keeps_order(tmp_path: Path):
    port = free_tcp_port()
    data = tmp_path / "redis"
    server = EmbeddedRedis(data, port=port).start()
    follower = StreamFollower(server.url).start()
    cameras = [
        {
            "id": camera_id,
            "uri": str(ASSETS / "videos" / f"epfl_terrace1-c{camera_id}.mp4"),
            "replay": "realtime",
            "fps_cap": 3,
            "start_seconds": 40,
            "end_seconds": 110,
        }
        for camera_id in (0, 1)
    ]
    config = tmp_path / "cams.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cameras": cameras,
                "detector": {"weights": str(ASSETS / "weights" / "yolov8_person_hfd.pt")},
                "outputs": {"run_directory": str(tmp_path / "runs")},
                "metrics": {"enabled": False},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "run.py", "--quiet", "--streams", str(config), "--redis-url", server.url],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while len(follower.events) < 5 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.2)
        before_outage = len(follower.events)
        assert before_outage >= 5
        server.kill()
        time.sleep(OUTAGE_SECONDS)
        server = EmbeddedRedis(data, port=port).start()
        _, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
        time.sleep(1.0)
        follower.stop()
        server.stop()

    assert process.returncode == 0, stderr[-3000:]
    assert "unreachable" in stderr and "is back" in stderr
    assert "events NOT published" not in stderr
    sequences = [sequence for sequence, _camera in follower.events]
    assert set(sequences) == set(range(1, max(sequences) + 1)), "an event was lost"
    assert max(sequences) > before_outage, "nothing was published after the outage"
    for camera_id in (0, 1):
        seen: list[int] = []
        for sequence, camera in follower.events:
            if camera == camera_id and sequence not in seen:
                seen.append(sequence)
        assert seen == sorted(seen), f"camera {camera_id}: events out of order"
    print(f"{len(set(sequences))} events, {before_outage} before the outage, all delivered")
