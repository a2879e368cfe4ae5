"""Encoder throughput and latency per backend x batch size x precision, for each encoder.

    python -m benchmarks.encoder                      # CPU: torch and ONNX Runtime, batch 1 4 16
    python -m benchmarks.encoder --batch-sizes 1 4 16 64 --repeats 20 --max-seconds-per-cell 60
    python -m benchmarks.encoder --device cuda --backends torch onnxruntime tensorrt \\
        --precisions fp32 fp16 --batch-sizes 1 8 16 32 64

Every cell times ``engine.infer`` on random clips ``(batch, T, 3, 256, 128)`` (``T`` = 8 by
default) after warm-up runs: clips/s (all clips over all timed seconds) and latency
p50/p95/p99 in ms per batch. A cell stops after ``--repeats`` timed runs or once
``--max-seconds-per-cell`` is spent, whichever comes first, but never with fewer than
``--min-repeats`` runs (so with few runs p95/p99 are close to the maximum). Exports and
engine builds happen before timing and are cached (``engines.cache``). Backends that cannot
run here (TensorRT without ``tensorrt``, fp16 on the CPU) are skipped and listed.

Writes ``encoder.json``, ``encoder.md`` and ``encoder.png`` under
``benchmarks/results/<machine>/`` (``<machine>`` = host name unless ``--machine``), with the
machine described (CPU model, cores, GPU, library versions, load average before and after).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from engines.base import Engine, EngineSpec, load_engine

logger = logging.getLogger("benchmarks.encoder")

RESULTS = Path(__file__).resolve().parent / "results"
BACKEND_PRECISIONS = {
    "torch": ("fp32", "fp16"),
    "torch_channels_last": ("fp32", "fp16"),
    "onnxruntime": ("fp32",),
    "tensorrt": ("fp32", "fp16", "int8"),
}


@dataclass(frozen=True)
class Cell:
    """One timed configuration.

    Attributes:
        model: encoder name.
        backend: backend variant (``torch_channels_last`` = torch with channels-last weights).
        precision: ``fp32``, ``fp16`` or ``int8``.
        batch_size: clips per engine call.
        clip_length: frames per clip ``T``.
        runs: timed engine calls.
        clips_per_second: ``batch_size * runs / sum(latencies)``.
        latency_p50_ms, latency_p95_ms, latency_p99_ms: per engine call.
        latency_mean_ms: mean per engine call.
    """

    model: str
    backend: str
    precision: str
    batch_size: int
    clip_length: int
    runs: int
    clips_per_second: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_mean_ms: float


def describe_machine(device: str) -> dict[str, Any]:
    """CPU model, core counts, GPU and library versions of this machine."""
    import onnxruntime
    import torch

    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    description: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu_model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import importlib

        description["tensorrt"] = importlib.import_module("tensorrt").__version__
    except ImportError:
        description["tensorrt"] = None
    return description


def _load(model: str, backend: str, precision: str, arguments: argparse.Namespace) -> Engine:
    options: dict[str, Any] = {"precision": precision, "clip_length": arguments.clip_length}
    if arguments.cache_dir is not None:
        options["cache_dir"] = str(arguments.cache_dir)
    registered = backend
    if backend == "torch_channels_last":
        registered, options["channels_last"] = "torch", True
    if backend == "tensorrt":  # the engine.build defaults, widened to the largest batch
        options.update(min_batch=1, opt_batch=16, max_batch=max(64, *arguments.batch_sizes))
    return load_engine(registered, EngineSpec(model, None, arguments.device, options))


def time_cell(
    engine: Engine,
    batch: np.ndarray,
    warmup: int,
    repeats: int,
    min_repeats: int,
    max_seconds: float,
) -> list[float]:
    """Latencies in ms of timed ``engine.infer(batch)`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        engine.infer(batch)
    latencies: list[float] = []
    spent = 0.0
    while len(latencies) < repeats and (len(latencies) < min_repeats or spent < max_seconds):
        started = time.perf_counter()
        engine.infer(batch)
        elapsed = time.perf_counter() - started
        spent += elapsed
        latencies.append(elapsed * 1000.0)
    return latencies


def summarise(
    model: str, backend: str, precision: str, batch: np.ndarray, latencies: list[float]
) -> Cell:
    values = np.asarray(latencies)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return Cell(
        model=model,
        backend=backend,
        precision=precision,
        batch_size=int(batch.shape[0]),
        clip_length=int(batch.shape[1]),
        runs=len(latencies),
        clips_per_second=float(batch.shape[0] * len(values) / (values.sum() / 1000.0)),
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        latency_p99_ms=float(p99),
        latency_mean_ms=float(values.mean()),
    )


def markdown_table(cells: Sequence[Cell], machine: dict[str, Any], settings: dict[str, Any]) -> str:
    lines = [
        "# Encoder benchmark",
        "",
        f"Machine: {machine['host']}: {machine['cpu']}, {machine['usable_cores']} usable cores"
        + (f", GPU {machine['gpu']}" if machine.get("gpu") else ", no GPU")
        + f"; torch {machine['torch']} ({machine['torch_threads']} threads), "
        f"onnxruntime {machine['onnxruntime']}, tensorrt {machine['tensorrt']}.",
        f"Device: {settings['device']}; T = {settings['clip_length']}; input float32 "
        f"(batch, T, 3, 256, 128); warm-up {settings['warmup']}, up to {settings['repeats']} "
        f"timed runs or {settings['max_seconds_per_cell']} s per cell (at least "
        f"{settings['min_repeats']}). Load average before/after: {settings['load_before']} / "
        f"{settings['load_after']}.",
        "",
        "| model | backend | precision | batch | clips/s | p50 ms | p95 ms | p99 ms | runs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        lines.append(
            f"| {cell.model} | {cell.backend} | {cell.precision} | {cell.batch_size} | "
            f"{cell.clips_per_second:.1f} | {cell.latency_p50_ms:.1f} | "
            f"{cell.latency_p95_ms:.1f} | {cell.latency_p99_ms:.1f} | {cell.runs} |"
        )
    if settings["skipped"]:
        lines += ["", "Skipped: " + "; ".join(settings["skipped"])]
    return "\n".join(lines) + "\n"


def plot(cells: Sequence[Cell], path: Path, title: str) -> None:
    """clips/s against batch size, one panel per model, one line per backend and precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({cell.model for cell in cells})
    figure, axes = plt.subplots(
        1, len(models), figsize=(4.5 * len(models), 4), squeeze=False, sharey=True
    )
    for axis, model in zip(axes[0], models, strict=True):
        series = sorted({(c.backend, c.precision) for c in cells if c.model == model})
        for backend, precision in series:
            points = sorted(
                (c.batch_size, c.clips_per_second)
                for c in cells
                if (c.model, c.backend, c.precision) == (model, backend, precision)
            )
            axis.plot(*zip(*points, strict=True), marker="o", label=f"{backend} {precision}")
        axis.set_xscale("log", base=2)
        axis.set_title(model)
        axis.set_xlabel("batch size (clips)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("clips / s")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from reid_models.factory import encoder_names

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.encoder", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", nargs="+", default=encoder_names())
    parser.add_argument(
        "--backends", nargs="+", default=["torch", "onnxruntime"], choices=list(BACKEND_PRECISIONS)
    )
    parser.add_argument("--precisions", nargs="+", default=None, help="default: fp32 (+fp16 GPU)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--clip-length", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-repeats", type=int, default=2)
    parser.add_argument("--max-seconds-per-cell", type=float, default=6.0)
    parser.add_argument("--machine", default=None, help="results folder name (default: host)")
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    arguments = parser.parse_args(argv)
    if arguments.precisions is None:
        arguments.precisions = ["fp32"] if arguments.device == "cpu" else ["fp32", "fp16"]
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    console = Console(stderr=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    machine = describe_machine(arguments.device)
    machine_name = arguments.machine or machine["host"]
    output_dir = arguments.output_dir or RESULTS / machine_name
    load_before = [round(value, 2) for value in os.getloadavg()]
    plan = [
        (model, backend, precision)
        for model in arguments.models
        for backend in arguments.backends
        for precision in arguments.precisions
        if precision in BACKEND_PRECISIONS[backend]
    ]
    cells: list[Cell] = []
    skipped: list[str] = []
    generator = np.random.default_rng(0)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("encoder benchmark", total=len(plan) * len(arguments.batch_sizes))
        for model, backend, precision in plan:
            label = f"{model} {backend} {precision}"
            if precision == "fp16" and arguments.device == "cpu" and backend.startswith("torch"):
                skipped.append(f"{label}: fp16 autocast is CUDA-only")
                progress.advance(task, len(arguments.batch_sizes))
                continue
            try:
                engine = _load(model, backend, precision, arguments)
            except Exception as error:  # a backend that cannot run here is skipped, not fatal
                first_line = (str(error).splitlines() or [type(error).__name__])[0]
                skipped.append(f"{label}: {first_line}")
                logger.warning("skipping %s: %s", label, first_line)
                progress.advance(task, len(arguments.batch_sizes))
                continue
            for batch_size in arguments.batch_sizes:
                progress.update(task, description=f"{label} batch {batch_size}")
                batch = generator.random(
                    (batch_size, arguments.clip_length, 3, 256, 128), dtype=np.float32
                )
                latencies = time_cell(
                    engine,
                    batch,
                    arguments.warmup,
                    arguments.repeats,
                    arguments.min_repeats,
                    arguments.max_seconds_per_cell,
                )
                cell = summarise(model, backend, precision, batch, latencies)
                cells.append(cell)
                logger.info(
                    "%s batch %d: %.1f clips/s, p50 %.1f ms (%d runs)",
                    label,
                    batch_size,
                    cell.clips_per_second,
                    cell.latency_p50_ms,
                    cell.runs,
                )
                progress.advance(task)
            del engine
    settings = {
        "device": arguments.device,
        "clip_length": arguments.clip_length,
        "batch_sizes": arguments.batch_sizes,
        "warmup": arguments.warmup,
        "repeats": arguments.repeats,
        "min_repeats": arguments.min_repeats,
        "max_seconds_per_cell": arguments.max_seconds_per_cell,
        "load_before": load_before,
        "load_after": [round(value, 2) for value in os.getloadavg()],
        "skipped": skipped,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = "encoder" if arguments.device == "cpu" else f"encoder-{arguments.device.split(':')[0]}"
    report = {
        "machine": machine,
        "settings": settings,
        "cells": [asdict(cell) for cell in cells],
    }
    (output_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(cells, machine, settings)
    (output_dir / f"{stem}.md").write_text(table)
    if cells:
        title = f"{machine_name}: {machine['cpu']}" + (
            f", {machine['gpu']}" if machine.get("gpu") else ""
        )
        title += f" | device {arguments.device}, T={arguments.clip_length}"
        plot(cells, output_dir / f"{stem}.png", title)
    console.print(table)
    logger.info("wrote %s/%s.{json,md,png}", output_dir, stem)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
