"""Pure helpers of the pipeline and peer benchmarks: percentiles, timeline stage gaps, spread
over repetitions, markdown tables and the PNG plots. No model, video or Redis here."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stats import TIMELINE_STAGES, FrameKey

PERCENTILES = (50.0, 95.0, 99.0)


def summarize(samples_ms: Iterable[float]) -> dict[str, float]:
    """``count``, ``mean``, ``p50``, ``p95``, ``p99`` and ``max`` of latency samples in ms
    (linear interpolation between order statistics; NaN when there is no sample)."""
    values = np.asarray(list(samples_ms), dtype=np.float64)
    if values.size == 0:
        nan = float("nan")
        return {"count": 0, "mean": nan, "p50": nan, "p95": nan, "p99": nan, "max": nan}
    p50, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "max": float(values.max()),
    }


def timeline_gaps(rows: Sequence[tuple[FrameKey, Mapping[str, float]]]) -> dict[str, list[float]]:
    """Per-stage latency in ms from per-frame stamps (``pipeline.stats.FrameTimeline``).

    Each stage's sample is the time from the previous stamped stage of the same frame to this
    one (so ``encode`` includes queueing and batching, ``match`` the wait for the next tick);
    ``frame_to_identity`` is capture → publish for frames that closed a clip. Frames missing
    a stage (no clip, or still in flight at the end) contribute only the stages they have.
    """
    gaps: dict[str, list[float]] = {stage: [] for stage in TIMELINE_STAGES[1:]}
    gaps["frame_to_identity"] = []
    for _, stamps in rows:
        previous = stamps.get(TIMELINE_STAGES[0])
        if previous is None:
            continue
        for stage in TIMELINE_STAGES[1:]:
            at = stamps.get(stage)
            if at is None:
                break
            gaps[stage].append((at - previous) * 1000.0)
            previous = at
        if "publish" in stamps:
            gaps["frame_to_identity"].append((stamps["publish"] - stamps["capture"]) * 1000.0)
    return gaps


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, min and max over repetitions (NaN-free values only)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "n": 0}
    return {
        "median": float(np.median(finite)),
        "min": float(min(finite)),
        "max": float(max(finite)),
        "n": len(finite),
    }


def format_spread(value: Mapping[str, float], digits: int = 1) -> str:
    """``median (min–max)``, or ``–`` when empty."""
    if not value.get("n"):
        return "–"
    return f"{value['median']:.{digits}f} ({value['min']:.{digits}f}–{value['max']:.{digits}f})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency_cdf(series: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """Empirical CDF of latency samples (ms, log x axis) per labelled series."""
    plt = _figure()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, samples in series.items():
        values = np.sort(np.asarray(samples, dtype=np.float64))
        if values.size == 0:
            continue
        axes.plot(values, np.arange(1, values.size + 1) / values.size, label=label)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("fraction of samples ≤ x")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_throughput(
    stream_counts: Sequence[int], series: Mapping[str, Sequence[Mapping[str, float]]], path: Path
) -> Path:
    """Frames/s (median with min–max error bars) against the number of streams."""
    plt = _figure()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, values in series.items():
        medians = np.array([v["median"] for v in values])
        lower = medians - np.array([v["min"] for v in values])
        upper = np.array([v["max"] for v in values]) - medians
        axes.errorbar(
            stream_counts, medians, yerr=[lower, upper], marker="o", capsize=3, label=label
        )
    axes.set_xticks(list(stream_counts))
    axes.set_xlabel("number of streams")
    axes.set_ylabel("frames/s, all streams (median, min–max)")
    axes.set_title("Throughput vs number of streams")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_latency_vs_streams(
    series: Mapping[str, Sequence[tuple[int, float]]], budget_ms: float, path: Path
) -> Path:
    """p99 latency (ms, log scale) against the number of streams, one line per label, with
    the budget as a dashed line."""
    plt = _figure()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, points in series.items():
        ordered = sorted(points)
        axes.plot([p[0] for p in ordered], [p[1] for p in ordered], marker="o", label=label)
    axes.axhline(budget_ms, color="grey", linestyle="--", label=f"budget {budget_ms:g} ms")
    axes.set_xlabel("number of streams")
    axes.set_ylabel("frame→identity p99, ms")
    axes.set_yscale("log")
    axes.set_title("Latency under load")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_stage_breakdown(breakdown: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Stacked horizontal bars: per-stage p50 latency (ms) per labelled run."""
    plt = _figure()
    labels = list(breakdown)
    stages = list(TIMELINE_STAGES[1:])
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.6 * max(1, len(labels))))
    left = np.zeros(len(labels))
    for stage in stages:
        widths = np.array([breakdown[label].get(stage, 0.0) for label in labels])
        widths = np.nan_to_num(widths)
        axes.barh(labels, widths, left=left, label=stage)
        left += widths
    axes.set_xlabel("p50 latency per stage (ms), capture → publish")
    axes.set_title("Per-stage breakdown (frames that closed a clip)")
    axes.legend(fontsize=8, ncol=len(stages), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return _save(plt, figure, path)


def _save(plt: Any, figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
