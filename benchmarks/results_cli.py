"""Command-line options every timing benchmark shares: where results go and how much it logs.

Results go under ``benchmarks/results/<machine>/`` (``--machine``, default the host name) or
``--out``.
"""

from __future__ import annotations

import argparse
import logging
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def add_results_arguments(parser: argparse.ArgumentParser) -> None:
    """``--machine``, ``--out`` and ``--log-level``."""
    parser.add_argument("--machine", default=platform.node(), help="results folder name")
    parser.add_argument(
        "--out", type=Path, default=None, help="default benchmarks/results/<machine>"
    )
    parser.add_argument("--log-level", default="WARNING")


def start_logging(arguments: argparse.Namespace) -> None:
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(asctime)s %(name)s: %(message)s"
    )


def results_directory(arguments: argparse.Namespace) -> Path:
    """``--out``, else ``benchmarks/results/<machine>``, created."""
    out = Path(arguments.out) if arguments.out is not None else RESULTS / arguments.machine
    out.mkdir(parents=True, exist_ok=True)
    return out
