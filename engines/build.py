"""Export an encoder to ONNX, then build its TensorRT engine: one command for the deploy path.

    python -m engines.build --model tp --precision fp16 --min-batch 1 --opt-batch 16 --max-batch 64

Steps, each checked: build the encoder (``reid_models.factory``), export it to ONNX with a
parity check (``engines.export_onnx``), build the engine (``engines.tensorrt_build``; INT8
calibrates on the ``--calibration-clips`` file, made with ``python -m tools.calibration_clips``
from the site's footage, and stops with a one-line error without it).
Everything goes to the cache folder (``--cache-dir``, default ``~/.cache/crosscam``); the
engine path is printed last. Without TensorRT the command stops with a one-line error before
exporting (``--onnx-only`` still exports).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from engines.tensorrt_build import PRECISIONS
from reid_models.clip_input import FLOAT_CLIPS, INPUT_FORMATS

logger = logging.getLogger("engines.build")

EXIT_NO_TENSORRT = 2
EXIT_BUILD_FAILED = 1


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m engines.build", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True, help="encoder name: tp, rru_stim, drsta, ...")
    parser.add_argument("--weights", type=Path, default=None, help="encoder file or weights")
    parser.add_argument("--backbone", default="osnet_x0_25")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--min-batch", type=int, default=1)
    parser.add_argument("--opt-batch", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--clip-length", type=int, default=None, help="T (default: 8)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--workspace-gib", type=float, default=4.0)
    parser.add_argument(
        "--calibration-clips",
        type=Path,
        default=None,
        help="INT8 (required): .npz/.npy clips, e.g. from python -m tools.calibration_clips",
    )
    parser.add_argument("--calibration-batches", type=int, default=32)
    parser.add_argument("--recalibrate", action="store_true", help="ignore the INT8 cache")
    parser.add_argument("--force", action="store_true", help="rebuild even on a cache hit")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--onnx-only", action="store_true", help="stop after the ONNX export")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default=FLOAT_CLIPS,
        help="float32_rgb: float clips (batch, T, 3, H, W); uint8_bgr: the camera crops "
        "(batch, T, H, W, 3), a uint8 input binding, converted inside the engine",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from engines.tensorrt_build import (
        BatchProfile,
        TensorRTBuildError,
        TensorRTBuildOptions,
        TensorRTUnavailableError,
        build_engine,
        import_tensorrt,
    )

    if arguments.precision == "int8" and arguments.calibration_clips is None:
        from engines.calibration import MISSING_CLIPS_MESSAGE

        sys.stderr.write(f"engines.build: {MISSING_CLIPS_MESSAGE}\n")
        return EXIT_BUILD_FAILED
    if not arguments.onnx_only:
        try:
            import_tensorrt()
        except TensorRTUnavailableError as error:
            sys.stderr.write(f"engines.build: {error}\n")
            return EXIT_NO_TENSORRT
    try:
        profile = BatchProfile(arguments.min_batch, arguments.opt_batch, arguments.max_batch)
        options = TensorRTBuildOptions(
            precision=arguments.precision,
            profile=profile,
            workspace_bytes=int(arguments.workspace_gib * (1 << 30)),
            calibration_batch_count=arguments.calibration_batches,
            recalibrate=arguments.recalibrate,
            force=arguments.force,
        )
    except ValueError as error:
        sys.stderr.write(f"engines.build: {error}\n")
        return EXIT_BUILD_FAILED

    from engines.export_onnx import export_named_encoder, read_onnx_metadata

    onnx_path = export_named_encoder(
        arguments.model,
        arguments.weights,
        backbone=arguments.backbone,
        clip_length=arguments.clip_length,
        opset=arguments.opset,
        cache_dir=arguments.cache_dir,
        input_format=arguments.input_format,
    )
    logger.info("ONNX: %s", onnx_path)
    if arguments.onnx_only:
        sys.stdout.write(f"{onnx_path}\n")
        return 0

    batches = None
    if arguments.precision == "int8":
        from engines.calibration import calibration_batches_for

        try:
            batches = calibration_batches_for(
                read_onnx_metadata(onnx_path), profile.opt_batch, arguments.calibration_clips
            )
        except (ValueError, FileNotFoundError) as error:
            sys.stderr.write(f"engines.build: {error}\n")
            return EXIT_BUILD_FAILED
    try:
        files = build_engine(
            onnx_path,
            options,
            calibration_batches=batches,
            cache_dir=arguments.cache_dir,
            device=arguments.device,
        )
    except TensorRTBuildError as error:
        sys.stderr.write(f"engines.build: {error}\n")
        return EXIT_BUILD_FAILED
    sys.stdout.write(f"{files.engine}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
