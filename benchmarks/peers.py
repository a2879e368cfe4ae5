"""crosscam side by side with the "glue it together" pipeline users build today, in one run.

    python -m benchmarks.peers --streams benchmarks/configs/terrace1.yaml \
        --gt benchmarks/ground_truth/terrace1.json --start 40 --duration 30 --repeats 3

Systems, on the same frames (the same readers: lockstep file replay with the config's
``fps_cap`` and segment), the same detector weights, image size, classes and confidence
thresholds, the same machine, each repetition running every system in a rotated order:

- ``glue: ultralytics ByteTrack`` / ``glue: ultralytics BoT-SORT+ReID``: per stream, one
  ``YOLO.track(persist=True)`` call per frame on the ``.pt`` weights, as users write it (one
  ``YOLO`` instance per stream, streams served one after another, no batching across them),
  then one OSNet x0.25 feature per tracked box per frame (the config's encoder through the
  same engine as crosscam, single crops, T=1) and
  :class:`benchmarks.naive_matcher.NaiveCrossCameraMatcher` with crosscam's similarity
  threshold. BoT-SORT uses ``benchmarks/configs/botsort_reid.yaml`` (ultralytics defaults,
  ``with_reid: True``, ``model: auto``: detector features, no download).
- ``glue: ultralytics ByteTrack, exported detector``: the same glue on the detector file
  crosscam's ``detector.backend`` runs (``auto``: the ONNX export on a CPU), so that the
  runtime's share of the difference is visible (only when that is not the ``.pt``).
- ``glue: ultralytics ByteTrack[, exported detector], ReID every N frames per track``: the
  careful user's glue, on the fastest detector file of the rows above: a track's first box and
  then one box in every N (``--glue-reid-every``, default 10: once a second at 10 fps) get a
  feature; the other boxes keep their track's identity (``benchmarks.reid_schedule``).
- ``BoxMOT <tracker> + naive matcher`` (``--boxmot``): the peer users pick for tracking with
  ReID, BoT-SORT, DeepOCSORT and StrongSORT per stream with BoxMOT's OSNet on the bundled
  ``osnet_x0_25_msmt17`` weights (a local file, never downloaded), then the same naive matcher on
  the tracker's own embeddings; in BoxMOT's virtual environment (``make boxmot-venv``: it pins
  an OpenCV below 5), as a subprocess (``benchmarks.boxmot_peer``).
- ``crosscam (<encoder>)``: the pipeline with the config's encoder (and ``--encoders``), and
  ``crosscam (<encoder>, torch detector)`` with the ``.pt`` detector like the first glue rows
  (only when the config's detector does not already run the ``.pt``).

Every system writes MTMC, scored by ``benchmarks.accuracy.score`` against the GT over the GT
frames each processed. Warm-up (not timed): model loading and two forwards per model. Writes
``peers.json`` and ``peers.md`` under ``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.latency_report import format_spread, markdown_table, spread, summarize
from benchmarks.naive_matcher import NaiveCrossCameraMatcher
from benchmarks.pipeline import (
    Measurement,
    ResourceSampler,
    describe_run,
    first_frames,
    run_crosscam,
    set_replay,
)
from benchmarks.reid_schedule import ReidSchedule
from benchmarks.results_cli import add_results_arguments, results_directory, start_logging
from benchmarks.stream_baseline import StreamReplay, class_thresholds, kept_boxes
from pipeline.config import ConfigError, CrosscamConfig, ReplayMode, load_config
from pipeline.encode import load_encoder_engine

logger = logging.getLogger("benchmarks.peers")

ACCURACY_COLUMNS: dict[str, str] = {
    "idf1_all_cameras": "MTMC IDF1",
    "idf1_per_camera_mean": "per-camera IDF1 (mean)",
    "cross_camera_pair_f1": "cross-camera pair F1",
}
"""Every accuracy figure :func:`accuracy` measures -> its column heading; each table of the
results (``peers.md``, the README's) shows all of them."""

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
BOXMOT_PYTHON = REPOSITORY_ROOT / ".venv-boxmot" / "bin" / "python"
BOXMOT_REID_WEIGHTS = REPOSITORY_ROOT / "assets" / "weights" / "osnet_x0_25_msmt17.pth"
BOXMOT_TRACKERS = {"botsort": "BoT-SORT", "deepocsort": "DeepOCSORT", "strongsort": "StrongSORT"}
"""``benchmarks.boxmot_peer --tracker`` name -> the tracker's name in the results."""

BYTETRACK = "bytetrack.yaml"
BOTSORT_REID = str(Path(__file__).parent / "configs" / "botsort_reid.yaml")


@dataclass(frozen=True)
class GlueSystem:
    """One glue baseline: ultralytics' tracker file and whether it runs crosscam's detector
    export (``True``) or the ``.pt`` weights."""

    tracker_file: str
    exported_detector: bool = False
    reid_every_frames: int = 1


@dataclass(frozen=True)
class CrosscamSystem:
    """One crosscam variant: the encoder (model, encoder file) and the detector runtime
    (``None``: the config's)."""

    model: str
    weights: Path | None
    detector_backend: str | None = None


@dataclass(frozen=True)
class BoxmotSystem:
    """One BoxMOT row: the tracker (a key of :data:`BOXMOT_TRACKERS`) and the interpreter of
    BoxMOT's virtual environment."""

    tracker: str
    python: Path


def boxmot_systems(python: Path) -> dict[str, BoxmotSystem]:
    """The BoxMOT rows: BoT-SORT, DeepOCSORT and StrongSORT, each + the naive matcher."""
    return {
        f"BoxMOT {title} + naive matcher": BoxmotSystem(tracker, python)
        for tracker, title in BOXMOT_TRACKERS.items()
    }


def run_boxmot_baseline(
    config: CrosscamConfig, label: str, system: BoxmotSystem, mtmc_path: Path
) -> Measurement:
    """One BoxMOT row over ``config``, run by ``benchmarks.boxmot_peer`` in BoxMOT's venv.

    The config (segment and replay already set) goes to the subprocess as YAML; the bundled
    OSNet weights are linked under the file name BoxMOT recognises (``.pt``), so it finds them
    on disk and downloads nothing.
    """
    import yaml

    scratch = mtmc_path.parent
    config_path = scratch / f"{mtmc_path.stem}.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    weights = scratch / "osnet_x0_25_msmt17.pt"
    if not weights.exists():
        weights.symlink_to(BOXMOT_REID_WEIGHTS)
    report_path = scratch / f"{mtmc_path.stem}.boxmot.json"
    command = [
        str(system.python), "-m", "benchmarks.boxmot_peer", "--config", str(config_path),
        "--tracker", system.tracker, "--reid-weights", str(weights), "--mtmc", str(mtmc_path),
        "--report", str(report_path),
    ]  # fmt: skip
    environment = {**os.environ, "YOLO_OFFLINE": "1"}
    finished = subprocess.run(
        command, cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{label}: {' '.join(command)} failed: {finished.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    return Measurement(
        system=label,
        streams=len(config.cameras),
        wall_seconds=report["wall_seconds"],
        frames=report["frames"],
        latency={"frame_to_identity": report["latency_ms"]},
        resources=report["resources"],
        extra={
            "processed_frames": [tuple(pair) for pair in report["processed_frames"]],
            "identities": report["identities"],
            "detector_backend": "torch",
            "encoder_backend": f"boxmot {report['boxmot_version']} (torch)",
        },
    )


def glue_systems(config: CrosscamConfig, reid_every_frames: int = 10) -> dict[str, GlueSystem]:
    """The glue baselines for ``config``: the exported-detector row only when crosscam's
    detector does not run the ``.pt``; the ReID-every-N row on the fastest detector file
    (none when ``reid_every_frames`` is 1: that is the plain row)."""
    systems = {
        "glue: ultralytics ByteTrack": GlueSystem(BYTETRACK),
        "glue: ultralytics BoT-SORT+ReID": GlueSystem(BOTSORT_REID),
    }
    exported = detector_runtime(config) != "torch"
    if exported:
        systems["glue: ultralytics ByteTrack, exported detector"] = GlueSystem(BYTETRACK, True)
    if reid_every_frames > 1:
        detector = ", exported detector" if exported else ""
        label = (
            f"glue: ultralytics ByteTrack{detector}, ReID every {reid_every_frames} frames "
            "per track"
        )
        systems[label] = GlueSystem(BYTETRACK, exported, reid_every_frames)
    return systems


def detector_runtime(config: CrosscamConfig) -> str:
    """The runtime crosscam's detector runs on (``auto`` resolved as the detector does)."""
    from engines.detector_export import resolve_detector_backend

    return resolve_detector_backend(config.detector.backend, config.detector.device)[0]


def crops_to_batch(image: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Single-frame clips of the boxes, in the encoder input contract.

    Args:
        image: uint8 ``(H, W, 3)`` BGR.
        boxes: float ``(N, 4)`` xyxy pixels.

    Returns:
        float32 ``(N, 1, 3, height, width)`` RGB in ``[0, 1]`` (same crop and resize as
        ``pipeline.clips.ClipBuffer``).
    """
    image_height, image_width = image.shape[:2]
    crops = []
    for box in boxes:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        x1, y1 = max(0, min(x1, image_width - 1)), max(0, min(y1, image_height - 1))
        x2, y2 = max(x1 + 1, min(x2, image_width)), max(y1 + 1, min(y2, image_height))
        crops.append(
            cv2.resize(image[y1:y2, x1:x2], (width, height), interpolation=cv2.INTER_LINEAR)
        )
    if not crops:
        return np.zeros((0, 1, 3, height, width), dtype=np.float32)
    rgb = np.stack(crops)[..., ::-1].transpose(0, 3, 1, 2)[:, None]
    return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)


def run_glue_baseline(
    config: CrosscamConfig, label: str, system: GlueSystem, mtmc_path: Path
) -> Measurement:
    """The ultralytics tracker + ReID (every box, or every N frames per track) + naive matcher
    baseline over ``config``."""
    from ultralytics import YOLO

    from engines.detector_export import export_detector

    detector = config.detector
    detector_file = detector.weights
    if system.exported_detector:
        detector_file = export_detector(
            detector.weights, detector_runtime(config), detector.image_size, device=detector.device
        )
    models: dict[int, Any] = {
        camera.id: YOLO(str(detector_file), task="detect") for camera in config.cameras
    }
    # the glue pipeline converts its crops on the CPU, as such scripts do (float clips in)
    engine = load_encoder_engine(config.encoder.model_copy(update={"input_format": "float32_rgb"}))
    thresholds = class_thresholds(detector)
    track_arguments: dict[str, Any] = {
        "persist": True,
        "tracker": system.tracker_file,
        "imgsz": detector.image_size,
        "conf": float(min(thresholds.min(), detector.confidence)),
        "classes": detector.person_classes,
        "device": detector.device,
        "verbose": False,
    }
    clips = config.clips
    warm = first_frames(config, count=1)[0].image
    for model in models.values():
        for _ in range(2):
            model.track(warm, **track_arguments)
        for tracker in model.predictor.trackers:
            tracker.reset()
    engine.infer(np.zeros((2, 1, 3, clips.crop_height, clips.crop_width), dtype=np.float32))
    matcher = NaiveCrossCameraMatcher(config.matching.similarity_threshold)
    schedule = ReidSchedule(system.reid_every_frames)
    features_computed = 0
    replay = StreamReplay(config)
    with ResourceSampler() as sampler:
        for frame in replay.frames():
            result: Any = models[frame.camera_id].track(frame.image, **track_arguments)[0]
            boxes = result.boxes
            if boxes is None or boxes.id is None or len(boxes) == 0:
                continue
            xyxy, _, keep = kept_boxes(boxes, thresholds, detector.min_box_height)
            xyxy = xyxy[keep]
            track_ids = boxes.id.cpu().numpy().astype(np.int64)[keep]
            if len(xyxy):
                due = schedule.due(frame.camera_id, track_ids)
                global_ids = np.zeros(len(track_ids), dtype=np.int64)
                if due.any():
                    batch_crops = crops_to_batch(
                        frame.image, xyxy[due], clips.crop_height, clips.crop_width
                    )
                    global_ids[due] = matcher.update(
                        frame.camera_id,
                        track_ids[due],
                        engine.infer(batch_crops),
                        other_track_ids=track_ids[~due],
                    )
                    features_computed += int(due.sum())
                for index in np.flatnonzero(~due).tolist():
                    known = matcher.global_id(frame.camera_id, int(track_ids[index]))
                    global_ids[index] = -1 if known is None else known
                replay.record(frame, xyxy.tolist(), global_ids.tolist())
    replay.write_mtmc(mtmc_path)
    return Measurement(
        system=label,
        streams=len(config.cameras),
        wall_seconds=replay.wall_seconds,
        frames=len(replay.processed),
        latency={"frame_to_identity": replay.latencies_ms},
        resources=sampler.summary(),
        extra={
            "processed_frames": replay.processed,
            "identities": matcher.identity_count,
            "reid_features": features_computed,
            "detector_backend": detector_runtime(config) if system.exported_detector else "torch",
            "encoder_backend": engine.name,
        },
    )


def accuracy(config: CrosscamConfig, gt_path: Path, mtmc_path: Path, processed: list) -> dict:
    """IDF1 (per camera and over all cameras) and cross-camera pair F1 of one MTMC file."""
    from benchmarks.accuracy import RunOutput, score
    from tools.ground_truth import load_ground_truth

    frames = {(int(c), int(f)) for c, f in processed}
    metrics = score(config, load_ground_truth(gt_path), RunOutput(mtmc_path, frames))
    per_camera = [values["IDF1"] for values in metrics["per_camera"].values()]
    return {
        "idf1_all_cameras": metrics["all_cameras"]["IDF1"],
        "idf1_per_camera_mean": float(np.mean(per_camera)) if per_camera else float("nan"),
        "cross_camera_pair_f1": metrics["pairs"]["cross_camera"]["f1"],
        "frames_evaluated": metrics["frames_evaluated"],
        "gt_boxes": metrics["gt_boxes"],
    }


def crosscam_systems(config: CrosscamConfig, extra: str) -> dict[str, CrosscamSystem]:
    """``crosscam (<encoder>)`` labels -> variants: the config's encoder, the same on the
    ``.pt`` detector when the config's detector runs an export, then each ``--encoders`` entry,
    ``name`` or ``name=weights_file`` (a trained encoder file)."""
    model, weights = config.encoder.model, config.encoder.weights
    systems = {f"crosscam ({model})": CrosscamSystem(model, weights)}
    if detector_runtime(config) != "torch":
        systems[f"crosscam ({model}, torch detector)"] = CrosscamSystem(model, weights, "torch")
    for spec in (entry.strip() for entry in extra.split(",") if entry.strip()):
        model, _, file = spec.partition("=")
        path = Path(file).resolve() if file else None
        if path is not None and not path.is_file():
            raise ConfigError(f"--encoders {spec}: weights file not found: {path}")
        label = f"crosscam ({model})" if path is None else f"crosscam ({model}, {path.name})"
        systems[label] = CrosscamSystem(model, path)
    return systems


def run_system(
    label: str,
    config: CrosscamConfig,
    mtmc_path: Path,
    systems: dict[str, GlueSystem | BoxmotSystem | CrosscamSystem],
) -> Measurement:
    system = systems[label]
    if isinstance(system, GlueSystem):
        return run_glue_baseline(config, label, system, mtmc_path)
    if isinstance(system, BoxmotSystem):
        return run_boxmot_baseline(config, label, system, mtmc_path)
    variant = config.model_copy(deep=True)
    variant.encoder.model, variant.encoder.weights = system.model, system.weights
    if system.detector_backend is not None:
        variant.detector.backend = system.detector_backend  # type: ignore[assignment]
    return run_crosscam(variant, label=label, mtmc_path=mtmc_path)


def summarize_systems(measurements: list[Measurement]) -> dict[str, Any]:
    """Per system: spread over repetitions of throughput, latency and accuracy."""
    systems: dict[str, list[Measurement]] = {}
    for item in measurements:
        systems.setdefault(item.system, []).append(item)
    summary: dict[str, Any] = {}
    for system, items in systems.items():
        latency = [summarize(i.latency.get("frame_to_identity", [])) for i in items]
        summary[system] = {
            "frames_per_second": spread(i.frames_per_second for i in items),
            "frame_to_identity_p50_ms": spread(entry["p50"] for entry in latency),
            "frame_to_identity_p95_ms": spread(entry["p95"] for entry in latency),
            "frame_to_identity_p99_ms": spread(entry["p99"] for entry in latency),
            "cpu_percent_mean": spread(i.resources["cpu_percent_mean"] for i in items),
            "rss_megabytes_max": spread(i.resources["rss_megabytes_max"] for i in items),
            **{key: spread(i.extra["accuracy"][key] for i in items) for key in ACCURACY_COLUMNS},
        }
    return summary


def markdown_report(report: dict[str, Any]) -> str:
    summary = report["systems"]
    crosscam = next(name for name in summary if name.startswith("crosscam"))
    rows = []
    for system, entry in summary.items():
        throughput_ratio = (
            summary[crosscam]["frames_per_second"]["median"] / entry["frames_per_second"]["median"]
        )
        latency_ratio = (
            summary[crosscam]["frame_to_identity_p50_ms"]["median"]
            / entry["frame_to_identity_p50_ms"]["median"]
        )
        rows.append(
            [
                system,
                format_spread(entry["frames_per_second"], 2),
                f"{throughput_ratio:.2f}",
                format_spread(entry["frame_to_identity_p50_ms"], 0),
                format_spread(entry["frame_to_identity_p95_ms"], 0),
                f"{latency_ratio:.2f}",
                *(format_spread(entry[key], 3) for key in ACCURACY_COLUMNS),
            ]
        )
    run = report["run"]
    header = [
        "system",
        "frames/s",
        f"{crosscam} ÷ this, throughput",
        "frame→identity p50 ms",
        "p95 ms",
        f"{crosscam} ÷ this, p50 latency",
        *ACCURACY_COLUMNS.values(),
    ]
    return "\n".join(
        [
            "# crosscam vs the glue-it-together pipeline\n",
            f"Machine: {run['machine']['summary']} (`{run['node']}`). {report['streams']} streams "
            f"of `{report['config_file']}`, {report['duration_seconds']} s from "
            f"{report['start_seconds']} s each, lockstep replay; {run['repeats']} repetitions "
            f"(system order rotated each time), median (min–max). {run['warm_up']}. Accuracy: "
            f"`{report['ground_truth']}` on {report['frames_evaluated']} GT frames "
            "(`benchmarks.accuracy.score`).\n",
            f"Command: `{run['command']}`\n",
            markdown_table(header, rows),
            "frame→identity: glue = capture → the frame's boxes carry global ids; crosscam = "
            "capture of a clip's newest frame → its identity published to Redis.\n",
        ]
    )


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--streams", type=Path, required=True, help="camera YAML file")
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth JSON file")
    parser.add_argument("--start", type=float, default=None, help="segment start, seconds")
    parser.add_argument("--duration", type=float, default=30.0, help="media seconds per stream")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--encoders",
        default="",
        help="extra crosscam encoders, comma-separated: name or name=encoder_file "
        "(e.g. drsta=assets/weights/drsta_osnet_mined.pt)",
    )
    parser.add_argument(
        "--glue-reid-every",
        type=int,
        default=10,
        help="the careful glue row: a ReID feature every N frames per track (1: no such row)",
    )
    parser.add_argument(
        "--boxmot",
        action="store_true",
        help="add the BoxMOT rows (BoT-SORT, DeepOCSORT, StrongSORT; make boxmot-venv first)",
    )
    parser.add_argument("--boxmot-python", type=Path, default=BOXMOT_PYTHON)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N for all models")
    add_results_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    start_logging(arguments)
    try:
        config = load_config(arguments.streams)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    if arguments.device is not None:
        config.detector.device = arguments.device
        config.encoder.device = arguments.device
    if arguments.start is not None:
        for camera in config.cameras:
            camera.start_seconds = arguments.start
    set_replay(config, ReplayMode.FAST, arguments.duration)
    try:
        encoders = crosscam_systems(config, arguments.encoders)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    if arguments.boxmot and not arguments.boxmot_python.is_file():
        sys.stderr.write(
            f"error: --boxmot: {arguments.boxmot_python} not found (make boxmot-venv)\n"
        )
        return 2
    systems: dict[str, GlueSystem | BoxmotSystem | CrosscamSystem] = {
        **glue_systems(config, arguments.glue_reid_every),
        **(boxmot_systems(arguments.boxmot_python) if arguments.boxmot else {}),
        **encoders,
    }
    order = list(systems)
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="crosscam-peers-") as scratch:
        for repeat in range(arguments.repeats):
            shift = repeat % len(order)
            for system in order[shift:] + order[:shift]:
                mtmc_path = Path(scratch) / f"{repeat}-{len(measurements)}.mtmc.txt"
                item = run_system(system, config, mtmc_path, systems)
                item.extra["accuracy"] = accuracy(
                    config, arguments.gt, mtmc_path, item.extra.pop("processed_frames")
                )
                measurements.append(item)
                logger.warning(
                    "repeat %d, %s: %.2f frames/s, %s",
                    repeat + 1, system, item.frames_per_second, item.extra["accuracy"],
                )  # fmt: skip
    report: dict[str, Any] = {
        "run": describe_run(arguments, "benchmarks.peers"),
        "config_file": str(arguments.streams),
        "ground_truth": str(arguments.gt),
        "streams": len(config.cameras),
        "start_seconds": config.cameras[0].start_seconds,
        "duration_seconds": arguments.duration,
        "frames_evaluated": measurements[0].extra["accuracy"]["frames_evaluated"],
        "detector_runtime": detector_runtime(config),
        "encoder_backend": ", ".join(
            sorted({str(item.extra.get("encoder_backend")) for item in measurements})
        ),
        "tracker_files": {
            label: system.tracker_file
            for label, system in systems.items()
            if isinstance(system, GlueSystem)
        },
        "systems": summarize_systems(measurements),
        "measurements": [item.as_dict() for item in measurements],
    }
    out = results_directory(arguments)
    (out / "peers.json").write_text(json.dumps(report, indent=1) + "\n")
    markdown = markdown_report(report)
    (out / "peers.md").write_text(markdown)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
