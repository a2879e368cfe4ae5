"""Regenerate the README "Performance" section from the benchmark results of one machine.

    python -m benchmarks.performance_readme [--machine vm] [--readme README.md]

Reads ``peers.json``, ``pipeline_fast.json`` and (if present) ``pipeline_realtime.json`` from
``benchmarks/results/<machine>/`` and replaces the text between the markers
``<!-- performance:begin -->`` and ``<!-- performance:end -->`` in the README. ``make bench``
runs the benchmarks and then this.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency_report import format_spread, markdown_table, spread
from benchmarks.peers import ACCURACY_COLUMNS

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- performance:begin -->"
END = "<!-- performance:end -->"


def stage_costs(pipeline: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per stream count, medians over repetitions of the measured compute costs:
    detector ms per frame, encoder ms per clip, clips per frame, other stages ms per frame."""
    costs: dict[int, dict[str, list[float]]] = {}
    for run in pipeline["measurements"]:
        if run["system"] != "crosscam" or not run["frames"]:
            continue
        latency = run["latency_ms"]

        def total(stage: str, latency: dict[str, Any] = latency) -> float:
            entry = latency.get(f"{stage}_compute", {})
            return float(entry.get("mean", 0.0) or 0.0) * int(entry.get("count", 0) or 0)

        frames = run["frames"]
        entry = costs.setdefault(run["streams"], {})
        entry.setdefault("detect_ms_per_frame", []).append(total("detect") / frames)
        entry.setdefault("encode_ms_per_clip", []).append(
            total("encode") / run["clips"] if run["clips"] else float("nan")
        )
        entry.setdefault("clips_per_frame", []).append(run["clips"] / frames)
        other = sum(total(stage) for stage in ("track", "clips", "match", "publish"))
        entry.setdefault("other_ms_per_frame", []).append(other / frames)
    return {
        streams: {key: spread(values)["median"] for key, values in entry.items()}
        for streams, entry in costs.items()
    }


def projection_rows(costs: dict[int, dict[str, float]], fps: Sequence[float]) -> list[list[str]]:
    """Streams one such machine carries at each frame rate if stage costs simply add up."""
    rows = []
    for streams, cost in sorted(costs.items()):
        per_frame = (
            cost["detect_ms_per_frame"]
            + cost["other_ms_per_frame"]
            + cost["clips_per_frame"] * cost["encode_ms_per_clip"]
        )
        rows.append(
            [
                str(streams),
                f"{cost['detect_ms_per_frame']:.1f}",
                f"{cost['encode_ms_per_clip']:.1f}",
                f"{cost['clips_per_frame']:.3f}",
                f"{cost['other_ms_per_frame']:.2f}",
                f"{per_frame:.1f}",
                *(f"{1000.0 / per_frame / rate:.2f}" for rate in fps),
            ]
        )
    return rows


def gpu_profile_paragraph(directory: Path) -> str:
    """The streams-per-machine result when ``gpu_profile.json`` is there, else how to get it."""
    path = directory / "gpu_profile.json"
    command = (
        "`python -m benchmarks.gpu_profile --streams configs/demo.yaml --device cuda "
        "--resolution 1920x1080 --fps 30 --decoders opencv,nvdec`"
    )
    if not path.is_file():
        return (
            f"Not measured on this machine: the GPU profile ({command}: how many 1080p 30 fps "
            "streams one GPU carries with frame→identity p99 under 100 ms, decoding on the CPU "
            "and with NVDEC) needs a CUDA GPU; `make gpu-bench` runs it with the GPU tests and "
            "the encoder and pipeline benchmarks on CUDA.\n"
        )
    profile = json.loads(path.read_text())
    video = profile["video_format"]
    carried = ", ".join(f"{count} with `{name}`" for name, count in profile["capacity"].items())
    relative = path.parent.relative_to(REPOSITORY_ROOT)
    return (
        f"**Streams per machine** ({command}, [{relative}/gpu_profile.md]"
        f"({relative}/gpu_profile.md)): {video['width']}x{video['height']} at "
        f"{video['fps']:g} fps on `{profile['device']}`, frame→identity p99 ≤ "
        f"{profile['budget']['p99_ms']:g} ms: {carried} decoding.\n"
    )


def goal_verdict(systems: dict[str, Any], crosscam: str, glue: str) -> str:
    """One clause: crosscam's throughput ratio and pair F1 against one glue row, and whether
    that meets ≥ 3× at equal or better cross-camera pair F1."""
    ours, theirs = systems[crosscam], systems[glue]
    ratio = ours["frames_per_second"]["median"] / theirs["frames_per_second"]["median"]
    ours_f1 = ours["cross_camera_pair_f1"]["median"]
    theirs_f1 = theirs["cross_camera_pair_f1"]["median"]
    met = ratio >= 3.0 and ours_f1 >= theirs_f1
    return (
        f"vs {glue}: {ratio:.2f}× throughput, cross-camera pair F1 {ours_f1:.3f} vs "
        f"{theirs_f1:.3f}, {'met' if met else 'not met'}"
    )


def runtime_sentence(peers: dict[str, Any]) -> str:
    """Which runtime ran the detector and the encoders, from the report."""
    runtime = peers.get("detector_runtime")
    if runtime is None:
        return ""
    if runtime == "torch":
        return "Every system runs the detector's `.pt` through torch."
    return (
        f"crosscam's `detector.backend: auto` runs the ultralytics {runtime.upper()} export "
        "of the same weights (same boxes); the plain glue rows run the `.pt` as "
        "`model.track` users do, the `exported detector` glue row runs crosscam's export, and "
        "`torch detector` is crosscam on the `.pt`, so the runtime's share and the "
        "architecture's share of each ratio can be read apart. The ReID encoder runs on "
        f"`{peers.get('encoder_backend', '?')}` for every system."
    )


def boxmot_paragraph(directory: Path, systems: dict[str, Any]) -> str:
    """Where the BoxMOT rows come from, or which run has them when this one does not."""
    setup = (
        "BoxMOT (`--boxmot`) runs in its own virtual environment (`make boxmot-venv`: it pins "
        "opencv-python below 5), as a subprocess, with the bundled OSNet x0.25 weights passed "
        "as a local file (nothing downloaded)"
    )
    if any(name.startswith("BoxMOT") for name in systems):
        return setup + ".\n"
    others = []
    for peers_path in sorted(directory.parent.glob("*/peers.json")):
        report = json.loads(peers_path.read_text())
        if peers_path.parent != directory and any(
            name.startswith("BoxMOT") for name in report["systems"]
        ):
            relative = peers_path.parent.relative_to(REPOSITORY_ROOT)
            others.append(
                f"[{relative}/peers.md]({relative}/peers.md) ({report['duration_seconds']:g} s, "
                f"{report['run']['repeats']} repetition(s))"
            )
    where = f"; its rows are not in this run yet, only in {', '.join(others)}" if others else ""
    return f"{setup}{where}.\n"


def careful_glue_sentence(systems: dict[str, Any]) -> str:
    """What the ``ReID every N frames per track`` glue row is, when the results have one."""
    if not any("ReID every" in name for name in systems):
        return ""
    return (
        "; the `ReID every N frames per track` row is the careful user's glue: a feature for a "
        "track's first box and then one box in N (`benchmarks/reid_schedule.py`)"
    )


def performance_section(directory: Path) -> str:
    relative = directory.relative_to(REPOSITORY_ROOT)
    peers = json.loads((directory / "peers.json").read_text())
    fast = json.loads((directory / "pipeline_fast.json").read_text())
    realtime_path = directory / "pipeline_realtime.json"
    realtime = json.loads(realtime_path.read_text()) if realtime_path.is_file() else None
    machine = peers["run"]["machine"]["summary"]
    versions = ", ".join(
        f"{k} {v}" for k, v in peers["run"]["versions"].items() if v not in {"?", ""}
    )
    systems = peers["systems"]
    crosscam = next(name for name in systems if name.startswith("crosscam"))
    rows = []
    for name, entry in systems.items():
        rows.append(
            [
                name,
                format_spread(entry["frames_per_second"], 2),
                f"{systems[crosscam]['frames_per_second']['median'] / entry['frames_per_second']['median']:.2f}",  # noqa: E501
                format_spread(entry["frame_to_identity_p50_ms"], 0),
                format_spread(entry["frame_to_identity_p95_ms"], 0),
                f"{systems[crosscam]['frame_to_identity_p50_ms']['median'] / entry['frame_to_identity_p50_ms']['median']:.2f}",  # noqa: E501
                *(format_spread(entry[key], 3) for key in ACCURACY_COLUMNS if key in entry),
            ]
        )
    scaling = []
    for count in fast["stream_counts"]:
        detector = fast["aggregate"][f"detector only|{count}"]
        ours = fast["aggregate"][f"crosscam|{count}"]
        latency = ours["latency_ms"].get("frame_to_identity", {})
        scaling.append(
            [
                str(count),
                format_spread(detector["frames_per_second"]),
                format_spread(ours["frames_per_second"]),
                f"{ours['frames_per_second']['median'] / detector['frames_per_second']['median']:.2f}",  # noqa: E501
                format_spread(latency.get("p50", {})),
                format_spread(latency.get("p99", {})),
            ]
        )
    glue = [name for name in systems if not name.startswith("crosscam")]
    goal = "; ".join(goal_verdict(systems, crosscam, name) for name in glue)
    bound = min(
        fast["aggregate"][f"crosscam|{c}"]["frames_per_second"]["median"]
        / fast["aggregate"][f"detector only|{c}"]["frames_per_second"]["median"]
        for c in fast["stream_counts"]
    )
    parts = [
        BEGIN,
        "## Performance\n",
        f"Measured on {machine} (`{peers['run']['node']}`), while other jobs shared the "
        f"machine; {versions}. Regenerate everything with `make bench` (about 25 minutes "
        "here). Every number is the median over "
        f"{peers['run']['repeats']} repetitions with (min–max); warm-up (model loading, two "
        "forwards per model) is excluded; ratios come from systems measured side by side in "
        "one run, the system order rotated per repetition.\n",
        "**crosscam vs the glue-it-together pipeline** (`python -m benchmarks.peers`, "
        f"[{relative}/peers.md]({relative}/peers.md)): {peers['streams']} streams of EPFL "
        f"terrace1, {peers['duration_seconds']:g} s from {peers['start_seconds']:g} s at 10 fps, "
        "same frames, same YOLOv8 weights and thresholds. Glue = ultralytics "
        "`model.track` per stream and frame + one OSNet x0.25 feature per box per frame (T=1, "
        "the same engine as crosscam) + a naive cosine matcher "
        f"(`benchmarks/naive_matcher.py`){careful_glue_sentence(systems)}; BoT-SORT has "
        "`with_reid: True, model: auto` "
        "(detector features; `benchmarks/configs/botsort_reid.yaml`). crosscam runs "
        "`configs/demo.yaml`'s encoder (TP, which is also the default). "
        f"{runtime_sentence(peers)} Identity accuracy "
        f"from `benchmarks.accuracy` on the {peers['frames_evaluated']} GT frames of the "
        "segment.\n",
        f"Against the goals of issue 7 on this machine: ≥ 3× the glue pipeline's throughput at "
        f"equal or better identity F1 — {goal}; ≥ 0.9 of the detector-only throughput — "
        f"measured at least {bound:.2f}, {'met' if bound >= 0.9 else 'not met'} (table "
        "below).\n",
        markdown_table(
            [
                "system",
                "frames/s",
                f"{crosscam} ÷ this",
                "frame→identity p50 ms",
                "p95 ms",
                f"{crosscam} ÷ this, p50 latency",
                *(title for key, title in ACCURACY_COLUMNS.items() if key in systems[crosscam]),
            ],
            rows,
        ),
        "frame→identity: glue = capture → the frame's boxes carry global ids; crosscam = "
        "capture of a clip's newest frame → its identity in Redis (a track's first identity "
        "also waits until its first clip's T frames have been seen).\n",
        "**Scaling and the detector-only bound** (`python -m benchmarks.pipeline`, "
        f"[{relative}/pipeline_fast.md]({relative}/pipeline_fast.md)): the demo cameras "
        f"repeated to N streams, {fast['duration_seconds']:g} s of video each, lockstep "
        "replay; detector only = the same readers and batching with nothing after detection. "
        "On a CPU-only machine detection and everything after it share the same cores, so the "
        "fraction of the bound is at most detect cost ÷ total cost per frame (see the "
        "projection below); the goal assumes detection on a GPU with the rest on the CPU.\n",
        markdown_table(
            [
                "streams",
                "detector only, frames/s",
                "crosscam, frames/s",
                "fraction of bound",
                "frame→identity p50 ms",
                "p99 ms",
            ],
            scaling,
        ),
        f"![throughput vs streams]({relative}/pipeline_fast_throughput.png)\n",
        f"![latency CDF]({relative}/pipeline_fast_latency_cdf.png)\n",
        f"![per-stage breakdown]({relative}/pipeline_fast_stages.png)\n",
    ]
    if realtime is not None:
        rt_rows = []
        for count in realtime["stream_counts"]:
            ours = realtime["aggregate"][f"crosscam|{count}"]
            latency = ours["latency_ms"].get("frame_to_identity", {})
            rt_rows.append(
                [
                    str(count),
                    format_spread(ours["frames_per_second"]),
                    format_spread(ours["frames_dropped"], 0),
                    format_spread(latency.get("p50", {})),
                    format_spread(latency.get("p99", {})),
                ]
            )
        parts += [
            "At the videos' own pace (`--mode realtime`, 10 fps per stream, oldest frames "
            f"dropped when behind; [{relative}/pipeline_realtime.md]"
            f"({relative}/pipeline_realtime.md)):\n",
            markdown_table(
                ["streams", "frames/s", "dropped frames", "frame→identity p50 ms", "p99 ms"],
                rt_rows,
            ),
        ]
    rates = (10.0, 30.0)
    parts += [
        "**Projection from per-stage costs.** Measured compute per unit on this machine "
        "(medians, fast mode); streams carried = 1000 / (ms per frame) / fps, assuming stage "
        "costs add up on the same cores (the encoder thread competes with the detector on a "
        "CPU; on a GPU node detection and encoding run on the GPU while tracking, clips, "
        "matching and publishing stay on the CPU, so the GPU carries 1000 / (detect + "
        "clips/frame × encode) / fps streams and the CPU side is the `other` column). GPU "
        "costs are not measured here: run `python -m benchmarks.pipeline --streams … "
        "--device cuda` on the GPU machine and regenerate.\n",
        markdown_table(
            [
                "streams in run",
                "detect ms/frame",
                "encode ms/clip",
                "clips/frame",
                "other ms/frame",
                "total ms/frame",
                *(f"streams @ {rate:g} fps" for rate in rates),
            ],
            projection_rows(stage_costs(fast), rates),
        ),
        gpu_profile_paragraph(directory),
        boxmot_paragraph(directory, systems),
        END,
    ]
    return "\n".join(_wrap(part) for part in parts)


def _wrap(text: str) -> str:
    """Paragraphs wrapped at 100 columns like the rest of the README; tables, images and
    markers kept as they are."""
    if text.startswith(("|", "!", "<!--", "#")):
        return text
    return textwrap.fill(text, 100, break_long_words=False, break_on_hyphens=False) + "\n"


def replace_section(readme: str, section: str) -> str:
    """``readme`` with the marked section replaced (or appended before ``## Tests``)."""
    if BEGIN in readme and END in readme:
        head, rest = readme.split(BEGIN, 1)
        return head + section + rest.split(END, 1)[1]
    anchor = "## Tests"
    if anchor in readme:
        head, tail = readme.split(anchor, 1)
        return head + section + "\n\n" + anchor + tail
    return readme.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.performance_readme")
    parser.add_argument("--machine", default=platform.node())
    parser.add_argument("--readme", type=Path, default=REPOSITORY_ROOT / "README.md")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    directory = REPOSITORY_ROOT / "benchmarks" / "results" / arguments.machine
    try:
        section = performance_section(directory)
    except FileNotFoundError as error:
        sys.stderr.write(f"error: {error.filename}: run make bench first\n")
        return 2
    arguments.readme.write_text(replace_section(arguments.readme.read_text(), section))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
