"""End-to-end pipeline benchmark: per-stage and frame→event latency, throughput, scaling with
the number of streams, and the detector-only bound, on recorded video.

    python -m benchmarks.pipeline --streams configs/demo.yaml --streams-count 1,2,4 \
        --duration 10 --mode fast --repeats 3
    python -m benchmarks.pipeline --streams cams.yaml --device cuda --mode realtime

For each stream count N the config's cameras are repeated (new ids) to N streams, each file
replayed for ``--duration`` seconds of media time from its ``start_seconds``: ``fast``
(lockstep, no drop: throughput) or ``realtime`` (the video's own pace, oldest frames dropped
when the pipeline is behind: latency under load). Each repetition runs, in the same process,
the detector alone over the same frames (same readers, same batching across streams) and then
the whole pipeline with a fresh embedded Redis. Warm-up, not timed: loading the models, two
detector forwards and one encoder batch. The pipeline stamps every frame through
``pipeline.stats.FrameTimeline``; CPU and memory of the process are sampled with psutil.

Writes ``pipeline_<mode>.json``, ``pipeline_<mode>.md`` and the plots
``pipeline_<mode>_latency_cdf.png``, ``pipeline_<mode>_throughput.png`` and
``pipeline_<mode>_stages.png`` under ``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import logging
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.latency_report import (
    format_spread,
    markdown_table,
    plot_latency_cdf,
    plot_stage_breakdown,
    plot_throughput,
    spread,
    summarize,
    timeline_gaps,
)
from benchmarks.results_cli import add_results_arguments, results_directory, start_logging
from engines.base import engine_input_format
from pipeline.config import ConfigError, CrosscamConfig, ReplayMode, load_config
from pipeline.records import Frame
from pipeline.stats import TIMELINE_STAGES, FrameTimeline
from reid_models.clip_input import UINT8_CROPS, crops_to_clips

logger = logging.getLogger("benchmarks.pipeline")

LATENCY_STAGES = ("detect", "track", "clips", "encode", "match", "publish", "frame_to_event")
STAGE_ORDER = (
    *(f"{stage}_wait" for stage in TIMELINE_STAGES[1:]),
    "frame_to_identity",
    "frame_to_event",
    *(f"{stage}_compute" for stage in LATENCY_STAGES[:-1]),
    "frame_to_detection",
)


def duplicate_streams(config: CrosscamConfig, count: int) -> CrosscamConfig:
    """A copy of ``config`` with exactly ``count`` cameras: the configured ones in order,
    repeated as often as needed; copies get new ids (``id + k * (max id + 1)`` for the
    ``k``-th repetition) and ``-copy<k>`` names, so trackers, clips and events stay apart."""
    if count < 1 or not config.cameras:
        raise ValueError(f"need at least one camera and count >= 1, got {count}")
    stride = max(camera.id for camera in config.cameras) + 1
    cameras = []
    for index in range(count):
        repetition, position = divmod(index, len(config.cameras))
        base = config.cameras[position]
        update: dict[str, Any] = {"id": base.id + repetition * stride}
        if repetition:
            update["name"] = f"{base.display_name}-copy{repetition}"
        cameras.append(base.model_copy(update=update))
    copy = config.model_copy(deep=True)
    copy.cameras = cameras
    return copy


def set_replay(config: CrosscamConfig, mode: ReplayMode, duration_seconds: float | None) -> None:
    """Replay every file camera in ``mode``, for ``duration_seconds`` of media from its start."""
    for camera in config.cameras:
        camera.replay = mode
        camera.loop = False
        if duration_seconds is not None:
            camera.end_seconds = camera.start_seconds + duration_seconds


class ResourceSampler:
    """Samples this process's CPU (percent of one core, so up to 100 x cores) and resident
    memory on a background thread while in a ``with`` block."""

    def __init__(self, interval_seconds: float = 0.5) -> None:
        import psutil

        self.interval_seconds = interval_seconds
        self.process = psutil.Process()
        self.cpu_percent: list[float] = []
        self.rss_megabytes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self.process.cpu_percent(None)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.cpu_percent.append(self.process.cpu_percent(None))
            self.rss_megabytes.append(self.process.memory_info().rss / 2**20)

    def summary(self) -> dict[str, float]:
        cpu = self.cpu_percent or [float("nan")]
        rss = self.rss_megabytes or [float("nan")]
        return {
            "cpu_percent_mean": float(np.mean(cpu)),
            "rss_megabytes_max": float(np.max(rss)),
        }


@dataclass
class Measurement:
    """One timed run of one system over one stream count."""

    system: str
    streams: int
    wall_seconds: float
    frames: int
    clips: int = 0
    frames_dropped: int = 0
    latency: dict[str, list[float]] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def clips_per_frame(self) -> float:
        """Clips encoded per processed frame: the encoder's work per frame."""
        return self.clips / self.frames if self.frames > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "streams": self.streams,
            "wall_seconds": self.wall_seconds,
            "frames": self.frames,
            "frames_per_second": self.frames_per_second,
            "clips": self.clips,
            "clips_per_second": self.clips_per_second,
            "clips_per_frame": self.clips_per_frame,
            "frames_dropped": self.frames_dropped,
            "latency_ms": {stage: summarize(v) for stage, v in self.latency.items()},
            "resources": self.resources,
            **self.extra,
        }


def first_frames(config: CrosscamConfig, count: int = 2) -> list[Frame]:
    """One decoded frame per camera (up to ``count``), for warm-up."""
    frames = []
    for camera in config.cameras[:count]:
        capture = cv2.VideoCapture(camera.uri)
        ok, image = capture.read()
        capture.release()
        if ok:
            frames.append(Frame(camera.id, 0, 0.0, image, time.monotonic()))
    return frames


def run_detector_only(config: CrosscamConfig, label: str = "detector only") -> Measurement:
    """The same readers and cross-stream batching as the pipeline, then only the detector."""
    from pipeline.detect import PersonDetector
    from pipeline.sources import CameraSource, FrameGatherer

    detector = PersonDetector(config.detector)
    warm = first_frames(config)
    for _ in range(2):
        detector.detect(warm)
    sources = [CameraSource(camera) for camera in config.cameras]
    gatherer = FrameGatherer(sources)
    latencies: list[float] = []
    frames = 0
    with ResourceSampler() as sampler:
        started = time.monotonic()
        for source in sources:
            source.start()
        while batch := gatherer.gather():
            detector.detect(batch)
            finished = time.monotonic()
            latencies += [(finished - frame.captured_at) * 1000.0 for frame in batch]
            frames += len(batch)
        wall = time.monotonic() - started
    for source in sources:
        source.stop()
    return Measurement(
        system=label,
        streams=len(config.cameras),
        wall_seconds=wall,
        frames=frames,
        frames_dropped=sum(source.counters.frames_dropped for source in sources),
        latency={"frame_to_detection": latencies},
        resources=sampler.summary(),
    )


def run_crosscam(
    config: CrosscamConfig, label: str = "crosscam", mtmc_path: Path | None = None
) -> Measurement:
    """The whole pipeline with a fresh embedded Redis in a temporary folder."""
    from pipeline.redis_server import EmbeddedRedis
    from pipeline.runner import Pipeline

    config = config.model_copy(deep=True)
    with tempfile.TemporaryDirectory(prefix="crosscam-bench-") as scratch:
        scratch_path = Path(scratch)
        config.outputs.run_directory = scratch_path
        config.outputs.save_mtmc = mtmc_path
        config.outputs.save_video = None
        config.redis.restore_identities = False
        config.redis.spool_directory = scratch_path / "spool"
        embedded = None if config.redis.url else EmbeddedRedis(scratch_path / "redis").start()
        redis_url = embedded.url if embedded is not None else config.redis.url
        try:
            pipeline = Pipeline(config, redis_url, f"bench-{int(time.time())}", scratch_path)
            warm = first_frames(config)
            for _ in range(2):
                pipeline.detector.detect(warm)
            clips = config.clips
            engine = pipeline.encoder.engine
            crops = np.zeros(
                (2, clips.clip_length, clips.crop_height, clips.crop_width, 3), dtype=np.uint8
            )
            uint8 = engine_input_format(engine) == UINT8_CROPS
            engine.infer(crops if uint8 else crops_to_clips(crops))
            pipeline.timeline = FrameTimeline()
            ticks: list[float] = []
            pipeline.on_tick = lambda _: ticks.append(time.monotonic())
            with ResourceSampler() as sampler:
                started = time.monotonic()
                result = pipeline.run()
                wall = time.monotonic() - started
        finally:
            if embedded is not None:
                embedded.stop()
    rows = pipeline.timeline.rows()
    online = pipeline.online_refinement
    latency = {f"{stage}_compute": list(result.latency.samples(stage)) for stage in LATENCY_STAGES}
    latency["frame_to_event"] = latency.pop("frame_to_event_compute")
    latency |= {f"{stage}_wait": v for stage, v in timeline_gaps(rows).items()}
    latency["frame_to_identity"] = latency.pop("frame_to_identity_wait")
    return Measurement(
        system=label,
        streams=len(config.cameras),
        wall_seconds=wall,
        frames=result.totals.frames,
        clips=result.totals.clips_encoded,
        frames_dropped=sum(source.counters.frames_dropped for source in pipeline.sources),
        latency=latency,
        resources=sampler.summary(),
        extra={
            "events": result.totals.events,
            "identities": result.identities_total,
            "identities_multi_camera": result.identities_multi_camera,
            "detector_backend": pipeline.detector.backend,
            "encoder_backend": pipeline.encoder.engine.name,
            "crops_taken": sum(
                buffer.held_frames.crops_taken for buffer in pipeline.buffers.values()
            ),
            "processed_frames": [key for key, stamps in rows if "detect" in stamps],
            "seconds_to_last_tick": (ticks[-1] - started) if ticks else wall,
            "identity_passes": online.passes if online is not None else 0,
            "identity_pass_seconds": online.seconds_total if online is not None else 0.0,
        },
    )


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose speed is measured."""
    versions = {"python": platform.python_version(), "opencv": cv2.__version__}
    for name in ("torch", "ultralytics", "numpy", "onnxruntime", "trackers", "supervision"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def describe_run(arguments: argparse.Namespace, module: str) -> dict[str, Any]:
    from benchmarks.accuracy import git_commit, machine_description

    return {
        "machine": machine_description(),
        "node": platform.node(),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "created_unix": round(time.time()),
        "command": f"python -m {module} " + " ".join(sys.argv[1:]),
        "warm_up": "not timed: model loading, 2 detector forwards, 1 encoder batch per run",
        "repeats": arguments.repeats,
    }


def aggregate(measurements: list[Measurement]) -> dict[str, Any]:
    """Per (system, streams): spread over repetitions of throughput and latency percentiles."""
    groups: dict[tuple[str, int], list[Measurement]] = {}
    for item in measurements:
        groups.setdefault((item.system, item.streams), []).append(item)
    table: dict[str, Any] = {}
    for (system, streams), items in groups.items():
        present = {stage for item in items for stage in item.latency}
        stages = [stage for stage in STAGE_ORDER if stage in present]
        stages += sorted(present - set(stages))
        table[f"{system}|{streams}"] = {
            "system": system,
            "streams": streams,
            "frames_per_second": spread(i.frames_per_second for i in items),
            "clips_per_second": spread(i.clips_per_second for i in items),
            "clips_per_frame": spread(i.clips_per_frame for i in items),
            "frames_dropped": spread(float(i.frames_dropped) for i in items),
            "cpu_percent_mean": spread(i.resources.get("cpu_percent_mean", np.nan) for i in items),
            "rss_megabytes_max": spread(
                i.resources.get("rss_megabytes_max", np.nan) for i in items
            ),
            "latency_ms": {
                stage: {
                    q: spread(summarize(i.latency.get(stage, []))[q] for i in items)
                    for q in ("p50", "p95", "p99", "max")
                }
                for stage in stages
            },
        }
    return table


def markdown_report(report: dict[str, Any]) -> str:
    machine = report["run"]["machine"]["summary"]
    rows = report["aggregate"]
    counts = report["stream_counts"]
    lines = [
        "# Pipeline benchmark\n",
        f"Machine: {machine} (`{report['run']['node']}`); mode `{report['mode']}`, "
        f"{report['duration_seconds']} s of video per stream, {report['run']['repeats']} "
        f"repetitions, median (min–max). {report['run']['warm_up']}.\n",
        f"Command: `{report['run']['command']}`\n",
        "## Throughput\n",
    ]
    table = []
    for count in counts:
        crosscam = rows.get(f"crosscam|{count}")
        detector = rows.get(f"detector only|{count}")
        if crosscam is None or detector is None:
            continue
        fraction = crosscam["frames_per_second"]["median"] / detector["frames_per_second"]["median"]
        table.append(
            [
                count,
                format_spread(detector["frames_per_second"]),
                format_spread(crosscam["frames_per_second"]),
                f"{fraction:.2f}",
                format_spread(crosscam["clips_per_second"], 2),
                format_spread(crosscam.get("clips_per_frame", {}), 3),
                format_spread(crosscam["frames_dropped"], 0),
                format_spread(crosscam["cpu_percent_mean"], 0),
                format_spread(crosscam["rss_megabytes_max"], 0),
            ]
        )
    lines.append(
        markdown_table(
            [
                "streams",
                "detector only, frames/s",
                "crosscam, frames/s",
                "crosscam / detector",
                "clips/s",
                "clips encoded / frame",
                "dropped frames",
                "CPU % (of 1 core)",
                "peak RSS MB (process)",
            ],
            table,
        )
    )
    lines.append("\n## Latency (ms), crosscam\n")
    lines.append(
        "`*_compute`: time inside a stage call (detect and encode per batch). `*_wait`: time "
        "from the previous stage's stamp of the same frame (queues, batching and waiting for "
        "the next tick included). `frame_to_identity`: capture → identity published, frames "
        "that closed a clip. `frame_to_event`: capture of an event's newest frame → its "
        "publish, every event (track ends wait `clips.track_end_seconds` by design).\n"
    )
    latency_rows = []
    for count in counts:
        entry = rows.get(f"crosscam|{count}")
        if entry is None:
            continue
        for stage, quantiles in entry["latency_ms"].items():
            latency_rows.append(
                [count, stage, *(format_spread(quantiles[q]) for q in ("p50", "p95", "p99", "max"))]
            )
    lines.append(markdown_table(["streams", "stage", "p50", "p95", "p99", "max"], latency_rows))
    mode = report["mode"]
    lines.append(f"\n![latency CDF](pipeline_{mode}_latency_cdf.png)\n")
    lines.append(f"![throughput](pipeline_{mode}_throughput.png)\n")
    lines.append(f"![stages](pipeline_{mode}_stages.png)\n")
    return "\n".join(lines)


def write_plots(measurements: list[Measurement], report: dict[str, Any], out: Path) -> None:
    mode = report["mode"]
    counts = report["stream_counts"]
    cdf: dict[str, list[float]] = {}
    for item in measurements:
        if item.system == "crosscam":
            cdf.setdefault(f"frame→identity, {item.streams} streams", []).extend(
                item.latency.get("frame_to_identity", [])
            )
        else:
            cdf.setdefault(f"frame→detection (detector only), {item.streams} streams", []).extend(
                item.latency.get("frame_to_detection", [])
            )
    plot_latency_cdf(cdf, out / f"pipeline_{mode}_latency_cdf.png", "Latency CDF (all repetitions)")
    rows = report["aggregate"]
    throughput = {
        system: [rows[f"{system}|{count}"]["frames_per_second"] for count in counts]
        for system in ("detector only", "crosscam")
    }
    plot_throughput(counts, throughput, out / f"pipeline_{mode}_throughput.png")
    breakdown = {
        f"{count} streams": {
            stage: rows[f"crosscam|{count}"]["latency_ms"]
            .get(f"{stage}_wait", {})
            .get("p50", {})
            .get("median", 0.0)
            for stage in TIMELINE_STAGES[1:]
        }
        for count in counts
    }
    plot_stage_breakdown(breakdown, out / f"pipeline_{mode}_stages.png")


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--streams", type=Path, required=True, help="camera YAML file")
    parser.add_argument("--streams-count", default="1,2,4", help="comma-separated, e.g. 1,2,4,8")
    parser.add_argument("--duration", type=float, default=10.0, help="media seconds per stream")
    parser.add_argument("--mode", choices=[m.value for m in ReplayMode], default="fast")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N for all models")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override key=value"
    )
    add_results_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    start_logging(arguments)
    try:
        base = load_config(arguments.streams, arguments.overrides)
        counts = [int(text) for text in arguments.streams_count.split(",") if text.strip()]
    except (ConfigError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    if arguments.device is not None:
        base.detector.device = arguments.device
        base.encoder.device = arguments.device
    out = results_directory(arguments)
    measurements: list[Measurement] = []
    for repeat in range(arguments.repeats):
        for count in counts:
            config = duplicate_streams(base, count)
            set_replay(config, ReplayMode(arguments.mode), arguments.duration)
            for runner in (run_detector_only, run_crosscam):
                item = runner(config)
                gc.collect()  # free the run's models before the next one is built
                measurements.append(item)
                logger.warning(
                    "repeat %d, %d streams, %s: %.2f frames/s",
                    repeat + 1, count, item.system, item.frames_per_second,
                )  # fmt: skip
    report: dict[str, Any] = {
        "run": describe_run(arguments, "benchmarks.pipeline"),
        "config_file": str(arguments.streams),
        "mode": arguments.mode,
        "duration_seconds": arguments.duration,
        "stream_counts": counts,
        "aggregate": aggregate(measurements),
        "measurements": [
            {k: v for k, v in item.as_dict().items() if k != "processed_frames"}
            for item in measurements
        ],
    }
    (out / f"pipeline_{arguments.mode}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_plots(measurements, report, out)
    markdown = markdown_report(report)
    (out / f"pipeline_{arguments.mode}.md").write_text(markdown)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
