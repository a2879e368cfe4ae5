"""Operations end to end: run.py on real RTSP cameras with /metrics and /healthz, a camera
server killed and restarted mid-run, graceful SIGTERM, a second signal, ``run.py check``,
credentials from the environment, JSON logs, Redis URLs."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import yaml

from pipeline.config import ConfigError, load_config
from pipeline.redaction import RedactingFilter, redact_text
from pipeline.redis_server import EmbeddedRedis
from pipeline.structured_logs import JsonFormatter
from tests.conftest import ASSETS, REPOSITORY_ROOT
from tests.rtsp_server import RtspCameras, free_port, prepare_segment, rtsp_available

needs_rtsp = pytest.mark.skipif(
    not rtsp_available(), reason="needs ffmpeg and GStreamer's RTSP server: run `make rtsp-deps`"
)
WEIGHTS = ASSETS / "weights" / "yolov8_person_hfd.pt"
PASSWORD = "hunter2-not-logged"


def write_config(directory: Path, cameras: list[dict[str, object]], **sections: object) -> Path:
    config = {
        "cameras": cameras,
        "detector": {"weights": str(WEIGHTS), "image_size": 320},
        "outputs": {"run_directory": str(directory / "runs")},
        **sections,
    }
    path = directory / "cams.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sample(metrics: str, name: str, camera: int) -> float:
    match = re.search(rf'^{name}\{{camera="{camera}"\}} (\S+)$', metrics, re.M)
    assert match, f"{name} for camera {camera} not in /metrics"
    return float(match.group(1))


def start_crosscam(
    config: Path,
    redis_url: str,
    metrics_port: int,
    overrides: tuple[str, ...] = (),
    arguments: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    environment = os.environ | {"CAM_USER": "admin", "CAM_PASSWORD": PASSWORD}
    settings = [argument for override in overrides for argument in ("--set", override)]
    settings += arguments
    return subprocess.Popen(
        [
            sys.executable,
            "run.py",
            "--quiet",
            "--streams",
            str(config),
            "--redis-url",
            redis_url,
            "--set",
            f"metrics.port={metrics_port}",
            *settings,
        ],
        cwd=REPOSITORY_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_ready(process: subprocess.Popen[str], port: int, timeout_seconds: float) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            code, body = fetch(f"http://127.0.0.1:{port}/healthz")
        except OSError:
            code, body = 0, ""
        if code == 200:
            return dict(json.loads(body))
        time.sleep(0.3)
    raise AssertionError("crosscam never became ready")


@pytest.fixture
def redis_server(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("segments")
    videos = ASSETS / "videos"
    return {
        name: prepare_segment(videos / f"epfl_terrace1-{name}.mp4", folder / f"{name}.mp4", 40, 30)
        for name in ("c0", "c1")
    }


@needs_rtsp
def test_rtsp_cameras_survive_a_server_restart_and_sigterm_is_clean(
    tmp_path: Path, redis_server: EmbeddedRedis, segments: dict[str, Path]
):
    with (
        RtspCameras({"cam0": segments["c0"]}) as first,
        RtspCameras({"cam1": segments["c1"]}) as second,
    ):
        cameras = [
            {"id": 0, "uri": first.url("cam0").replace("//", "//${CAM_USER}:${CAM_PASSWORD}@"),
             "fps_cap": 3},
            {"id": 1, "uri": second.url("cam1"), "fps_cap": 3},
        ]  # fmt: skip
        port = free_port()
        process = start_crosscam(write_config(tmp_path, cameras), redis_server.url, port)
        try:
            health = wait_until_ready(process, port, timeout_seconds=90)
            assert set(health["cameras"]) == {"0", "1"} and health["redis"] == "up"
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            time.sleep(1.0)
            baseline_started = time.monotonic()
            baseline = fetch(metrics_url)[1]
            time.sleep(5.0)
            killed = time.monotonic()
            before = fetch(metrics_url)[1]
            first.server.kill()
            time.sleep(2.0)
            during = fetch(metrics_url)[1]
            first.server.start()
            restarted = time.monotonic()
            frames_at_restart = sample(during, "crosscam_frames_processed_total", 0)
            resumed_after = None
            while time.monotonic() - restarted < 8.0:
                now = fetch(metrics_url)[1]
                if sample(now, "crosscam_frames_processed_total", 0) > frames_at_restart + 1:
                    resumed_after = time.monotonic() - restarted
                    break
                time.sleep(0.2)
            after = fetch(metrics_url)[1]
            outage = time.monotonic() - killed
            code, health_body = fetch(f"http://127.0.0.1:{port}/healthz")
        finally:
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            _, stderr = process.communicate(timeout=30)
            stop_seconds = time.monotonic() - signalled

    assert process.returncode == 0, stderr[-3000:]
    assert stop_seconds < 5.0, stop_seconds
    assert resumed_after is not None and resumed_after < 5.0, stderr[-3000:]
    # camera 1 kept its frame rate while camera 0 was away
    camera1_before = (
        sample(before, "crosscam_frames_processed_total", 1)
        - sample(baseline, "crosscam_frames_processed_total", 1)
    ) / (killed - baseline_started)
    camera1_during = (
        sample(after, "crosscam_frames_processed_total", 1)
        - sample(before, "crosscam_frames_processed_total", 1)
    ) / outage
    assert abs(camera1_during - camera1_before) <= 0.1 * camera1_before, (
        camera1_before,
        camera1_during,
    )
    assert sample(during, "crosscam_source_up", 0) == 0.0
    assert 'crosscam_source_state{camera="0",state="reconnecting"} 1.0' in during
    assert sample(after, "crosscam_source_reconnects_total", 0) == 1.0
    assert "crosscam_stage_latency_seconds_bucket" in after
    assert 'uri="rtsp://***@127.0.0.1' in after
    assert code == 200 and json.loads(health_body)["ready"] is True
    assert PASSWORD not in stderr and PASSWORD not in after
    assert "Traceback" not in stderr
    assert "camera 0: reconnected after" in stderr
    client = redis.Redis.from_url(redis_server.url)
    assert client.xlen("crosscam:events") > 0
    print(f"camera 0 resumed {resumed_after:.1f} s after its server restarted; camera 1")
    print(f"{camera1_before:.2f} fps before, {camera1_during:.2f} fps during the outage;")
    print(f"SIGTERM to exit {stop_seconds:.2f} s")


def test_second_signal_forces_exit(tmp_path: Path, redis_server: EmbeddedRedis):
    camera = {
        "id": 0,
        "uri": str(ASSETS / "videos" / "epfl_terrace1-c0.mp4"),
        "replay": "realtime",
        "fps_cap": 2,
    }
    port = free_port()
    process = start_crosscam(write_config(tmp_path, [camera]), redis_server.url, port)
    try:
        wait_until_ready(process, port, timeout_seconds=90)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in {128 + signal.SIGTERM, 0}, stderr[-2000:]
    assert "again to force exit" in stderr


@needs_rtsp
def test_check_probes_cameras_and_redis(
    tmp_path: Path, redis_server: EmbeddedRedis, segments: dict[str, Path]
):
    with RtspCameras({"cam0": segments["c0"]}) as rtsp:
        good = [
            {"id": 0, "uri": rtsp.url("cam0").replace("//", "//${CAM_USER}:${CAM_PASSWORD}@")},
            {"id": 1, "uri": str(ASSETS / "videos" / "epfl_terrace1-c1.mp4")},
        ]
        config = write_config(tmp_path, good, redis={"url": redis_server.url})
        environment = os.environ | {"CAM_USER": "admin", "CAM_PASSWORD": PASSWORD}
        command = [sys.executable, "run.py", "check", "--streams", str(config)]
        passed = subprocess.run(
            command, cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        broken_camera = {"id": 2, "uri": rtsp.url("no-such-mount")}
        config = write_config(
            tmp_path, [*good, broken_camera], redis={"url": "redis://127.0.0.1:1/0"}
        )
        failed = subprocess.run(
            command, cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "360x288" in passed.stdout and "BROKEN" not in passed.stdout
    assert failed.returncode == 1, failed.stdout
    assert failed.stdout.count("BROKEN") == 2  # camera 2 and Redis
    assert PASSWORD not in passed.stdout + passed.stderr + failed.stdout + failed.stderr


def test_credentials_come_from_environment_or_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# camera secrets\nCAM_PASSWORD=from-file\nREDIS_PASSWORD=r3d1s\n")
    cameras = [{"id": 0, "uri": "rtsp://${CAM_USER}:${CAM_PASSWORD}@10.0.0.7/stream1"}]
    redis_section = {"url": "rediss://:${REDIS_PASSWORD}@redis.example:6380/0"}
    path = write_config(tmp_path, cameras, redis=redis_section, secrets_file="secrets.env")
    monkeypatch.setenv("CAM_USER", "admin")
    config = load_config(path)
    assert config.cameras[0].uri == "rtsp://admin:from-file@10.0.0.7/stream1"
    assert config.redis.url == "rediss://:r3d1s@redis.example:6380/0"
    monkeypatch.setenv("CAM_PASSWORD", "from-env")
    assert load_config(path).cameras[0].uri == "rtsp://admin:from-env@10.0.0.7/stream1"
    monkeypatch.delenv("CAM_USER")
    with pytest.raises(ConfigError, match=r"cameras\.0\.uri: \$\{CAM_USER\} is not set") as error:
        load_config(path)
    assert "from-env" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rediss://:secret@redis.example:6380/2", {"ssl": True, "password": "secret", "db": 2}),
        (
            "redis://crosscam:secret@127.0.0.1:6379/0",
            {"username": "crosscam", "password": "secret"},
        ),
        ("rediss://redis.example:6380/0?ssl_cert_reqs=none", {"ssl": True}),
    ],
)
def test_redis_tls_and_auth_urls_pass_through_to_redis_py(url: str, expected: dict[str, object]):
    client = redis.Redis.from_url(url)
    kwargs = client.connection_pool.connection_kwargs
    for key, value in expected.items():
        if key == "ssl":
            assert client.connection_pool.connection_class is redis.SSLConnection
        else:
            assert kwargs[key] == value
    assert "secret" not in redact_text(f"publishing to {url}")


def test_json_logs_are_one_object_per_line_with_credentials_redacted():
    record = logging.LogRecord(
        "pipeline.sources", logging.WARNING, __file__, 1,
        "camera %s: cannot open %s", (1, "rtsp://admin:secret@10.0.0.7/s"), None,
    )  # fmt: skip
    RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "pipeline.sources"
    assert entry["message"] == "camera 1: cannot open rtsp://***@10.0.0.7/s"
    assert "\n" not in line and entry["time"].endswith("Z")


def test_health_liveness_and_readiness():
    from types import SimpleNamespace

    from pipeline.metrics import HealthState
    from pipeline.sources import SourceState

    source = SimpleNamespace(camera=SimpleNamespace(id=0), state=SourceState.RUNNING, error="")
    publisher = SimpleNamespace(connected=True)
    pipeline = SimpleNamespace(sources=[source], publisher=publisher, stopping=False)
    health = HealthState(liveness_seconds=0.05)
    assert health.report()["status"] == "starting"
    health.pipeline = pipeline  # type: ignore[assignment]
    health.tick()
    assert health.report()["ready"] is True
    publisher.connected = False
    assert health.report() | {"cameras": None} == health.report() | {
        "cameras": None,
        "status": "degraded",
        "ready": False,
        "live": True,
    }
    time.sleep(0.1)  # the loop stopped ticking while a camera delivers: wedged
    assert health.report()["live"] is False and health.report()["status"] == "stalled"
    source.state = SourceState.RECONNECTING  # nothing to tick on: waiting, not wedged
    assert health.report()["live"] is True
    assert health.report()["cameras"] == {"0": {"state": "reconnecting", "error": ""}}


def canonical_identities(events: list[dict[str, str]]) -> dict[int, int]:
    """Global id → the id it was last merged into (``identity_merged`` folds ids together)."""
    parent: dict[int, int] = {}

    def root(identity: int) -> int:
        while identity in parent:
            identity = parent[identity]
        return identity

    for event in events:
        if event["type"] == "identity_merged" and event.get("merged_ids"):
            target = root(int(event["global_id"]))
            for merged in event["merged_ids"].split(","):
                if root(int(merged)) != target:
                    parent[root(int(merged))] = target
    return {identity: root(identity) for identity in list(parent)}


def identities_in_view(
    events: list[dict[str, str]],
    moment_unix: float,
    identity: Callable[[dict[str, str]], int],
    recent_seconds: float = 3.0,
) -> set[int]:
    """The global identities of the tracks still in view (an event within ``recent_seconds``)
    just before ``moment_unix``: the people a re-acquired track can rightly be."""
    last_seen: dict[str, float] = {}
    identities: dict[str, int] = {}
    for event in events:
        moment = float(event["timestamp"])
        if moment >= moment_unix:
            continue
        if event["type"] in ("identity_assigned", "identity_split"):
            identities[event["track_id"]] = identity(event)
        last_seen[event["track_id"]] = max(moment, last_seen.get(event["track_id"], moment))
    return {
        identities[track]
        for track, moment in last_seen.items()
        if track in identities and moment >= moment_unix - recent_seconds
    }


def shared_at_once(events: list[dict[str, str]], assigned: dict[str, int]) -> set[str]:
    """Tracks of ``assigned`` (track -> identity) whose identity another of them holds at the
    same time: two people in one identity (a track that ended and was continued is fine)."""
    spans: dict[str, tuple[float, float]] = {}
    for event in events:
        if event["track_id"] in assigned:
            moment = float(event["timestamp"])
            first, last = spans.get(event["track_id"], (moment, moment))
            spans[event["track_id"]] = (min(first, moment), max(last, moment))
    return {
        track
        for track, person in assigned.items()
        for other, other_person in assigned.items()
        if other != track
        and other_person == person
        and spans[track][0] <= spans[other][1]
        and spans[other][0] <= spans[track][1]
    }


@pytest.mark.slow  # real-time RTSP: 2 of 4 once in a clean-clone CI run, 3 of 3 to 5 of 5 else
@needs_rtsp
@pytest.mark.parametrize("role", ["all", "edge and matcher"])
def test_global_identities_survive_a_camera_reconnect(
    tmp_path: Path, redis_server: EmbeddedRedis, segments: dict[str, Path], role: str
):
    """The camera's server is killed and restarted while people stay in view: most tracks
    started after the reconnect (the same people, re-acquired by a tracker that lost them
    during the outage) keep an identity of a person who was in view when the camera went away
    (not merely any identity that existed before), and no two of them hold one identity at the
    same time. ``edge and matcher``: the camera runs in an edge process and the identities are
    given by a separate matcher, which learns of the reconnect through the clip stream.

    Threshold: more than half of the tracks started within 5 s of the restart. Some of those
    may be people who walked in during the outage, and same-camera re-association is a position
    plus appearance check that can miss a person who turned around; measured: 4 of 4, 4 of 5,
    5 of 5, 3 of 3 twice (``pipeline/reconnect.py``), but also 2 of 4 once (a clean-clone CI run,
    so marked slow until it is robust), against 1 of 5 twice without it (new identities from the
    gallery threshold). Takes about 37 s per role.
    """
    split = role != "all"
    matcher: subprocess.Popen[str] | None = None
    if split:
        matcher = subprocess.Popen(
            [sys.executable, "run.py", "--quiet", "--role", "matcher", "--name", "m0"]
            + ["--redis-url", redis_server.url],
            cwd=REPOSITORY_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
    with RtspCameras({"cam0": segments["c0"]}) as rtsp:
        cameras = [{"id": 0, "uri": rtsp.url("cam0"), "fps_cap": 4}]
        port = free_port()
        edge_arguments = ("--role", "edge", "--name", "e0") if split else ()
        process = start_crosscam(
            write_config(tmp_path, cameras), redis_server.url, port, arguments=edge_arguments
        )
        try:
            wait_until_ready(process, port, timeout_seconds=90)
            time.sleep(15.0)  # tracks get clips and identities
            killed_unix = time.time()
            rtsp.server.kill()
            time.sleep(1.5)
            rtsp.server.start()
            restarted_unix = time.time()
            time.sleep(12.0)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            if matcher is not None:
                time.sleep(2.0)  # the matcher drains the last clips
                matcher.send_signal(signal.SIGTERM)
                _, matcher_stderr = matcher.communicate(timeout=30)
                assert matcher.returncode == 0, matcher_stderr[-3000:]
                stderr += matcher_stderr
    assert process.returncode == 0, stderr[-3000:]
    assert "camera 0: reconnected after" in stderr, stderr[-3000:]
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    events = [fields for _, fields in client.xrange("crosscam:events")]
    canonical = canonical_identities(events)

    def identity(event: dict[str, str]) -> int:
        value = int(event["global_id"])
        return canonical.get(value, value)

    before = {
        identity(event)
        for event in events
        if event["type"] == "identity_assigned" and float(event["timestamp"]) < killed_unix
    }
    started_after = {
        event["track_id"]
        for event in events
        if event["type"] == "track_started"
        and restarted_unix <= float(event["timestamp"]) < restarted_unix + 5.0
    }
    assigned_after = {
        event["track_id"]: identity(event)
        for event in events
        if event["type"] == "identity_assigned" and event["track_id"] in started_after
    }  # the last assignment of each track wins
    in_view = identities_in_view(events, killed_unix, identity)
    shared = shared_at_once(events, assigned_after)
    right = [
        track
        for track, global_id in assigned_after.items()
        if global_id in in_view and track not in shared
    ]
    print(f"identities before the kill: {sorted(before)}; in view at the kill: {sorted(in_view)}")
    print(f"tracks re-acquired after the reconnect → identities: {assigned_after}")
    print(f"{len(right)} of {len(assigned_after)} re-acquired tracks kept the identity of a person")
    print(f"in view at the kill, each held by one person ({sorted(shared)} shared one at once)")
    assert len(before) >= 2, "people in view before the kill"
    assert assigned_after, f"no identity assigned after the reconnect: {stderr[-2000:]}"
    assert len(right) > len(assigned_after) / 2, (sorted(in_view), assigned_after, shared)
    assert "new tracks continue identities of tracks that ended" in stderr


def run_to_exit(process: subprocess.Popen[str], timeout_seconds: float) -> str:
    """Wait for crosscam to exit on its own (killed after the timeout); returns its stderr."""
    try:
        _, stderr = process.communicate(timeout=timeout_seconds)
    finally:
        if process.poll() is None:
            process.kill()
    return stderr


def test_time_limit_holds_when_no_camera_delivers(tmp_path: Path, redis_server: EmbeddedRedis):
    """An RTSP camera that never answers: --max-seconds still ends the run, with exit 3 (no
    camera worked) instead of waiting forever (issue 15 items 2 and 7)."""
    camera = {"id": 0, "uri": f"rtsp://127.0.0.1:{free_port()}/never"}
    process = start_crosscam(
        write_config(tmp_path, [camera], max_seconds=4), redis_server.url, free_port()
    )
    stderr = run_to_exit(process, timeout_seconds=120)
    assert process.returncode == 3, stderr[-2000:]


def test_every_camera_failing_is_a_failed_run(tmp_path: Path, redis_server: EmbeddedRedis):
    """A truncated video file: the run ends with one line on the camera and exit 3."""
    broken = tmp_path / "truncated.mp4"
    broken.write_bytes((ASSETS / "videos" / "epfl_terrace1-c0.mp4").read_bytes()[:2000])
    camera = {"id": 0, "uri": str(broken)}
    process = start_crosscam(write_config(tmp_path, [camera]), redis_server.url, free_port())
    stderr = run_to_exit(process, timeout_seconds=120)
    assert process.returncode == 3, stderr[-2000:]
    assert "Traceback" not in stderr
