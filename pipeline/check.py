"""``python run.py check --streams cams.yaml``: probe every camera and Redis before a deployment.

Each camera is opened and one frame is read (files and streams alike, with the sources' open
and read timeouts), all cameras at once; Redis is pinged (or, without ``redis.url``, the embedded
``redis-server`` binary is looked for); the encoder is built from its weights and the detector
weights are loaded (unknown model or backend names already fail at config load, exit 2). A
rich table goes to stdout; the exit code is 0 when everything answered, 1 otherwise. URIs are
shown redacted.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.config import CameraConfig, CrosscamConfig, DetectorConfig, EncoderConfig
from pipeline.native_logs import import_yolo
from pipeline.redaction import redact_url
from pipeline.sources import ReconnectPolicy

EXIT_BROKEN = 1


@dataclass
class ProbeResult:
    """What one probe found; ``ok`` False means broken, ``detail`` says why."""

    name: str
    target: str
    ok: bool
    detail: str
    seconds: float


def probe_camera(camera: CameraConfig, policy: ReconnectPolicy | None = None) -> ProbeResult:
    """Open a camera and read one frame: resolution, fps and time to the first frame."""
    policy = policy or ReconnectPolicy()
    started = time.monotonic()
    target = redact_url(camera.uri)
    name = f"camera {camera.id} ({camera.display_name})"
    if camera.is_webcam:
        capture = cv2.VideoCapture(int(camera.uri))
    elif camera.is_network:
        parameters = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            policy.open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            policy.read_timeout_ms,
        ]
        capture = cv2.VideoCapture(camera.uri, cv2.CAP_FFMPEG, parameters)
    else:
        capture = cv2.VideoCapture(camera.uri)
    try:
        if not capture.isOpened():
            return ProbeResult(name, target, False, "cannot open", time.monotonic() - started)
        ok, image = capture.read()
        if not ok or image is None:
            detail = "opened, but no frame could be read (stalled or corrupt)"
            return ProbeResult(name, target, False, detail, time.monotonic() - started)
        height, width = image.shape[:2]
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        detail = f"{width}x{height}, {fps:.1f} fps"
        return ProbeResult(name, target, True, detail, time.monotonic() - started)
    finally:
        capture.release()


def probe_redis(url: str, timeout_seconds: float = 3.0) -> ProbeResult:
    """PING a Redis URL (redis://, rediss://, with AUTH) and report its version."""
    started = time.monotonic()
    target = redact_url(url)
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as error:
        detail = f"{error.__class__.__name__}: {redact_url(str(error))}"
        return ProbeResult("redis", target, False, detail, time.monotonic() - started)
    return ProbeResult("redis", target, True, f"redis {version}", time.monotonic() - started)


def probe_embedded_redis() -> ProbeResult:
    """Without ``redis.url`` a run starts its own Redis: is the binary there?"""
    from pipeline.redis_server import redis_server_executable

    started = time.monotonic()
    try:
        executable = redis_server_executable()
    except RuntimeError as error:
        return ProbeResult("redis", "embedded", False, str(error), time.monotonic() - started)
    return ProbeResult("redis", "embedded", True, executable, time.monotonic() - started)


def probe_encoder(config: EncoderConfig) -> ProbeResult:
    """Build the configured encoder on the CPU from its weights: an encoder file written for
    another architecture or backbone, or weights that do not fit, are broken."""
    from reid_models.factory import build_encoder

    started = time.monotonic()
    target = str(config.weights or "bundled weights")
    name = f"encoder {config.model}/{config.backbone}"
    try:
        build_encoder(config.model, config.weights, backbone=config.backbone)
    except (ValueError, RuntimeError, OSError, KeyError) as error:
        detail = f"{error.__class__.__name__}: {error}"
        return ProbeResult(name, target, False, detail, time.monotonic() - started)
    return ProbeResult(name, target, True, "weights load", time.monotonic() - started)


def probe_detector(config: DetectorConfig) -> ProbeResult:
    """Load the detector weights with ultralytics (on the CPU, no export)."""
    yolo = import_yolo()
    started = time.monotonic()
    try:
        model = yolo(str(config.weights), task="detect", verbose=False)
        detail = f"{len(model.names)} classes"
    except (ValueError, RuntimeError, OSError, KeyError, AttributeError) as error:
        detail = f"{error.__class__.__name__}: {error}"
        return ProbeResult("detector", str(config.weights), False, detail, 0.0)
    return ProbeResult("detector", str(config.weights), True, detail, time.monotonic() - started)


def run_checks(config: CrosscamConfig) -> list[ProbeResult]:
    """Probe every camera (concurrently), Redis, and the encoder and detector weights."""
    with ThreadPoolExecutor(max_workers=max(1, len(config.cameras)) + 1) as pool:
        cameras = [pool.submit(probe_camera, camera) for camera in config.cameras]
        if config.redis.url:
            redis_probe = pool.submit(probe_redis, config.redis.url)
        else:
            redis_probe = pool.submit(probe_embedded_redis)
        models = [probe_encoder(config.encoder), probe_detector(config.detector)]
        return [future.result() for future in cameras] + [redis_probe.result(), *models]


def results_table(results: list[ProbeResult]) -> Table:
    table = Table(title="crosscam check")
    for column in ("what", "uri", "status", "detail", "seconds"):
        table.add_column(column, overflow="fold")
    for result in results:
        status = "[green]ok[/green]" if result.ok else "[red]BROKEN[/red]"
        detail, target = escape(result.detail), escape(result.target)
        table.add_row(result.name, target, status, detail, f"{result.seconds:.2f}")
    return table


def check_main(config: CrosscamConfig, console: Console) -> int:
    """Print the table; 0 when every probe passed, else :data:`EXIT_BROKEN`."""
    results = run_checks(config)
    console.print(results_table(results))
    broken = [result.name for result in results if not result.ok]
    if broken:
        console.print(f"[red]broken:[/red] {', '.join(broken)}", highlight=False)
        return EXIT_BROKEN
    return 0
