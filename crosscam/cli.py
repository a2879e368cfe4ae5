"""The ``crosscam`` console script: one command with the subcommands of ``run.py``.

    crosscam run --streams cams.yaml [run.py options]   python run.py --streams cams.yaml ...
    crosscam check --streams cams.yaml                  python run.py check --streams ...
    crosscam inspect [--runs DIR | --redis-url URL]     python run.py inspect ...
    crosscam calibrate [options]                        pipeline.identity.calibrate.main

``run``, ``check`` and ``inspect`` hand their arguments unchanged to ``run.main``, so the
command and ``python run.py`` behave the same (options, output, exit codes); ``run.py`` stays
the one place that parses them. ``calibrate`` is imported only when asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

EXIT_USAGE = 2
CALIBRATE_MODULE = "pipeline.identity.calibrate"

USAGE = """usage: crosscam {run,check,inspect,calibrate} [options]

  run        run the pipeline:            crosscam run --streams cams.yaml
  check      probe cameras and Redis:     crosscam check --streams cams.yaml
  inspect    show what runs published:    crosscam inspect
  calibrate  calibrate the camera views:  crosscam calibrate --help

'crosscam <subcommand> --help' lists the options of each.
"""


def run_main(argv: list[str]) -> int:
    """``run.py``'s own entry point (imported late: it loads the pipeline's configuration)."""
    import run

    return int(run.main(argv))


def calibrate_main(argv: list[str]) -> int:
    """``pipeline.identity.calibrate.main``, or exit 2 with one line when it is not there."""
    try:
        module = importlib.import_module(CALIBRATE_MODULE)
    except ModuleNotFoundError as error:
        if error.name is None or not CALIBRATE_MODULE.startswith(error.name):
            raise
        sys.stderr.write(
            f"error: crosscam calibrate needs {CALIBRATE_MODULE}, which this installation "
            "does not have\n"
        )
        return EXIT_USAGE
    calibrate: Callable[[list[str]], int] = module.main
    return int(calibrate(argv))


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": run_main,
    "check": lambda argv: run_main(["check", *argv]),
    "inspect": lambda argv: run_main(["inspect", *argv]),
    "calibrate": calibrate_main,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to its subcommand; return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        (sys.stdout if arguments else sys.stderr).write(USAGE)
        return 0 if arguments else EXIT_USAGE
    subcommand, rest = arguments[0], arguments[1:]
    if subcommand not in SUBCOMMANDS:
        sys.stderr.write(
            f"error: unknown subcommand {subcommand!r}; choose one of {', '.join(SUBCOMMANDS)}\n"
        )
        return EXIT_USAGE
    return SUBCOMMANDS[subcommand](rest)
