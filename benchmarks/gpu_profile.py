"""How many live streams one machine carries within a latency budget (the GPU profile).

    python -m benchmarks.gpu_profile --streams configs/demo.yaml --device cuda \
        --resolution 1920x1080 --fps 30 --decoders opencv,nvdec

The config's camera segments are first converted once, with FFmpeg's libraries through PyAV
(``libx264``), to ``--resolution`` at exactly ``--fps`` (bicubic upscaling; frames repeated or
skipped at the nearest timestamp), and cached under ``~/.cache/crosscam/bench_videos``. Then,
for each decoder (``camera.decoder``: ``opencv``, ``pyav`` or ``nvdec``), the pipeline runs
``N`` copies of those cameras at the videos' own pace (``--mode realtime``: a source that falls
behind drops its oldest frames) for ``--duration`` seconds, with ``N`` doubled from 1 while the
run meets the budget, then bisected between the last pass and the first failure.

A run meets the budget when, over all streams, frame→identity p99 (capture of a clip's newest
frame → its identity in Redis, ``benchmarks.pipeline``) is at most ``--budget-ms``, at most
``--max-drop`` of the frames read were dropped, and the pipeline processed at least
``--min-rate`` × N × fps frames/s. Warm-up (model loading, two detector forwards and one encoder
batch) is not timed. Writes ``gpu_profile.json``, ``gpu_profile.md`` and ``gpu_profile.png``
under ``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, get_args

import numpy as np

from benchmarks.latency_report import markdown_table, plot_latency_vs_streams, summarize
from benchmarks.pipeline import (
    Measurement,
    describe_run,
    duplicate_streams,
    run_crosscam,
)
from benchmarks.results_cli import add_results_arguments, results_directory, start_logging
from engines.cache import default_cache_dir, file_sha256
from pipeline.config import CameraConfig, ConfigError, CrosscamConfig, ReplayMode, load_config
from pipeline.frame_rate import frame_rate_or_default

logger = logging.getLogger("benchmarks.gpu_profile")


@dataclass(frozen=True)
class VideoFormat:
    """The stream format every camera is converted to."""

    width: int
    height: int
    fps: float

    @classmethod
    def parse(cls, resolution: str, fps: float) -> VideoFormat:
        """``"1920x1080"`` and a frame rate.

        Raises:
            ValueError: not ``WIDTHxHEIGHT`` with even positive numbers, or fps not positive.
        """
        width_text, _, height_text = resolution.lower().partition("x")
        if not (width_text.isdigit() and height_text.isdigit()):
            raise ValueError(
                f"--resolution must be WIDTHxHEIGHT (e.g. 1920x1080), got {resolution!r}"
            )
        width, height = int(width_text), int(height_text)
        if width <= 0 or height <= 0 or width % 2 or height % 2 or fps <= 0:
            raise ValueError(
                f"--resolution needs even positive sizes and --fps a positive rate, got "
                f"{resolution} at {fps:g} fps"
            )
        return cls(width, height, fps)


@dataclass
class StreamTrial:
    """One run of ``streams`` copies of the cameras with one decoder."""

    decoder: str
    streams: int
    frames_per_second: float
    target_frames_per_second: float
    frames: int
    frames_dropped: int
    frame_to_identity_p50_ms: float
    frame_to_identity_p99_ms: float
    identity_samples: int
    passed: bool
    reason: str


@dataclass(frozen=True)
class Budget:
    """What a run must meet to count as carried."""

    p99_ms: float = 100.0
    max_drop_fraction: float = 0.01
    min_rate_fraction: float = 0.95

    def judge(self, measurement: Measurement, fps: float) -> tuple[bool, str]:
        """Whether ``measurement`` (``N`` streams at ``fps`` each) meets the budget, and why
        not (the first criterion it misses)."""
        latency = summarize(measurement.latency.get("frame_to_identity", []))
        read = measurement.frames + measurement.frames_dropped
        target = measurement.streams * fps
        if latency["count"] == 0:
            return False, "no identity was published"
        if latency["p99"] > self.p99_ms:
            return False, f"p99 {latency['p99']:.0f} ms > {self.p99_ms:g} ms"
        if read and measurement.frames_dropped / read > self.max_drop_fraction:
            return False, f"dropped {measurement.frames_dropped} of {read} frames"
        if measurement.frames_per_second < self.min_rate_fraction * target:
            return False, f"{measurement.frames_per_second:.1f} of {target:g} frames/s"
        return True, "within budget"


def convert_video(
    source: Path,
    target: Path,
    start_seconds: float,
    duration_seconds: float,
    video_format: VideoFormat,
) -> Path:
    """Write ``duration_seconds`` of ``source`` from ``start_seconds`` as H.264 at
    ``video_format`` (bicubic resize, constant frame rate by nearest source frame; shorter
    when the source ends first)."""
    import av
    import cv2

    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ValueError(f"cannot open video file {source}: not a readable video")
    source_fps = frame_rate_or_default(capture.get(cv2.CAP_PROP_FPS))
    capture.set(cv2.CAP_PROP_POS_FRAMES, round(start_seconds * source_fps))
    size = (video_format.width, video_format.height)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".partial.mp4")
    written, source_index, image = 0, -1, None
    with av.open(str(scratch), mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(video_format.fps).limit_denominator(1001)
        )
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for output_index in range(round(duration_seconds * video_format.fps)):
            wanted = int(output_index / video_format.fps * source_fps + 0.5)
            while source_index < wanted:
                ok, image = capture.read()
                if not ok:
                    break
                source_index += 1
            if source_index < wanted or image is None:
                break  # the source ended
            resized = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(resized, format="bgr24")))
            written += 1
        container.mux(stream.encode(None))
    capture.release()
    if written == 0:
        scratch.unlink(missing_ok=True)
        raise ValueError(f"{source} has no frame at {start_seconds:g} s")
    scratch.replace(target)
    return target


def prepare_streams(
    config: CrosscamConfig,
    video_format: VideoFormat,
    duration_seconds: float,
    cache_dir: Path | None = None,
) -> CrosscamConfig:
    """A copy of ``config`` whose file cameras play converted videos at the videos' pace,
    every frame (no ``fps_cap``); conversions are cached by source checksum and settings."""
    root = (default_cache_dir() if cache_dir is None else cache_dir) / "bench_videos"
    prepared = config.model_copy(deep=True)
    for camera in prepared.cameras:
        if not camera.is_file:
            raise ConfigError(f"camera {camera.id}: the profile replays files, got {camera.uri}")
        source = Path(camera.uri)
        settings = f"{camera.start_seconds:g}|{duration_seconds:g}|{video_format}"
        key = hashlib.sha256(f"{file_sha256(source)}|{settings}".encode()).hexdigest()[:12]
        target = root / f"{source.stem}-{video_format.width}x{video_format.height}-{key}.mp4"
        if not target.is_file():
            logger.warning("converting %s to %s", source.name, target)
            convert_video(source, target, camera.start_seconds, duration_seconds, video_format)
        camera.uri = str(target)
        camera.start_seconds, camera.end_seconds = 0.0, None
        camera.fps_cap, camera.loop, camera.replay = None, False, ReplayMode.REALTIME
    return prepared


def find_capacity(
    trial: Callable[[int], StreamTrial], max_streams: int
) -> tuple[int, list[StreamTrial]]:
    """The most streams that pass, doubling from 1 then bisecting; returns it (0: even one
    stream fails) and every trial in the order run."""
    trials: list[StreamTrial] = []
    passed, failed = 0, None
    streams = 1
    while streams <= max_streams:
        result = trial(streams)
        trials.append(result)
        if not result.passed:
            failed = streams
            break
        passed = streams
        streams *= 2
    if failed is None:
        return passed, trials
    while failed - passed > 1:
        middle = (passed + failed) // 2
        result = trial(middle)
        trials.append(result)
        if result.passed:
            passed = middle
        else:
            failed = middle
    return passed, trials


def parse_decoders(text: str) -> list[str]:
    """``"opencv,nvdec"`` -> the decoder names, each one ``camera.decoder`` accepts.

    Raises:
        ValueError: an unknown name, or none.
    """
    known = get_args(CameraConfig.model_fields["decoder"].annotation)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"--decoders takes names from {', '.join(known)}; got {text!r}")
    return names


def run_trial(
    config: CrosscamConfig, decoder: str, streams: int, video_format: VideoFormat, budget: Budget
) -> StreamTrial:
    """Run ``streams`` copies of the prepared cameras with ``decoder`` and judge the run."""
    variant = duplicate_streams(config, streams)
    for camera in variant.cameras:
        camera.decoder = decoder  # type: ignore[assignment]
    measurement = run_crosscam(variant, label=f"crosscam, {decoder}")
    gc.collect()
    passed, reason = budget.judge(measurement, video_format.fps)
    latency = summarize(measurement.latency.get("frame_to_identity", []))
    result = StreamTrial(
        decoder=decoder,
        streams=streams,
        frames_per_second=measurement.frames_per_second,
        target_frames_per_second=streams * video_format.fps,
        frames=measurement.frames,
        frames_dropped=measurement.frames_dropped,
        frame_to_identity_p50_ms=latency["p50"],
        frame_to_identity_p99_ms=latency["p99"],
        identity_samples=int(latency["count"]),
        passed=passed,
        reason=reason,
    )
    logger.warning(
        "%s, %d streams: %.1f of %g frames/s, p99 %.0f ms, %d dropped: %s",
        decoder, streams, result.frames_per_second, result.target_frames_per_second,
        result.frame_to_identity_p99_ms, result.frames_dropped, reason,
    )  # fmt: skip
    return result


def markdown_report(report: dict[str, Any]) -> str:
    run = report["run"]
    video = report["video_format"]
    budget = report["budget"]
    rows = [
        [
            trial["decoder"],
            trial["streams"],
            f"{trial['frames_per_second']:.1f} / {trial['target_frames_per_second']:g}",
            trial["frames_dropped"],
            f"{trial['frame_to_identity_p50_ms']:.0f}",
            f"{trial['frame_to_identity_p99_ms']:.0f}",
            "yes" if trial["passed"] else f"no: {trial['reason']}",
        ]
        for trial in report["trials"]
    ]
    capacity = ", ".join(f"{name}: {count}" for name, count in report["capacity"].items())
    return "\n".join(
        [
            "# Streams per machine within the latency budget\n",
            f"Machine: {run['machine']['summary']} (`{run['node']}`); detector "
            f"`{report['detector']}`, encoder `{report['encoder']}` on `{report['device']}`; "
            f"{video['width']}x{video['height']} at {video['fps']:g} fps, "
            f"{report['duration_seconds']:g} s per run, realtime replay. {run['warm_up']}.\n",
            f"Budget: frame→identity p99 ≤ {budget['p99_ms']:g} ms, at most "
            f"{budget['max_drop_fraction']:.0%} of frames dropped, at least "
            f"{budget['min_rate_fraction']:.0%} of the streams' frame rate processed.\n",
            f"Command: `{run['command']}`\n",
            f"**Streams carried: {capacity}.**\n",
            markdown_table(
                ["decoder", "streams", "frames/s / target", "dropped", "p50 ms", "p99 ms", "ok"],
                rows,
            ),
            "\n![streams vs latency](gpu_profile.png)\n",
        ]
    )


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--streams", type=Path, required=True, help="camera YAML file")
    parser.add_argument("--device", default="cuda", help="cpu, cuda or cuda:N for all models")
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--decoders", default="opencv,nvdec", help="opencv, pyav, nvdec")
    parser.add_argument("--max-streams", type=int, default=64)
    parser.add_argument("--budget-ms", type=float, default=100.0, help="frame→identity p99")
    parser.add_argument("--max-drop", type=float, default=0.01, help="fraction of frames read")
    parser.add_argument("--min-rate", type=float, default=0.95, help="fraction of N × fps")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    add_results_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    start_logging(arguments)
    try:
        video_format = VideoFormat.parse(arguments.resolution, arguments.fps)
        config = load_config(arguments.streams, arguments.overrides)
        config.detector.device = config.encoder.device = arguments.device
        decoders = parse_decoders(arguments.decoders)
        prepared = prepare_streams(config, video_format, arguments.duration, arguments.cache_dir)
    except (ConfigError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    budget = Budget(arguments.budget_ms, arguments.max_drop, arguments.min_rate)
    arguments.repeats = 1
    capacity: dict[str, int] = {}
    trials: list[StreamTrial] = []
    for decoder in decoders:
        carried, decoder_trials = find_capacity(
            lambda streams, decoder=decoder: run_trial(  # type: ignore[misc]
                prepared, decoder, streams, video_format, budget
            ),
            arguments.max_streams,
        )
        capacity[decoder] = carried
        trials += decoder_trials
    report: dict[str, Any] = {
        "run": describe_run(arguments, "benchmarks.gpu_profile"),
        "config_file": str(arguments.streams),
        "device": arguments.device,
        "detector": config.detector.backend,
        "encoder": f"{config.encoder.model}, backend {config.encoder.backend}",
        "video_format": asdict(video_format),
        "duration_seconds": arguments.duration,
        "budget": asdict(budget),
        "capacity": capacity,
        "trials": [asdict(trial) for trial in trials],
    }
    out = results_directory(arguments)
    (out / "gpu_profile.json").write_text(json.dumps(report, indent=1) + "\n")
    series: dict[str, list[tuple[int, float]]] = {}
    for trial in trials:
        series.setdefault(trial.decoder, []).append((trial.streams, trial.frame_to_identity_p99_ms))
    plot_latency_vs_streams(series, budget.p99_ms, out / "gpu_profile.png")
    markdown = markdown_report(report)
    (out / "gpu_profile.md").write_text(markdown)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
