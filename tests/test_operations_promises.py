"""Operations that keep their promises (issue 15 items 3, 4, 5, 6, 8, 9): real ``run.py``
processes on the bundled videos against real Redis servers (embedded, and external ones
started by the tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import yaml

from pipeline.config import PROJECT_ROOT, load_config
from pipeline.events import Event, EventType
from pipeline.publish import spool_folder_name
from pipeline.redis_server import EmbeddedRedis, free_tcp_port
from pipeline.spool import DiskSpool
from tests.conftest import ASSETS, REPOSITORY_ROOT

VIDEOS = ASSETS / "videos"
WEIGHTS = ASSETS / "weights" / "yolov8_person_hfd.pt"
EVENTS = "crosscam:events"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


def segment_camera(
    camera_id: int, start: float, end: float | None = None, **settings: object
) -> dict[str, object]:
    """A bundled terrace view from ``start`` (to ``end``) seconds at 5 frames/s."""
    camera: dict[str, object] = {
        "id": camera_id,
        "uri": str(VIDEOS / f"epfl_terrace1-c{camera_id}.mp4"),
        "fps_cap": 5,
        "start_seconds": start,
        **settings,
    }
    if end is not None:
        camera["end_seconds"] = end
    return camera


def write_cams(directory: Path, cameras: list[dict[str, object]], defaults: bool = False) -> Path:
    """``cams.yaml`` in ``directory``; ``defaults``: only the cameras, every path left to its
    default (bundled weights, run data in the project)."""
    config: dict[str, Any] = {"cameras": cameras}
    if not defaults:
        config |= {
            "detector": {"weights": str(WEIGHTS), "image_size": 320},
            "encoder": {"backend": "onnxruntime"},
            "metrics": {"enabled": False},
            "outputs": {"run_directory": str(directory / "runs")},
        }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cams.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def crosscam(*arguments: str) -> list[str]:
    """The command line of ``run.py`` (a subcommand such as ``check`` first), without the
    live status line."""
    return [sys.executable, str(REPOSITORY_ROOT / "run.py"), *arguments, "--quiet"]


def run_crosscam(
    *arguments: str, cwd: Path = REPOSITORY_ROOT, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        crosscam(*arguments), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def stream_events(url: str, stream: str = EVENTS) -> list[dict[str, str]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return [fields for _, fields in client.xrange(stream)]
    finally:
        client.close()


def wait_for_events(url: str, kind: str, count: int, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if sum(fields["type"] == kind for fields in stream_events(url)) >= count:
                return
        except redis.RedisError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"fewer than {count} {kind} events after {timeout_seconds} s")


class StderrReader:
    """Collects a process's stderr lines on a thread, so the test can wait for one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        self._stream = process.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout_seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.text[-3000:]}")

    @property
    def text(self) -> str:
        self._thread.join(timeout=0 if self._thread.is_alive() else None)
        return "".join(self.lines)


def spooled_pairs(run_id: str, count: int, camera_id: int = 9) -> list[dict[str, str]]:
    """Stream fields of ``count`` track_started/track_ended pairs an earlier run spooled."""
    records = []
    for track_id in range(count):
        for sequence, kind in enumerate((EventType.TRACK_STARTED, EventType.TRACK_ENDED)):
            event = Event(
                type=kind,
                camera_id=camera_id,
                track_id=track_id,
                global_id=-1,
                bbox=np.asarray([1, 2, 3, 4], dtype=np.float32),
                frame_index=track_id,
                timestamp=float(track_id),
                score=0.9,
                captured_at=0.0,
                event_id=f"{run_id}:{2 * track_id + sequence + 1}",
            )
            records.append(event.to_fields())
    return records


def test_ctrl_c_to_the_process_group_keeps_the_final_flush(tmp_path: Path) -> None:
    """Item 3: SIGINT to the whole process group, as a terminal's Ctrl-C, on the default
    embedded Redis: the last events and identity updates still reach it, exit 0."""
    camera = segment_camera(0, 40.0, replay="realtime", loop=True)
    config = write_cams(tmp_path, [camera])
    process = subprocess.Popen(
        crosscam("--streams", str(config)),
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, which the test signals as a terminal would
    )
    stderr = StderrReader(process)
    try:
        url = stderr.wait_for(r"embedded Redis at (redis://\S+)", 120).group(1)
        wait_for_events(url, "identity_assigned", 1, timeout_seconds=120)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = stderr.text
    assert process.returncode == 0, text[-3000:]
    assert " ERROR " not in text and "unreachable" not in text, text[-3000:]
    spool = tmp_path / "runs" / "spool" / "embedded" / "spool.jsonl"
    assert not spool.exists() or spool.stat().st_size == 0
    with EmbeddedRedis(tmp_path / "runs" / "redis") as server:
        events = stream_events(server.url)
        started = Counter(
            (e["camera_id"], e["track_id"]) for e in events if e["type"] == "track_started"
        )
        ended = Counter(
            (e["camera_id"], e["track_id"]) for e in events if e["type"] == "track_ended"
        )
        assert started and started == ended  # every track of the run ended in Redis
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assigned = {int(e["global_id"]) for e in events if e["type"] == "identity_assigned"}
        assert client.keys("crosscam:identity:*")  # the identity hashes were written
        assert int(client.get("crosscam:max_global_id") or 0) >= max(assigned)
        client.close()


def test_a_config_outside_the_project_with_default_paths_works(tmp_path: Path) -> None:
    """Item 4: a cams.yaml in another folder naming only its cameras: the bundled weights and
    the run folder come from the project, not from the YAML's folder; ``check`` passes there."""
    elsewhere = tmp_path / "etc" / "crosscam"
    config_path = write_cams(elsewhere, [segment_camera(0, 40.0, 44.0)], defaults=True)
    config = load_config(config_path)
    assert config.detector.weights == PROJECT_ROOT / "assets" / "weights" / "yolov8_person_hfd.pt"
    assert config.detector.weights.is_file()
    assert config.outputs.run_directory == PROJECT_ROOT / "runs"
    completed = run_crosscam("check", "--streams", str(config_path), cwd=tmp_path, timeout=180)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "BROKEN" not in completed.stdout
    assert "detector" in completed.stdout and "not found" not in completed.stdout


@pytest.mark.parametrize(
    ("key", "value"), [("encoder.model", "no-such-model"), ("encoder.backend", "no-such-runtime")]
)
def test_unknown_encoder_model_or_backend_is_one_line_and_exit_2_for_run_and_check(
    tmp_path: Path, key: str, value: str
) -> None:
    """Item 6: caught at config load, before any model loads, by ``run.py`` and ``check``."""
    config = write_cams(tmp_path, [segment_camera(0, 40.0, 44.0)])
    for command in ((), ("check",)):
        completed = run_crosscam(*command, "--streams", str(config), "--set", f"{key}={value}")
        assert completed.returncode == 2, completed.stderr[-3000:]
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr[-3000:]
        assert key in lines[0] and value in lines[0]
        assert "Traceback" not in completed.stderr


def test_a_spool_replays_only_into_its_own_redis_and_the_summary_counts_it(
    tmp_path: Path,
) -> None:
    """Items 5 and 8 and the old spool layout: events spooled for an external Redis that was
    down are not replayed into the embedded one; the next run on that Redis replays them, says
    so, and the summary counts them among the events published. A spool from before spools
    named their Redis is named in one warning and replayed nowhere."""
    port = free_tcp_port()
    external_url = f"redis://127.0.0.1:{port}/0"
    spool_root = tmp_path / "runs" / "spool"
    DiskSpool(spool_root / spool_folder_name(external_url)).append(spooled_pairs("down", 5))
    DiskSpool(spool_root).append(spooled_pairs("old-layout", 3, camera_id=8))
    config = write_cams(tmp_path, [segment_camera(0, 40.0, 44.0)])

    embedded_run = run_crosscam("--streams", str(config))
    assert embedded_run.returncode == 0, embedded_run.stderr[-3000:]
    warnings = [line for line in embedded_run.stderr.splitlines() if "older crosscam" in line]
    assert len(warnings) == 1 and str(spool_root / "spool.jsonl") in warnings[0], warnings
    with EmbeddedRedis(tmp_path / "runs" / "redis") as embedded:
        embedded_ids = [fields["event_id"] for fields in stream_events(embedded.url)]
    assert embedded_ids and not [i for i in embedded_ids if i.startswith(("down:", "old-layout:"))]
    assert len(DiskSpool(spool_root / spool_folder_name(external_url))) == 10

    with EmbeddedRedis(tmp_path / "external", port=port) as external:
        external_run = run_crosscam("--streams", str(config), "--redis-url", external.url)
        assert external_run.returncode == 0, external_run.stderr[-3000:]
        events = stream_events(external.url)
    replayed = [fields["event_id"] for fields in events if fields["event_id"].startswith("down:")]
    assert replayed == [f"down:{sequence}" for sequence in range(1, 11)]
    assert not [fields for fields in events if fields["event_id"].startswith("old-layout:")]
    assert "holds 10 events an earlier run could not publish" in external_run.stderr
    assert "replayed 10 spooled events" in external_run.stderr
    published = re.search(r"events published\s+(\d+) \((\d+) replayed", external_run.stderr)
    assert published, external_run.stderr[-3000:]
    assert (int(published.group(1)), int(published.group(2))) == (len(events), 10)


def test_track_keys_never_collide_across_runs_and_a_killed_runs_tracks_are_ended(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    """Item 9: a run SIGKILLed with tracks open, then another run: track ids continue, so no
    ``camera:track`` key is used by two runs, and the killed run's open tracks get their
    ``track_ended`` when the next run starts."""
    config = write_cams(tmp_path / "first", [segment_camera(0, 0.0, replay="realtime")])
    killed = subprocess.Popen(
        crosscam("--streams", str(config), "--redis-url", redis_server.url),
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_events(redis_server.url, "identity_assigned", 2, timeout_seconds=180)
    finally:
        killed.kill()
        killed.wait()
    before = stream_events(redis_server.url)
    first_tracks = {int(e["track_id"]) for e in before if e["type"] == "track_started"}
    first_ended = {int(e["track_id"]) for e in before if e["type"] == "track_ended"}
    assert first_tracks - first_ended, "the killed run should leave tracks open"

    config = write_cams(tmp_path / "second", [segment_camera(0, 60.0, 66.0)])
    second = run_crosscam("--streams", str(config), "--redis-url", redis_server.url)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "tracks of an earlier run were never ended" in second.stderr
    events = stream_events(redis_server.url)
    run_of_track: dict[int, set[str]] = {}
    for fields in events:
        if fields["type"] == "track_started":
            run = fields["event_id"].rsplit(":", 1)[0]
            run_of_track.setdefault(int(fields["track_id"]), set()).add(run)
    assert len({run for runs in run_of_track.values() for run in runs}) == 2
    collided = {track: runs for track, runs in run_of_track.items() if len(runs) > 1}
    assert not collided, f"camera:track keys used by two runs: {collided}"
    starts = Counter(int(e["track_id"]) for e in events if e["type"] == "track_started")
    ends = Counter(int(e["track_id"]) for e in events if e["type"] == "track_ended")
    assert starts == ends  # the killed run's tracks included
    assert min(set(starts) - first_tracks) > max(first_tracks)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    tracks = client.hgetall("crosscam:tracks")
    for key, global_id in tracks.items():
        assert key in client.hget(f"crosscam:identity:{global_id}", "tracks").split(",")
    client.close()


def test_edge_track_ids_continue_over_runs(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    """The edge role (``--role edge``) continues its track ids after its earlier runs, as the
    single process does, so the matcher never sees one camera:track key for two tracks."""
    for run, start in enumerate((40.0, 50.0)):
        config = write_cams(tmp_path / f"edge{run}", [segment_camera(0, start, start + 6.0)])
        completed = run_crosscam(
            "--streams", str(config), "--role", "edge", "--name", f"edge-run-{run}",
            "--redis-url", redis_server.url,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr[-3000:]
    messages = stream_events(redis_server.url, "crosscam:clips")
    started = [(m["edge"], int(m["track_id"])) for m in messages if m["kind"] == "started"]
    first = [track for edge, track in started if edge == "edge-run-0"]
    second = [track for edge, track in started if edge == "edge-run-1"]
    assert first and second
    assert min(second) > max(first)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert int(client.hget("crosscam:track_ids", "0")) == max(second)
    client.close()
