"""The identity layer's ablation on one sequence: each step's effect, whole and per half.

    python -m benchmarks.identity_ablation --streams benchmarks/configs/terrace1.yaml \
        --gt benchmarks/ground_truth/terrace1.json [--calibration hand.yaml]

Four pipeline runs (``benchmarks.accuracy``'s own runner, one commit): the earlier defaults
(ByteTrack with a 1 s buffer, online matcher only), the new tracker alone, the whole-track
passes without encounter handling, and today's defaults (tracker, online passes, end-of-run
pass, tracks cut where boxes met and a clip for each side). The end-of-run pass's own steps
are then replayed on the default run's saved track log (``--track-log``, so with its
encounter clips): appearance only, + learned geometry, + swap cuts, + encounter cuts
(= defaults), and the user-calibration row (``--calibration``: a calibration file, e.g. the
hand fit of ``benchmarks.homography_check``). Every row is scored on the whole
sequence and on each half. Pipeline rows score their halves from the whole run's MTMC output
(the online matcher is causal, so its first half never saw the second); track-log rows refine
each half on its own, so choices made on the first half never saw the second. Writes
``benchmarks/results/accuracy/ablation.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.accuracy import (
    MTMC_DIRECTORY,
    RESULTS_DIRECTORY,
    RunOutput,
    git_commit,
    machine_description,
    refine_track_log,
    run_pipeline,
    score,
)
from pipeline.config import load_config
from tools.ground_truth import load_ground_truth

EARLIER = ["tracker.algorithm=bytetrack", "tracker.lost_track_seconds=1.0"]
ONLINE_ONLY = ["identity.refine_at_end=false", "identity.refine_every_seconds=0"]
NO_ENCOUNTERS = ["identity.cut_encounters=false"]
PIPELINE_ROWS = [
    ("earlier defaults: ByteTrack 1 s, online matcher", EARLIER + ONLINE_ONLY),
    ("+ tracker: BoT-SORT 2 s", ONLINE_ONLY),
    ("+ whole-track passes", NO_ENCOUNTERS),
    ("+ encounters: cuts and clips (defaults)", []),
]
LOG_ROWS = [
    (
        "end-of-run pass, appearance only",
        ["identity.learn_geometry=false", "identity.cut_swaps=false", *NO_ENCOUNTERS],
    ),
    ("+ learned geometry", ["identity.cut_swaps=false", *NO_ENCOUNTERS]),
    ("+ swap cuts", NO_ENCOUNTERS),
    ("+ encounter cuts (defaults)", []),
]


def halves(streams: Path, overrides: list[str], split_seconds: float) -> dict[str, list[str]]:
    config = load_config(streams, overrides)
    cameras = [camera.id for camera in config.cameras]
    return {
        "whole": overrides,
        "first": overrides + [f"cameras.{c}.end_seconds={split_seconds}" for c in cameras],
        "second": overrides + [f"cameras.{c}.start_seconds={split_seconds}" for c in cameras],
    }


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    cross = metrics["pairs"]["cross_camera"]
    spread = list(metrics["identities_per_person"].values())
    return {
        "mtmc_idf1": metrics["all_cameras"]["IDF1"],
        "hota": metrics["all_cameras"]["HOTA"],
        "camera_idf1": {c: m["IDF1"] for c, m in metrics["per_camera"].items()},
        "cross_precision": cross["precision"],
        "cross_recall": cross["recall"],
        "cross_f1": cross["f1"],
        "identities_per_person": sum(spread) / max(len(spread), 1),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Identity ablation",
        "",
        f"- sequence: `{report['streams']}`, ground truth `{report['gt']}`; halves split at "
        f"{report['split_seconds']} s",
        f"- machine: {report['machine']}; git commit {report['commit']}",
        "- command: `python -m benchmarks.identity_ablation --streams "
        f"{report['streams']} --gt {report['gt']}"
        + (f" --calibration {report['calibration']}`" if report["calibration"] else "`"),
        "- pipeline rows: one run each, halves scored from the whole run's output; track-log "
        "rows: the default run's tracks, each half refined on its own",
        "",
        "| step | part | MTMC IDF1 | HOTA | IDF1 per camera | cross-camera pair P / R / F1 "
        "| ids per person |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        for part in ("first", "second", "whole"):
            m = row[part]
            cameras = " / ".join(f"{100 * v:.1f}" for v in m["camera_idf1"].values())
            lines.append(
                f"| {row['name'] if part == 'first' else ''} | {part} | {100 * m['mtmc_idf1']:.1f} "
                f"| {100 * m['hota']:.1f} | {cameras} | {100 * m['cross_precision']:.1f} / "
                f"{100 * m['cross_recall']:.1f} / {100 * m['cross_f1']:.1f} "
                f"| {m['identities_per_person']:.2f} |"
            )
    lines += ["", "Run facts (pipeline rows): " + "; ".join(
        f"{row['name']}: {row['run']}" for row in report["rows"] if row.get("run")
    ), ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identity_ablation")
    parser.add_argument("--streams", type=Path, required=True)
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, default=None, help="user-calibration row")
    parser.add_argument("--split-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIRECTORY)
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("ultralytics", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    commit = git_commit()  # the code that runs, whatever lands while it does
    ground_truth = load_ground_truth(arguments.gt)
    rows: list[dict[str, Any]] = []
    default_log: Path | None = None
    for index, (name, overrides) in enumerate(PIPELINE_ROWS):
        mtmc = MTMC_DIRECTORY / f"ablation-{index}.mtmc.txt"
        run = run_pipeline(load_config(arguments.streams, overrides), mtmc, f"ablation-{index}")
        row: dict[str, Any] = {"name": name, "overrides": overrides, "run": run.summary}
        row["run"]["wall_seconds"] = round(run.wall_seconds or 0.0, 1)
        for part, sets in halves(arguments.streams, overrides, arguments.split_seconds).items():
            config = load_config(arguments.streams, sets)
            row[part] = summary(score(config, ground_truth, RunOutput(mtmc, None)))
        rows.append(row)
        if not overrides:
            default_log = mtmc.with_suffix(".tracks.npz")
    assert default_log is not None
    log_rows = list(LOG_ROWS)
    if arguments.calibration is not None:
        calibration = str(arguments.calibration.resolve())
        log_rows.append(("+ user calibration", [f"identity.calibration={calibration}"]))
    for index, (name, overrides) in enumerate(log_rows):
        row = {"name": name, "overrides": overrides}
        for part, sets in halves(arguments.streams, overrides, arguments.split_seconds).items():
            config = load_config(arguments.streams, sets)
            mtmc = MTMC_DIRECTORY / f"ablation-log-{index}-{part}.mtmc.txt"
            refined = refine_track_log(config, default_log, mtmc)
            row[part] = summary(score(config, ground_truth, RunOutput(mtmc, None)))
            row.setdefault("refinement", {})[part] = refined.summary
        rows.append(row)
    report = {
        "streams": str(arguments.streams),
        "gt": str(arguments.gt),
        "calibration": str(arguments.calibration) if arguments.calibration else None,
        "split_seconds": arguments.split_seconds,
        "machine": machine_description()["summary"],
        "commit": commit,
        "rows": rows,
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "ablation.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (arguments.out / "ablation.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
