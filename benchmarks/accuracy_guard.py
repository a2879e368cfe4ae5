"""The accuracy regression guard: a short terrace1 segment against a committed baseline.

    python -m benchmarks.accuracy_guard            # measure and compare (exit 1 when worse)
    python -m benchmarks.accuracy_guard --write    # measure and store the baseline

Runs the whole pipeline (defaults of ``benchmarks/configs/terrace1.yaml``) on both cameras
from ``START_SECONDS`` to ``END_SECONDS``, scores it against the terrace1 ground truth and
compares MTMC IDF1 and cross-camera pair F1 with ``benchmarks/results/accuracy/guard.json``.
A change that makes identities worse by more than the tolerance fails the default test suite
(``tests/test_accuracy_guard.py``); a change that makes them better should store the new
baseline with ``--write`` in the same commit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.accuracy import RESULTS_DIRECTORY, git_commit, run_pipeline, score
from pipeline.config import load_config
from tools.ground_truth import load_ground_truth

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
STREAMS = REPOSITORY_ROOT / "benchmarks" / "configs" / "terrace1.yaml"
GROUND_TRUTH = REPOSITORY_ROOT / "benchmarks" / "ground_truth" / "terrace1.json"
BASELINE = RESULTS_DIRECTORY / "guard.json"
START_SECONDS, END_SECONDS = 60.0, 90.0
TOLERANCE = {"mtmc_idf1": 0.03, "cross_f1": 0.03}
"""How much worse than the baseline still passes (the run is deterministic on one machine;
the margin absorbs other CPUs' floating-point differences)."""


def measure(work_directory: Path) -> dict[str, float]:
    """MTMC IDF1 and cross-camera pair P/R/F1 of the guard segment, as fractions."""
    cameras = [camera.id for camera in load_config(STREAMS).cameras]
    overrides: list[str] = []
    for camera in cameras:
        overrides += [
            f"cameras.{camera}.start_seconds={START_SECONDS}",
            f"cameras.{camera}.end_seconds={END_SECONDS}",
        ]
    config = load_config(STREAMS, overrides)
    run = run_pipeline(config, work_directory / "guard.mtmc.txt", "guard")
    metrics = score(config, load_ground_truth(GROUND_TRUTH), run)
    cross = metrics["pairs"]["cross_camera"]
    return {
        "mtmc_idf1": float(metrics["all_cameras"]["IDF1"]),
        "cross_precision": float(cross["precision"]),
        "cross_recall": float(cross["recall"]),
        "cross_f1": float(cross["f1"]),
    }


def regressions(measured: dict[str, float], baseline: dict[str, Any]) -> list[str]:
    """One line per guarded metric that fell below its baseline by more than the tolerance."""
    return [
        f"{name}: {measured[name]:.3f} < baseline {baseline['metrics'][name]:.3f} - {margin}"
        for name, margin in TOLERANCE.items()
        if measured[name] < baseline["metrics"][name] - margin
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_guard")
    parser.add_argument("--write", action="store_true", help="store the baseline")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    commit = git_commit()
    with tempfile.TemporaryDirectory(prefix="crosscam-guard-") as work:
        measured = measure(Path(work))
    print(json.dumps(measured, indent=1))
    if arguments.write:
        record = {
            "segment_seconds": [START_SECONDS, END_SECONDS],
            "commit": commit,
            "command": "python -m benchmarks.accuracy_guard --write",
            "metrics": {name: round(value, 4) for name, value in measured.items()},
        }
        BASELINE.write_text(json.dumps(record, indent=1) + "\n")
        return 0
    problems = regressions(measured, json.loads(BASELINE.read_text()))
    for problem in problems:
        print(f"worse than the baseline: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
