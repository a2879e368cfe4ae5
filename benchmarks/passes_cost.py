"""What the whole-track identity passes cost the edge: frames/s with passes off, inline, and in
the background worker, side by side on the same footage.

    python -m benchmarks.passes_cost --streams configs/demo.yaml [--duration 60] [--repeats 2]

Each repetition runs the single-process pipeline (``benchmarks.pipeline.run_crosscam``: fresh
embedded Redis, models warmed up, files replayed ``fast``) three times over the same
``--duration`` media seconds, in alternating order: ``off`` (``identity.refine_every_seconds
=0``), ``inline`` (a pass every ``refine_every_seconds`` of footage, run in the loop) and
``background`` (the default: the pass in a worker process). The end-of-run pass is off in all
three (it runs once, after the last frame). Frames/s counts the frames processed up to the
last tick, so shutdown is left out. Ratios to ``off`` from the same repetition are the
figures to compare on a noisy machine. Writes ``passes_cost.json`` and ``.md`` under
``benchmarks/results/<machine>/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track

from benchmarks.pipeline import run_crosscam, set_replay
from pipeline.config import ConfigError, CrosscamConfig, ReplayMode, load_config

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "off": ["identity.refine_every_seconds=0"],
    "inline": ["identity.passes_in_background=false"],
    "background": ["identity.passes_in_background=true"],
}


def measure(config: CrosscamConfig) -> dict[str, float]:
    """One pipeline run: frames processed, seconds to the last tick, passes reconciled."""
    run = run_crosscam(config, "crosscam")
    seconds = float(run.extra["seconds_to_last_tick"])
    return {
        "frames": float(run.frames),
        "seconds": seconds,
        "frames_per_second": run.frames / seconds if seconds > 0 else float("nan"),
        "passes": float(run.extra["identity_passes"]),
        "pass_seconds": float(run.extra["identity_pass_seconds"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.passes_cost", description=__doc__)
    parser.add_argument("--streams", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=60.0, help="media seconds per camera")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--machine", default=platform.node(), help="results folder name")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        configs = {
            name: load_config(arguments.streams, ["identity.refine_at_end=false", *overrides])
            for name, overrides in VARIANTS.items()
        }
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    for config in configs.values():
        set_replay(config, ReplayMode.FAST, arguments.duration)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    for repeat in track(range(arguments.repeats), description="off / inline / background"):
        for name in order if repeat % 2 == 0 else order[::-1]:
            runs[name].append(measure(configs[name]))
    report = summarise(arguments, runs)
    Console().print(report)
    output = RESULTS / arguments.machine
    output.mkdir(parents=True, exist_ok=True)
    (output / "passes_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    (output / "passes_cost.md").write_text(markdown(report))
    return 0


def summarise(arguments: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> dict:
    """Medians per variant and, per repetition, each variant's frames/s over ``off``'s."""
    variants: dict[str, Any] = {}
    for name, measured in runs.items():
        ratios = [
            run["frames_per_second"] / off["frames_per_second"]
            for run, off in zip(measured, runs["off"], strict=True)
        ]
        variants[name] = {
            "frames_per_second": round(
                statistics.median(r["frames_per_second"] for r in measured), 2
            ),
            "each": [round(r["frames_per_second"], 2) for r in measured],
            "ratio_to_off": round(statistics.median(ratios), 3),
            "ratios": [round(ratio, 3) for ratio in ratios],
            "passes": statistics.median(r["passes"] for r in measured),
            "pass_seconds": round(statistics.median(r["pass_seconds"] for r in measured), 2),
            "frames": statistics.median(r["frames"] for r in measured),
        }
    return {
        "machine": f"{arguments.machine}: {platform.node()} ({platform.machine()})",
        "command": "python -m benchmarks.passes_cost " + " ".join(sys.argv[1:]),
        "streams": str(arguments.streams),
        "duration": arguments.duration,
        "repeats": arguments.repeats,
        "variants": variants,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Machine: {report['machine']}. `{report['command']}`: {report['duration']} media "
        f"seconds per camera of `{report['streams']}`, {report['repeats']} alternating "
        "repetitions; frames/s up to the last tick (shutdown left out).",
        "",
        "| passes | frames/s (median) | each | frames/s over off (median) | each "
        "| passes reconciled | s in passes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in report["variants"].items():
        lines.append(
            f"| {name} | {row['frames_per_second']} | {row['each']} | {row['ratio_to_off']} "
            f"| {row['ratios']} | {row['passes']:.0f} | {row['pass_seconds']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
