"""crosscam command line.

python run.py --streams configs/demo.yaml          run the pipeline (embedded Redis)
python run.py --streams cams.yaml --redis-url redis://host:6379/0
python run.py inspect                              show what runs published
python run.py check --streams cams.yaml            probe every camera and Redis, exit 1 if broken
python run.py calibrate --streams cams.yaml        learn how overlapping camera views relate

kill -HUP <pid> re-reads the --streams file: cameras removed, added or changed apply live.

Exit codes: 0 the run worked; 1 crosscam crashed (a traceback); 2 bad config or arguments
(one line); 3 no camera worked (every camera failed, or no frame was read, and no signal
stopped the run); 4 events left unpublished at exit (Redis unreachable at the end; they wait
in the spool for the next run) or Redis never answered, so nothing was matched; 128 + N a
second signal N forced the exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.markup import escape

from pipeline.config import ConfigError, CrosscamConfig, load_config

if TYPE_CHECKING:
    from pipeline.runner import RunResult

EXIT_CONFIG_ERROR = 2
EXIT_NO_CAMERA = 3
EXIT_REDIS_UNREACHABLE = 4
logger = logging.getLogger("crosscam")


def parse_run_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py", description="Real-time multi-camera person re-identification."
    )
    parser.add_argument("--streams", type=Path, help="camera YAML file (optional for matchers)")
    parser.add_argument(
        "--role",
        choices=["all", "edge", "matcher"],
        default="all",
        help="all: one process; edge: cameras to clip embeddings; matcher: identities",
    )
    parser.add_argument("--name", default=None, help="edge or matcher name (default host-pid)")
    parser.add_argument(
        "--idle-exit-seconds", type=float, default=None, help="matcher: exit when idle this long"
    )
    parser.add_argument("--redis-url", default=None, help="external Redis (default: embedded)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N for all models")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--save-mtmc", type=Path, default=None, help="write AI City MTMC file")
    parser.add_argument("--save-video", type=Path, default=None, help="annotated videos folder")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set encoder.model=tp (repeatable)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="forget the identities stored in Redis"
    )
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument(
        "--watch-config",
        action="store_true",
        help="reload the --streams file when it changes (as on SIGHUP; polled every 2 s)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one JSON object per log line on stderr (for log shippers)",
    )
    return parser.parse_args(argv)


def apply_arguments(config: CrosscamConfig, arguments: argparse.Namespace) -> None:
    """CLI flags win over the YAML; their paths are relative to the working directory."""
    if arguments.redis_url is not None:
        config.redis.url = arguments.redis_url
    if arguments.device is not None:
        config.detector.device = arguments.device
        config.encoder.device = arguments.device
    if arguments.fresh:
        config.redis.restore_identities = False
    if arguments.max_seconds is not None:
        config.max_seconds = arguments.max_seconds
    if arguments.save_mtmc is not None:
        config.outputs.save_mtmc = arguments.save_mtmc.resolve()
    if arguments.save_video is not None:
        config.outputs.save_video = arguments.save_video.resolve()


def configure_logging(console: Console, level: str, log_format: str = "text") -> None:
    """Rich log lines on a terminal; plain one-line records when piped (CI, files); JSON lines
    with ``log_format="json"``. URL credentials are redacted in every format."""
    from pipeline.redaction import RedactingFilter

    handler: logging.Handler
    if log_format == "json":
        from pipeline.structured_logs import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif console.is_terminal:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for noisy in ("ultralytics", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def install_signal_handlers(
    stop: Callable[[], None], reload: Callable[[], None] | None = None
) -> None:
    """First SIGINT/SIGTERM asks for a clean stop; a second one exits at once (128 + signal).
    SIGHUP calls ``reload`` (re-read the config) when given."""
    state = {"count": 0}

    def handler(signal_number: int, frame: FrameType | None) -> None:
        state["count"] += 1
        if state["count"] > 1:
            os._exit(128 + signal_number)
        logger.warning("signal %d: finishing in-flight clips (again to force exit)", signal_number)
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if reload is not None:

        def reload_handler(signal_number: int, frame: FrameType | None) -> None:
            logger.info("SIGHUP: reloading the config")
            reload()

        signal.signal(signal.SIGHUP, reload_handler)


def run(argv: list[str], check: bool = False) -> int:
    """Run the pipeline; ``check``: only probe the cameras and Redis of the config."""
    arguments = parse_run_arguments(argv)
    console = Console(stderr=True)
    configure_logging(console, arguments.log_level, arguments.log_format)
    try:
        config = load_role_config(arguments)
    except ConfigError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        return EXIT_CONFIG_ERROR
    if check:
        from pipeline.check import check_main

        return check_main(config, Console())
    name = arguments.name or f"{socket.gethostname()}-{os.getpid()}"
    if arguments.role == "matcher":
        return run_matcher(config, name, arguments.idle_exit_seconds, console)

    from pipeline.console import StatusLine, summary_table
    from pipeline.metrics import OperationsServer
    from pipeline.redis_server import EmbeddedRedis
    from pipeline.reload import ConfigReloader, ConfigWatcher
    from pipeline.runner import Pipeline

    stop_requested = threading.Event()  # a signal while the models load stops the run too
    pipelines: list[Pipeline] = []

    reload_requested = threading.Event()  # a SIGHUP while the models load applies at start

    def request_stop() -> None:
        stop_requested.set()
        for running in pipelines:
            running.stop()

    def request_reload() -> None:
        reload_requested.set()
        for running in pipelines:
            running.request_reload()

    install_signal_handlers(request_stop, request_reload)
    reloader = ConfigReloader(
        arguments.streams, arguments.overrides, lambda loaded: apply_arguments(loaded, arguments)
    )
    watcher = ConfigWatcher(arguments.streams, request_reload) if arguments.watch_config else None
    operations = OperationsServer(config.metrics)

    run_id = time.strftime("%Y%m%d-%H%M%S")
    run_directory = config.outputs.run_directory / run_id
    run_directory.mkdir(parents=True, exist_ok=True)
    _point_latest(run_directory)
    embedded = None
    redis_url = config.redis.url
    if not redis_url:
        embedded = EmbeddedRedis(config.outputs.run_directory / "redis").start()
        redis_url = embedded.url
    try:
        status = StatusLine(console, config.outputs.status_interval_seconds)
        with Live(console=console, auto_refresh=False, transient=True) as live:

            def on_tick(pipeline: Pipeline) -> None:
                operations.health.tick()
                if not arguments.quiet and status.due():
                    live.update(status.render(pipeline), refresh=True)

            edge_name = name if arguments.role == "edge" else None
            pipeline = Pipeline(config, redis_url, run_id, run_directory, on_tick, edge_name)
            pipeline.config_loader = reloader.load
            pipelines.append(pipeline)
            if stop_requested.is_set():
                pipeline.stop()
            if reload_requested.is_set():
                pipeline.request_reload()
            if config.metrics.enabled:
                operations.attach(pipeline)
                operations.start()
            if watcher is not None:
                watcher.start()
            result = pipeline.run()
        # stderr stays one JSON object per line with --log-format json: the summary goes to stdout
        summary_console = Console() if arguments.log_format == "json" else console
        summary_console.print(summary_table(result))
        _print_how_to_look(summary_console, run_directory, config, embedded is not None, redis_url)
    finally:
        if watcher is not None:
            watcher.stop()
        operations.stop()
        if embedded is not None:
            embedded.stop()
    return exit_code(result)


def exit_code(result: RunResult) -> int:
    """0, or why the run did not do its job (module docstring), with one error line."""
    from pipeline.sources import SourceState

    if not result.gallery_read:
        logger.error("exit %d: Redis never answered; nothing was matched", EXIT_REDIS_UNREACHABLE)
        return EXIT_REDIS_UNREACHABLE
    if result.events_unsent:
        logger.error(
            "exit %d: %d events not published (kept in the spool for the next run)",
            EXIT_REDIS_UNREACHABLE,
            result.events_unsent,
        )
        return EXIT_REDIS_UNREACHABLE
    states = list(result.sources.values())
    all_failed = bool(states) and all(state is SourceState.FAILED for state in states)
    if not result.stopped and (all_failed or result.totals.frames == 0):
        logger.error("exit %d: no camera delivered frames (%s)", EXIT_NO_CAMERA, _states(result))
        return EXIT_NO_CAMERA
    return 0


def _states(result: RunResult) -> str:
    return ", ".join(f"camera {camera} {state.value}" for camera, state in result.sources.items())


def load_role_config(arguments: argparse.Namespace) -> CrosscamConfig:
    """Load and check the config for the chosen role (edges and matchers share one Redis)."""
    if arguments.streams is None and arguments.role != "matcher":
        raise ConfigError("--streams is required: pass --streams path/to/cams.yaml")
    if arguments.streams is None:
        config = CrosscamConfig()
        if arguments.overrides:
            raise ConfigError("--set needs a config file: pass --streams path/to/config.yaml")
    else:
        require = arguments.role != "matcher"
        config = load_config(arguments.streams, arguments.overrides, require_cameras=require)
    apply_arguments(config, arguments)
    if arguments.role != "all" and not config.redis.url:
        raise ConfigError(
            f"--role {arguments.role} needs --redis-url: edges and matchers share one Redis"
        )
    return config


def run_matcher(
    config: CrosscamConfig, name: str, idle_exit_seconds: float | None, console: Console
) -> int:
    """``--role matcher``: assign identities for the clips of every edge until stopped."""
    from pipeline.matcher_role import DistributedMatcher

    matcher = DistributedMatcher(config, config.redis.url, name, time.strftime("%Y%m%d-%H%M%S"))
    install_signal_handlers(matcher.stop)
    counters = matcher.run(idle_exit_seconds)
    console.print(
        f"matcher {name}: {counters.messages} messages, {counters.clips} clips, "
        f"{counters.claimed} claimed from other matchers, {counters.passes} identity passes, "
        f"{len(matcher.identity.matcher.identities)} identities",
        highlight=False,
    )
    return 0


def _point_latest(run_directory: Path) -> None:
    latest = run_directory.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(run_directory.name)
    except OSError:
        logger.debug("could not update %s", latest)


def _print_how_to_look(
    console: Console, run_directory: Path, config: CrosscamConfig, embedded: bool, url: str
) -> None:
    stream = config.redis.stream
    prefix = config.redis.key_prefix
    if embedded:
        console.print(
            f"Results are in the embedded Redis saved under {run_directory.parent}/redis (kept "
            "across runs; --fresh forgets identities). Look at them with:\n"
            f"  python run.py inspect --runs {run_directory.parent}\n"
            "or start that Redis and use redis-cli (see README, 'Results in Redis').",
            highlight=False,
        )
    else:
        console.print(
            f"Results are in {url}:\n  redis-cli -u {url} XRANGE {stream} - + COUNT 10\n"
            f"  redis-cli -u {url} ZRANGE {prefix}:identities 0 -1\n"
            f"  python run.py inspect --redis-url {url}",
            highlight=False,
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "inspect":
        from pipeline.inspect import inspect_main

        return inspect_main(argv[1:])
    if argv and argv[0] == "check":
        return run(argv[1:], check=True)
    if argv and argv[0] == "calibrate":
        from pipeline.identity.calibrate import main as calibrate_main

        return calibrate_main(argv[1:])
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
