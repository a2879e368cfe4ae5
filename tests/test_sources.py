"""Camera sources on the bundled terrace video: lockstep replay, fps cap, loop, failures."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import CameraConfig, ReplayMode
from pipeline.records import Frame
from pipeline.redaction import redact_url
from pipeline.redis_server import free_tcp_port
from pipeline.sources import (
    CameraSource,
    FrameGatherer,
    ReconnectPolicy,
    SourceState,
)
from tests.conftest import ASSETS

VIDEO = ASSETS / "videos" / "epfl_terrace1-c0.mp4"
OTHER_VIDEO = ASSETS / "videos" / "epfl_terrace1-c1.mp4"
FPS = 25.0
HEIGHT, WIDTH = 288, 360


def start(sources: list[CameraSource], source: CameraSource) -> CameraSource:
    sources.append(source)
    source.start()
    return source


def gather_all(gatherer: FrameGatherer, timeout_seconds: float = 10.0) -> list[list[Frame]]:
    """Every tick of a gatherer until its sources are finished."""
    ticks = []
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        frames = gatherer.gather()
        if not frames:
            return ticks
        ticks.append(frames)
    raise AssertionError("sources did not finish in time")


def wait_until_finished(source: CameraSource, timeout_seconds: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not source.finished:
        assert time.monotonic() < deadline, f"source still {source.state}"
        time.sleep(0.005)


def reference_frames(path: Path, first: int, count: int) -> list[np.ndarray]:
    """Frames ``first .. first + count - 1`` read sequentially from the start of the file."""
    capture = cv2.VideoCapture(str(path))
    images = []
    for index in range(first + count):
        ok, image = capture.read()
        assert ok
        if index >= first:
            images.append(image)
    capture.release()
    return images


def test_fast_replay_delivers_every_frame_of_a_segment_in_order(started: list[CameraSource]):
    camera = CameraConfig(id=4, uri=str(VIDEO), start_seconds=2.0, end_seconds=3.0, queue_size=2)
    source = start(started, CameraSource(camera))
    assert source.lockstep
    ticks = gather_all(FrameGatherer([source]))
    frames = [frame for tick in ticks for frame in tick]
    assert all(len(tick) == 1 for tick in ticks)
    assert [frame.frame_index for frame in frames] == list(range(50, 75))
    assert [frame.timestamp for frame in frames] == pytest.approx([i / FPS for i in range(50, 75)])
    assert {frame.camera_id for frame in frames} == {4}
    for frame, expected in zip(frames, reference_frames(VIDEO, 50, 25), strict=True):
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert np.array_equal(frame.image, expected), f"frame {frame.frame_index} differs"
    assert source.state is SourceState.ENDED and source.error == ""
    assert source.counters.frames_read == 25 and source.counters.frames_dropped == 0


def test_two_files_in_lockstep_stay_aligned(started: list[CameraSource]):
    cameras = [
        CameraConfig(id=camera_id, uri=str(path), start_seconds=1.0, end_seconds=1.6, queue_size=1)
        for camera_id, path in ((0, VIDEO), (1, OTHER_VIDEO))
    ]
    sources = [start(started, CameraSource(camera)) for camera in cameras]
    ticks = gather_all(FrameGatherer(sources))
    assert len(ticks) == 15
    for offset, tick in enumerate(ticks):
        assert [frame.camera_id for frame in tick] == [0, 1]
        assert [frame.frame_index for frame in tick] == [25 + offset] * 2


def test_fps_cap_thins_frames_to_the_cap(started: list[CameraSource]):
    fps_cap = 10.0
    camera = CameraConfig(id=0, uri=str(VIDEO), start_seconds=4.0, end_seconds=6.0, fps_cap=fps_cap)
    source = start(started, CameraSource(camera))
    frames = [frame for tick in gather_all(FrameGatherer([source])) for frame in tick]
    assert len(frames) == 20  # two seconds at 10 fps out of 50 frames
    indices = [frame.frame_index for frame in frames]
    assert indices == sorted(set(indices))
    assert indices[0] >= 100 and indices[-1] < 150
    for count, frame in enumerate(frames):
        # the k-th delivered frame is the first one at or after media time k / fps_cap
        media_time = frame.timestamp - 4.0
        assert count / fps_cap - 1e-6 <= media_time < count / fps_cap + 1 / FPS
        assert frame.timestamp == pytest.approx(frame.frame_index / FPS)


def test_loop_wraps_with_increasing_frame_index(started: list[CameraSource]):
    camera = CameraConfig(
        id=0, uri=str(VIDEO), start_seconds=2.0, end_seconds=2.4, loop=True, queue_size=2
    )
    source = start(started, CameraSource(camera))
    gatherer = FrameGatherer([source])
    frames = [gatherer.gather()[0] for _ in range(30)]  # three passes of ten frames
    source.stop()
    indices = [frame.frame_index for frame in frames]
    assert indices == list(range(50, 80))
    timestamps = [frame.timestamp for frame in frames]
    assert all(later > earlier for earlier, later in itertools.pairwise(timestamps))
    first_pass = reference_frames(VIDEO, 50, 10)
    for offset, frame in enumerate(frames):
        assert np.array_equal(frame.image, first_pass[offset % 10]), f"pass frame {offset}"
    assert source.state is SourceState.STOPPED


def test_realtime_replay_is_paced_at_the_video_frame_rate(started: list[CameraSource]):
    camera = CameraConfig(
        id=0,
        uri=str(VIDEO),
        replay=ReplayMode.REALTIME,
        start_seconds=1.0,
        end_seconds=1.4,
        queue_size=16,
    )
    source = start(started, CameraSource(camera))
    assert not source.lockstep
    wait_until_finished(source)
    frames = [frame for tick in gather_all(FrameGatherer([source])) for frame in tick]
    assert [frame.frame_index for frame in frames] == list(range(25, 35))
    read_span = frames[-1].captured_at - frames[0].captured_at
    assert read_span >= 9 / FPS - 0.01  # not read faster than the video plays


@pytest.mark.parametrize("damage", ["random_bytes", "truncated", "zeroed_frames"])
def test_corrupt_file_fails_clearly_while_another_camera_keeps_delivering(
    tmp_path: Path, started: list[CameraSource], damage: str
):
    good_bytes = VIDEO.read_bytes()
    broken = tmp_path / "broken.mp4"
    if damage == "random_bytes":
        broken.write_bytes(np.random.default_rng(0).bytes(100_000))
    elif damage == "truncated":
        broken.write_bytes(good_bytes[: len(good_bytes) // 3])
    else:  # container intact, every compressed frame zeroed: opens, decodes nothing
        index_start = good_bytes.find(b"moov") - 4
        broken.write_bytes(good_bytes[:48] + bytes(index_start - 48) + good_bytes[index_start:])
    bad = start(started, CameraSource(CameraConfig(id=1, uri=str(broken), name="broken")))
    good_camera = CameraConfig(id=0, uri=str(VIDEO), start_seconds=1.0, end_seconds=1.4)
    good = start(started, CameraSource(good_camera))
    wait_until_finished(bad)
    gatherer = FrameGatherer([bad, good], poll_seconds=0.5)
    delivered: list[Frame] = []
    tick_seconds = []
    for _ in range(10):
        tick_started = time.monotonic()
        delivered.extend(gatherer.gather())
        tick_seconds.append(time.monotonic() - tick_started)
    assert max(tick_seconds) < 0.25, f"the gatherer waited on the failed camera: {tick_seconds}"
    wait_until_finished(good)
    assert gather_all(gatherer) == []
    assert [frame.camera_id for frame in delivered] == [0] * 10
    assert [frame.frame_index for frame in delivered] == list(range(25, 35))
    assert good.state is SourceState.ENDED
    assert bad.state is SourceState.FAILED
    assert str(broken) in bad.error
    expected = "no decodable frame" if damage == "zeroed_frames" else "not a readable video"
    assert expected in bad.error
    assert bad.counters.frames_read == 0


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        ("rtsp://admin:secret@10.0.0.5:554/stream", "rtsp://***@10.0.0.5:554/stream"),
        ("rtsp://admin@10.0.0.5/h264?channel=1", "rtsp://***@10.0.0.5/h264?channel=1"),
        ("http://user:p%40ss@camera.local/video.mjpg", "http://***@camera.local/video.mjpg"),
        ("rtsp://10.0.0.5:554/stream", "rtsp://10.0.0.5:554/stream"),
        ("/videos/admin:secret@cam.mp4", "/videos/admin:secret@cam.mp4"),
        ("0", "0"),
    ],
)
def test_redact_url_hides_credentials(uri: str, redacted: str):
    assert redact_url(uri) == redacted
    if "://" in uri:
        assert "secret" not in redact_url(uri) and "p%40ss" not in redact_url(uri)


def test_reconnect_delays_grow_exponentially_and_cap():
    policy = ReconnectPolicy(initial_delay_seconds=0.5, max_delay_seconds=10.0, multiplier=2.0)
    delays = [policy.delay(attempt) for attempt in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    triple = ReconnectPolicy(initial_delay_seconds=0.1, max_delay_seconds=1.0, multiplier=3.0)
    assert [triple.delay(attempt) for attempt in range(4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])


def test_unreachable_rtsp_camera_reconnects_without_blocking_the_gatherer(
    started: list[CameraSource], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="pipeline.sources")
    port = free_tcp_port()  # nothing listens there: connection refused at once
    uri = f"rtsp://admin:secret@127.0.0.1:{port}/stream"
    policy = ReconnectPolicy(
        initial_delay_seconds=0.02, max_delay_seconds=0.1, open_timeout_ms=500, read_timeout_ms=500
    )
    live = start(started, CameraSource(CameraConfig(id=9, uri=uri), policy))
    assert not live.lockstep
    file_camera = CameraConfig(id=0, uri=str(VIDEO), start_seconds=1.0, end_seconds=2.0)
    file_source = start(started, CameraSource(file_camera))
    gatherer = FrameGatherer([live, file_source], poll_seconds=0.05)

    began = time.monotonic()
    file_frames = []
    while len(file_frames) < 25:
        tick_started = time.monotonic()
        frames = gatherer.gather()
        assert time.monotonic() - tick_started < 1.0, "a dead camera stalled the gatherer"
        assert [frame.camera_id for frame in frames] == [0]
        file_frames.extend(frames)
    assert [frame.frame_index for frame in file_frames] == list(range(25, 50))
    deadline = began + 3.0
    while time.monotonic() < deadline and caplog.text.count("retrying with backoff") < 4:
        time.sleep(0.02)

    assert live.state is SourceState.RECONNECTING
    assert not live.finished
    attempts = [record for record in caplog.records if "retrying with backoff" in record.message]
    assert len(attempts) >= 4, "failed attempts are retried"
    assert all(record.message.startswith("camera 9:") for record in attempts)
    warnings = [record for record in attempts if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, "one warning for a camera that stays unreachable, then debug"
    assert live.counters.reconnects == 0 and live.counters.frames_read == 0
    assert live.error == f"cannot open rtsp://***@127.0.0.1:{port}/stream"
    assert "secret" not in caplog.text
    stopped = time.monotonic()
    live.stop()
    assert time.monotonic() - stopped < 1.0
    assert live.state is SourceState.STOPPED
    # with the file finished and the live camera stopped, the gatherer reports the end
    assert gather_all(gatherer) == []
