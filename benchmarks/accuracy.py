"""Identity accuracy of a pipeline run against a person ground truth.

    python -m benchmarks.accuracy --streams benchmarks/configs/terrace1.yaml \
        --gt benchmarks/ground_truth/terrace1.json [--set encoder.model=tp …] [--name NAME]
    python -m benchmarks.accuracy --streams CONFIG --gt FILE --mtmc existing_mtmc.txt
    python -m benchmarks.accuracy --streams CONFIG --gt FILE --track-log run.tracks.npz \
        [--live] [--set identity.match_heights=0.3 …]

Runs the pipeline (:class:`pipeline.runner.Pipeline`, an embedded Redis in a temporary folder,
identities not restored) over the configured cameras, writes its MTMC output to
``runs/accuracy/<name>.mtmc.txt``, and scores it on the GT sample frames (see
``benchmarks/accuracy_metrics.py``): IDF1, HOTA and MOTA per camera and over all cameras, and
pair precision/recall/F1 across and within cameras. Writes ``<name>.json`` and ``<name>.md``
under ``benchmarks/results/accuracy/`` (with the machine, the config and the git commit) and
refreshes the index table ``benchmarks/results/accuracy/README.md``.

Cameras are paired with GT cameras by video file name. Only GT frames the run processed are
scored: the harness records every processed (camera, frame), so an ``fps_cap`` that skips GT
frames (multiples of 50 at 25 fps are kept by caps of 5, 10 and 25) or a shorter segment
shows up as fewer evaluated frames in the report, never as misses. With ``--mtmc`` no frame
record exists: every GT frame inside each camera's configured segment counts as processed.

Every run also saves its track log (``<name>.mtmc.tracks.npz``, ``pipeline/identity/
track_log.py``). ``--track-log`` re-runs only the end-of-run identity pass on such a log with
the config's ``identity`` settings (no detector, tracker or encoder), so the identity layer's
choices can be compared on one recorded run. ``--live`` replays the log through the live path
instead (clip matcher plus periodic passes, ``benchmarks/live_replay.py``) and scores each
track's final live identity.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.accuracy_metrics import pair_scores, tracking_metrics
from pipeline.config import ConfigError, CrosscamConfig, load_config
from pipeline.mtmc import MtmcRecorder
from pipeline.records import Frame, FrameDetections
from tools.ground_truth import (
    GroundTruth,
    GroundTruthError,
    PredictedBox,
    load_ground_truth,
    load_mtmc,
    match_boxes,
    person_of_identity,
)

if TYPE_CHECKING:
    from pipeline.identity.track_log import TrackLog

logger = logging.getLogger("benchmarks.accuracy")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIRECTORY = REPOSITORY_ROOT / "benchmarks" / "results" / "accuracy"
MTMC_DIRECTORY = REPOSITORY_ROOT / "runs" / "accuracy"


@dataclass
class RunOutput:
    """What the scoring needs from a run: the MTMC file and the frames processed."""

    mtmc_path: Path
    processed: set[tuple[int, int]] | None
    """``(config camera id, frame index)`` of every processed frame; ``None``: unknown."""
    wall_seconds: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def camera_mapping(config: CrosscamConfig, ground_truth: GroundTruth) -> dict[int, int]:
    """Config camera id → GT camera index, pairing cameras whose video files share a name."""
    names = {Path(video).name: index for index, video in enumerate(ground_truth.videos)}
    mapping = {
        camera.id: names[Path(camera.uri).name]
        for camera in config.cameras
        if Path(camera.uri).name in names
    }
    if not mapping:
        raise ConfigError(f"no camera of the config plays a GT video ({', '.join(sorted(names))})")
    return mapping


def gt_sample_frames(ground_truth: GroundTruth) -> list[int]:
    """The GT sample frames: multiples of the sampling step up to ``frame_count`` (if the
    file gives it) or up to the last labelled frame."""
    every = ground_truth.sample_every_frames
    frame_count = ground_truth.extra.get("frame_count")
    end = int(frame_count) if frame_count else max(ground_truth.sample_frames(), default=-1) + 1
    return list(range(0, end, every))


def segment_frames(config: CrosscamConfig, fps: float) -> dict[int, tuple[int, int | None]]:
    """Per config camera, the ``[first, last)`` frame range of its configured segment."""
    return {
        camera.id: (
            round(camera.start_seconds * fps),
            None if camera.end_seconds is None else round(camera.end_seconds * fps),
        )
        for camera in config.cameras
    }


def evaluated_frames(
    config: CrosscamConfig, ground_truth: GroundTruth, processed: set[tuple[int, int]] | None
) -> list[tuple[int, int]]:
    """``(GT camera, frame)`` keys to score, in camera then time order."""
    mapping = camera_mapping(config, ground_truth)
    segments = segment_frames(config, ground_truth.fps)
    keys: list[tuple[int, int]] = []
    for camera_id, gt_camera in sorted(mapping.items(), key=lambda item: item[1]):
        first, last = segments[camera_id]
        for frame in gt_sample_frames(ground_truth):
            if processed is not None:
                if (camera_id, frame) in processed:
                    keys.append((gt_camera, frame))
            elif frame >= first and (last is None or frame < last):
                keys.append((gt_camera, frame))
    return keys


def run_pipeline(config: CrosscamConfig, mtmc_path: Path, name: str) -> RunOutput:
    """Run the pipeline on ``config`` with a fresh embedded Redis; MTMC output to ``mtmc_path``."""
    from pipeline.redis_server import EmbeddedRedis
    from pipeline.runner import Pipeline

    class FrameRecordingPipeline(Pipeline):
        """The pipeline, noting which (camera, frame) it processed."""

        processed: set[tuple[int, int]]

        def detector_stage(self, frames: list[Frame]) -> list[FrameDetections]:
            self.processed.update((frame.camera_id, frame.frame_index) for frame in frames)
            return super().detector_stage(frames)

    with tempfile.TemporaryDirectory(prefix="crosscam-accuracy-") as scratch:
        scratch_path = Path(scratch)
        config.outputs.run_directory = scratch_path
        config.outputs.save_mtmc = mtmc_path
        config.outputs.save_track_log = mtmc_path.with_suffix(".tracks.npz")
        config.outputs.save_video = None
        config.redis.restore_identities = False
        config.redis.spool_directory = scratch_path / "spool"
        embedded = None
        redis_url = config.redis.url
        if not redis_url:
            embedded = EmbeddedRedis(scratch_path / "redis").start()
            redis_url = embedded.url
        try:
            started = time.monotonic()
            pipeline = FrameRecordingPipeline(config, redis_url, name, scratch_path)
            pipeline.processed = set()
            result = pipeline.run()
            wall_seconds = time.monotonic() - started
        finally:
            if embedded is not None:
                embedded.stop()
    summary = {
        "frames": result.totals.frames,
        "tracks": result.totals.tracks,
        "clips_encoded": result.totals.clips_encoded,
        "identities": result.identities_total,
        "identities_multi_camera": result.identities_multi_camera,
        "mtmc_lines": result.mtmc_lines,
        "source_errors": {str(k): v for k, v in result.source_errors.items()},
    }
    return RunOutput(mtmc_path, pipeline.processed, wall_seconds, summary)


def refine_track_log(config: CrosscamConfig, track_log: Path, mtmc_path: Path) -> RunOutput:
    """The end-of-run identity pass alone, on a saved track log cut to the config's camera
    segments (so a half of the sequence is refined without seeing the other half); writes
    its MTMC file."""
    from pipeline.identity.calibration import known_homographies
    from pipeline.identity.refine import refine_identities

    log = _segment_of(config, track_log)
    started = time.monotonic()
    refinement = refine_identities(log, config.identity, known_homographies(config))
    elapsed = time.monotonic() - started
    global_id_of = refinement.lookup(refinement.global_ids(lambda camera, track: -1))
    summary = {
        "track_log": _relative(track_log),
        "refinement_seconds": round(elapsed, 2),
        **refinement.counts(),
        "mtmc_lines": _write_log_mtmc(log, mtmc_path, global_id_of),
    }
    return RunOutput(mtmc_path, None, None, summary)


def replay_track_log(config: CrosscamConfig, track_log: Path, mtmc_path: Path) -> RunOutput:
    """The live identity path alone on a saved track log cut to the config's camera segments
    (``benchmarks/live_replay.py``); writes each track's final live identity as its MTMC."""
    from benchmarks.live_replay import replay_live

    log = _segment_of(config, track_log)
    started = time.monotonic()
    matcher, online = replay_live(log, config)
    elapsed = time.monotonic() - started
    summary = {
        "track_log": _relative(track_log),
        "live_replay": True,
        "replay_seconds": round(elapsed, 2),
        "passes": online.passes,
        "merges": online.merges,
        "moves": online.splits,
        "mtmc_lines": _write_log_mtmc(
            log, mtmc_path, lambda camera, track, _: matcher.global_id_of(camera, track)
        ),
    }
    return RunOutput(mtmc_path, None, None, summary)


def _segment_of(config: CrosscamConfig, track_log: Path) -> TrackLog:
    """The saved track log cut to the config's camera segments."""
    from pipeline.identity.track_log import TrackLog

    bounds = {camera.id: (camera.start_seconds, camera.end_seconds) for camera in config.cameras}
    return TrackLog.load(track_log).segment(bounds)


def _write_log_mtmc(
    log: TrackLog, mtmc_path: Path, global_id_of: Callable[[int, int, int], int]
) -> int:
    """Every box of ``log`` with its identity, as an MTMC file; the number of lines."""
    recorder = MtmcRecorder()
    for key, record in log.records.items():
        recorder.add_track(key[0], key[1], record.frame_indices, np.stack(record.boxes))
    return recorder.write(mtmc_path, global_id_of)


def score(config: CrosscamConfig, ground_truth: GroundTruth, run: RunOutput) -> dict[str, Any]:
    """Every metric of the report, from the MTMC file of ``run``."""
    mapping = camera_mapping(config, ground_truth)
    predicted = [
        PredictedBox(mapping[box.camera], box.frame, box.identity, box.xyxy)
        for box in load_mtmc(run.mtmc_path)
        if box.camera in mapping
    ]
    frames = evaluated_frames(config, ground_truth, run.processed)
    wanted = set(frames)
    truths = [box for box in ground_truth.boxes if (box.camera, box.frame) in wanted]
    scored = [box for box in predicted if (box.camera, box.frame) in wanted]
    matches = match_boxes(truths, scored)
    per_camera = {
        str(camera): tracking_metrics(truths, scored, [key for key in frames if key[0] == camera])
        for camera in sorted(set(mapping.values()))
    }
    all_cameras = tracking_metrics(truths, scored, frames, clear=False)
    person_of = person_of_identity(matches)
    identities_per_person = Counter(person_of.values())
    skipped = sum(
        1
        for camera in mapping.values()
        for frame in gt_sample_frames(ground_truth)
        if (camera, frame) not in wanted
    )
    return {
        "frames_evaluated": len(frames),
        "gt_frames_not_evaluated": skipped,
        "gt_boxes": len(truths),
        "gt_boxes_matched": len(matches),
        "predicted_boxes": len(scored),
        "per_camera": per_camera,
        "all_cameras": all_cameras,
        "pairs": {kind: value.as_dict() for kind, value in pair_scores(matches).items()},
        "identities_per_person": {
            person: identities_per_person.get(person, 0)
            for person in sorted({box.person for box in truths}, key=_label_order)
        },
    }


def machine_description() -> dict[str, Any]:
    """CPU model and usable cores, GPU (if torch sees one), OS and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": cores,
        "gpu": gpu,
        "summary": f"{cores}-core CPU ({cpu}), GPU: {gpu}",
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def git_commit() -> str:
    """``HEAD`` commit, with ``+dirty`` when tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _run_line(run: dict[str, Any]) -> str:
    """How the scored MTMC file came about, one markdown bullet."""
    if run.get("wall_seconds") is not None:
        return f"- run: {run['wall_seconds']} s wall, MTMC `{run['mtmc']}`"
    if run.get("live_replay"):
        return (
            f"- run: live path replayed on the track log `{run['track_log']}` "
            f"({run['replay_seconds']} s; {run['passes']} passes, {run['merges']} merges, "
            f"{run['moves']} moves), each track's final live identity, MTMC `{run['mtmc']}`"
        )
    if "track_log" in run:
        return (
            f"- run: identity pass alone on the track log `{run['track_log']}` "
            f"({run['refinement_seconds']} s), MTMC `{run['mtmc']}`"
        )
    return f"- run: existing MTMC file `{run['mtmc']}` (no pipeline run)"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_report(report: dict[str, Any]) -> str:
    """The report as a short markdown page with two tables."""
    metrics = report["metrics"]
    lines = [
        f"# Identity accuracy: {report['name']}",
        "",
        f"- sequence: {report['sequence']} (ground truth `{report['ground_truth']}`)",
        f"- config: `{report['config_file']}`"
        + (f", overrides `{' '.join(report['overrides'])}`" if report["overrides"] else ""),
        f"- encoder: {report['config']['encoder']['model']}, "
        f"detector image size {report['config']['detector']['image_size']}, fps caps "
        + ", ".join(
            f"cam{camera['id']}={camera['fps_cap'] or 'none'}"
            for camera in report["config"]["cameras"]
        ),
        f"- machine: {report['machine']['summary']}",
        f"- git commit: {report['git_commit']}",
        _run_line(report["run"]),
        f"- evaluated: {metrics['frames_evaluated']} (camera, frame) samples, "
        f"{metrics['gt_boxes']} GT boxes, {metrics['gt_boxes_matched']} matched at IoU >= 0.5"
        + (
            f"; {metrics['gt_frames_not_evaluated']} GT samples not processed by the run"
            if metrics["gt_frames_not_evaluated"]
            else ""
        ),
        "",
        "| scope | IDF1 | IDP | IDR | HOTA | DetA | AssA | MOTA | IDSW | GT persons | ids |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    scopes = [(f"camera {c}", m) for c, m in metrics["per_camera"].items()]
    scopes.append(("all cameras (MTMC)", metrics["all_cameras"]))
    for scope, m in scopes:
        mota = _percent(m["MOTA"]) if "MOTA" in m else "–"
        lines.append(
            f"| {scope} | {_percent(m['IDF1'])} | {_percent(m['IDP'])} | {_percent(m['IDR'])} "
            f"| {_percent(m['HOTA'])} | {_percent(m['DetA'])} | {_percent(m['AssA'])} "
            f"| {mota} | {m.get('IDSW', '–')} | {m['gt_persons']} "
            f"| {m['predicted_identities']} |"
        )
    lines += [
        "",
        "IDF1/HOTA over all cameras use the global ids across both views (MTMC IDF1); MOTA and "
        "IDSW are per camera only. ids: predicted identities on the GT samples. DetA and MOTA "
        "count misses only of people the ground truth has boxes for: one made from the "
        "detector's own proposals (terrace1's, with a few boxes added by hand; see its "
        "made_by) flatters them.",
        "",
        "Pairs of matched boxes (TP: same GT person and same predicted identity):",
        "",
        "| pairs | precision | recall | F1 | TP | FP | FN | pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("cross_camera", "within_camera", "all"):
        p = metrics["pairs"][kind]
        lines.append(
            f"| {kind.replace('_', ' ')} | {_percent(p['precision'])} | {_percent(p['recall'])} "
            f"| {_percent(p['f1'])} | {p['true_positive']} | {p['false_positive']} "
            f"| {p['false_negative']} | {p['pairs']} |"
        )
    spread = metrics["identities_per_person"]
    lines += [
        "",
        "Predicted identities per GT person (identity → person by majority of matched boxes): "
        + ", ".join(f"{person} {count}" for person, count in spread.items()),
        "",
    ]
    return "\n".join(lines)


def write_index(directory: Path) -> Path:
    """``README.md`` in ``directory``: one row per report JSON found there."""
    rows = [
        "# Identity accuracy runs",
        "",
        "One row per `python -m benchmarks.accuracy` report in this folder (details in each "
        "`<name>.md`). IDF1 all = MTMC IDF1 over both cameras with global ids; pair scores "
        "over pairs of matched GT boxes. Reproduce a row with `python -m benchmarks.accuracy "
        "--streams benchmarks/configs/terrace1.yaml --gt benchmarks/ground_truth/terrace1.json "
        "--name NAME [--set key=value …]` (the overrides column lists the `--set` values).",
        "",
        "| name | encoder | overrides | IDF1 cam0 | IDF1 cam1 | IDF1 all | HOTA all | MOTA cam0/1 "
        "| cross-cam pair P / R / F1 | within-cam pair F1 | machine | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(directory.glob("*.json")):
        try:
            report = json.loads(path.read_text())
            metrics = report["metrics"]
            cameras = metrics["per_camera"]  # other results here (ablation, guard) have none
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue
        idf1 = [_percent(cameras[c]["IDF1"]) if c in cameras else "–" for c in ("0", "1")]
        mota = [_percent(cameras[c]["MOTA"]) if c in cameras else "–" for c in ("0", "1")]
        cross = metrics["pairs"]["cross_camera"]
        rows.append(
            f"| [{report['name']}]({path.stem}.md) | {report['config']['encoder']['model']} "
            f"| {' '.join(report['overrides']) or '–'} | {idf1[0]} | {idf1[1]} "
            f"| {_percent(metrics['all_cameras']['IDF1'])} "
            f"| {_percent(metrics['all_cameras']['HOTA'])} "
            f"| {mota[0]} / {mota[1]} "
            f"| {_percent(cross['precision'])} / {_percent(cross['recall'])} / "
            f"{_percent(cross['f1'])} | {_percent(metrics['pairs']['within_camera']['f1'])} "
            f"| {report['machine']['summary']} | {report['git_commit'][:12]} |"
        )
    index = directory / "README.md"
    index.write_text("\n".join(rows) + "\n")
    return index


def _label_order(label: str) -> tuple[str, int]:
    found = re.fullmatch(r"(\D*)(\d+)", label)
    return (found.group(1), int(found.group(2))) if found else (label, -1)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPOSITORY_ROOT))
    except ValueError:
        return str(path)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy",
        description="Identity accuracy (IDF1/HOTA/MOTA, cross-camera pair P/R/F1) of a run.",
    )
    parser.add_argument("--streams", type=Path, required=True, help="camera YAML file")
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth JSON file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set encoder.model=tp (repeatable)",
    )  # fmt: skip
    parser.add_argument("--mtmc", type=Path, default=None, help="score this MTMC file, no run")
    parser.add_argument(
        "--track-log", type=Path, default=None,
        help="re-run only the end-of-run identity pass on this saved track log (.npz)",
    )  # fmt: skip
    parser.add_argument(
        "--live", action="store_true",
        help="with --track-log: replay it through the live path (matcher + periodic passes)",
    )  # fmt: skip
    parser.add_argument("--name", default=None, help="report name (default from the config)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIRECTORY, help="report folder")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N for all models")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("ultralytics", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(arguments.streams, arguments.overrides)
        ground_truth = load_ground_truth(arguments.gt)
        camera_mapping(config, ground_truth)
    except (ConfigError, GroundTruthError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    if arguments.device is not None:
        config.detector.device = arguments.device
        config.encoder.device = arguments.device
    name = arguments.name or f"{ground_truth.sequence}-{config.encoder.model}"
    if arguments.mtmc is not None:
        run = RunOutput(arguments.mtmc.resolve(), None)
    elif arguments.track_log is not None and arguments.live:
        run = replay_track_log(config, arguments.track_log, MTMC_DIRECTORY / f"{name}.mtmc.txt")
    elif arguments.track_log is not None:
        run = refine_track_log(config, arguments.track_log, MTMC_DIRECTORY / f"{name}.mtmc.txt")
    else:
        run = run_pipeline(config, MTMC_DIRECTORY / f"{name}.mtmc.txt", name)
    metrics = score(config, ground_truth, run)
    report = {
        "name": name,
        "sequence": ground_truth.sequence,
        "ground_truth": _relative(arguments.gt),
        "config_file": _relative(arguments.streams),
        "overrides": arguments.overrides,
        "config": config.model_dump(mode="json"),
        "machine": machine_description(),
        "git_commit": git_commit(),
        "created_unix": round(time.time()),
        "run": {
            "mtmc": _relative(run.mtmc_path),
            "wall_seconds": None if run.wall_seconds is None else round(run.wall_seconds, 1),
            **run.summary,
        },
        "metrics": metrics,
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    markdown = markdown_report(report)
    (arguments.out / f"{name}.md").write_text(markdown)
    write_index(arguments.out)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
