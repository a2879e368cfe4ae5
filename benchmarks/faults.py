"""Fault injection: crosscam on two live RTSP cameras while its Redis, itself and one camera
fail on a schedule, then checks on what Redis holds (``benchmarks/fault_checks.py``).

    python -m benchmarks.faults --minutes 10 --output benchmarks/results/faults

Everything is real and local: a ``redis-server`` (the embedded one's binary, on a fixed port
with its append-only file), GStreamer's RTSP server fed by ffmpeg (``tests/rtsp_server.py``;
``make rtsp-deps``) with two looped terrace views, and ``run.py`` processes. Over the run, at
fixed fractions of ``--minutes``:

- Redis is SIGKILLed and restarted three times (down ``--redis-down-seconds`` each);
- crosscam is SIGKILLed and restarted twice, the second time while Redis is down (the new
  process waits for Redis, then replays the killed one's spool);
- camera 0's stream stalls (its publisher SIGSTOPped for ``--stall-seconds``; the RTSP session
  stays open), so the source times out, reconnects and carries on;
- at the end crosscam gets SIGTERM (a clean stop).

Then: no event id missing or conflicting after de-duplication, no ``camera:track`` key shared
by two runs, every track ended, no global id given again to another person and no stored
identity rewritten (its ``first_seen`` never moves later) and ``max_global_id`` never
decreasing. Progress is shown with rich; ``faults.md`` and ``faults.json`` (machine, git
commit, timeline, checks) go to ``--output``. ``tests/test_faults.py`` (slow) runs a
3-minute version.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.accuracy import git_commit, machine_description
from benchmarks.fault_checks import (
    EventCheck,
    IdentityWatch,
    check_events,
    read_stream,
    stored_identity_rewrites,
)
from pipeline.redis_server import EmbeddedRedis, free_tcp_port
from tests.rtsp_server import RtspCameras, prepare_segment, rtsp_available

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPOSITORY_ROOT / "assets"


@dataclass(frozen=True)
class Fault:
    """One scheduled action, at ``fraction`` of the scenario's length."""

    fraction: float
    action: str
    """``redis_kill``, ``redis_start``, ``crosscam_kill`` (SIGKILL, then a new process),
    ``camera_stall`` or ``camera_resume``."""


def fault_plan(minutes: float, redis_down_seconds: float, stall_seconds: float) -> list[Fault]:
    """Three Redis outages, two crosscam kills (the second during an outage), one stall."""
    total = minutes * 60.0
    down = min(redis_down_seconds / total, 0.08)
    stall = min(stall_seconds / total, 0.1)
    plan = [
        Fault(0.15, "redis_kill"),
        Fault(0.15 + down, "redis_start"),
        Fault(0.32, "crosscam_kill"),
        Fault(0.46, "redis_kill"),
        Fault(0.46 + down / 2, "crosscam_kill"),
        Fault(0.46 + down, "redis_start"),
        Fault(0.62, "camera_stall"),
        Fault(0.62 + stall, "camera_resume"),
        Fault(0.78, "redis_kill"),
        Fault(0.78 + down, "redis_start"),
    ]
    return sorted(plan, key=lambda fault: fault.fraction)


@dataclass
class TimelineEntry:
    seconds: float
    action: str
    detail: str = ""


@dataclass
class FaultReport:
    minutes: float
    cameras: int
    redis_kills: int = 0
    crosscam_kills: int = 0
    camera_stalls: int = 0
    crosscam_runs: list[dict[str, Any]] = field(default_factory=list)
    """Per process: start second, how it ended, exit code, warning/error lines, reconnects."""
    timeline: list[TimelineEntry] = field(default_factory=list)
    events: EventCheck = field(default_factory=EventCheck)
    identities: dict[str, Any] = field(default_factory=dict)
    stored_identities_rewritten: list[dict[str, Any]] = field(default_factory=list)
    run_starts_unix: list[float] = field(default_factory=list)
    final_exit_code: int | None = None

    @property
    def passed(self) -> bool:
        return (
            self.events.passed
            and not self.stored_identities_rewritten
            and not self.identities.get("max_global_id_decreases")
            and self.final_exit_code == 0
            and self.events.unique_events > 0
        )


def scenario_config(directory: Path, rtsp: RtspCameras, fps_cap: float) -> Path:
    """The crosscam config: the two RTSP cameras, a stream long enough to keep everything."""
    config = {
        "cameras": [
            {"id": index, "uri": rtsp.url(f"c{index}"), "fps_cap": fps_cap} for index in (0, 1)
        ],
        "detector": {
            "weights": str(ASSETS / "weights" / "yolov8_person_hfd.pt"),
            "image_size": 320,
        },
        "encoder": {"backend": "onnxruntime"},
        "metrics": {"enabled": False},
        "redis": {"stream_max_length": 10_000_000},
        "outputs": {"run_directory": str(directory / "runs")},
    }
    path = directory / "faults.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class CrosscamProcess:
    """One ``run.py`` process, its stderr in a log file."""

    def __init__(self, config: Path, redis_url: str, log_path: Path, started_second: float):
        self.log_path = log_path
        self.started_second = started_second
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "run.py", "--quiet", "--streams", str(config)]
            + ["--redis-url", redis_url],
            cwd=REPOSITORY_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def kill(self) -> int:
        self.process.kill()
        return self._finish(timeout_seconds=30)

    def terminate(self, timeout_seconds: float = 120.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self._finish(timeout_seconds)

    def _finish(self, timeout_seconds: float) -> int:
        try:
            code = self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code

    def summary(self, ended_by: str, exit_code: int) -> dict[str, Any]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return {
            "started_second": round(self.started_second, 1),
            "ended_by": ended_by,
            "exit_code": exit_code,
            "warning_lines": sum(" WARNING " in line for line in lines),
            "error_lines": sum(" ERROR " in line for line in lines),
            "reconnects": sum("reconnected after" in line for line in lines),
            "tracebacks": sum(line.startswith("Traceback") for line in lines),
            "log": self.log_path.name,
        }


def run_scenario(
    minutes: float,
    work: Path,
    redis_down_seconds: float = 20.0,
    stall_seconds: float = 25.0,
    fps_cap: float = 4.0,
) -> FaultReport:
    """Run the scenario in ``work`` (logs and Redis data stay there) and check the result."""
    report = FaultReport(minutes=minutes, cameras=2)
    total = minutes * 60.0
    videos = ASSETS / "videos"
    segments = {
        f"c{index}": prepare_segment(
            videos / f"epfl_terrace1-c{index}.mp4", work / f"c{index}.mp4", 40, 60
        )
        for index in (0, 1)
    }
    redis_server = EmbeddedRedis(work / "redis", port=free_tcp_port())
    plan = fault_plan(minutes, redis_down_seconds, stall_seconds)
    with RtspCameras(segments) as rtsp, _progress() as progress:
        redis_server.start()
        config = scenario_config(work, rtsp, fps_cap)
        watch = IdentityWatch(redis_server.url).start()
        started = time.monotonic()
        runs = 0

        def elapsed() -> float:
            return time.monotonic() - started

        def new_crosscam() -> CrosscamProcess:
            nonlocal runs
            runs += 1
            report.run_starts_unix.append(time.time())
            return CrosscamProcess(
                config, redis_server.url, work / f"crosscam-{runs}.log", elapsed()
            )

        def note(action: str, detail: str = "") -> None:
            report.timeline.append(TimelineEntry(round(elapsed(), 1), action, detail))
            progress.console.log(f"{elapsed():6.1f} s  {action} {detail}".rstrip())

        task = progress.add_task("faults", total=total)
        crosscam = new_crosscam()
        note("crosscam_start", "run 1")
        try:
            for fault in plan:
                _wait_until(started + fault.fraction * total, progress, task, started)
                if fault.action == "redis_kill":
                    redis_server.kill()
                    report.redis_kills += 1
                elif fault.action == "redis_start":
                    redis_server.start()
                elif fault.action == "crosscam_kill":
                    code = crosscam.kill()
                    report.crosscam_runs.append(crosscam.summary("SIGKILL", code))
                    report.crosscam_kills += 1
                    crosscam = new_crosscam()
                elif fault.action == "camera_stall":
                    rtsp.publishers["c0"].pause()
                    report.camera_stalls += 1
                elif fault.action == "camera_resume":
                    rtsp.publishers["c0"].resume()
                note(fault.action, f"(then run {runs})" if fault.action == "crosscam_kill" else "")
            _wait_until(started + total, progress, task, started)
            note("crosscam_stop", "SIGTERM")
            report.final_exit_code = crosscam.terminate()
            report.crosscam_runs.append(crosscam.summary("SIGTERM", report.final_exit_code))
        finally:
            if crosscam.process.poll() is None:
                crosscam.kill()
        identities = watch.stop()
        report.identities = asdict(identities)
        rewrites = stored_identity_rewrites(identities.first_seen_moves, report.run_starts_unix)
        report.stored_identities_rewritten = [asdict(move) for move in rewrites]
        report.events = check_events(read_stream(redis_server.url))
        redis_server.stop()
    return report


def _wait_until(deadline: float, progress: Progress, task: Any, started: float) -> None:
    while (now := time.monotonic()) < deadline:
        progress.update(task, completed=now - started)
        time.sleep(min(0.5, deadline - now))
    progress.update(task, completed=deadline - started)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f} / {task.total:.0f} s"),
        TimeElapsedColumn(),
    )


def markdown_report(report: FaultReport, run: dict[str, Any]) -> str:
    """The report as a short markdown page."""
    events = report.events
    identities = report.identities
    series = identities["max_global_id_series"]
    lines = [
        f"# Fault injection: {report.minutes:g} minutes",
        "",
        f"Machine: {run['machine_summary']} (`{run['node']}`); git commit `{run['git_commit']}`;"
        f" {run['date']}. Command: `{run['command']}`.",
        "",
        f"Two live RTSP cameras (terrace1 c0 and c1, 60 s looped); Redis SIGKILLed and "
        f"restarted {report.redis_kills} times, crosscam SIGKILLed and restarted "
        f"{report.crosscam_kills} times (the second time while Redis was down), camera 0 "
        f"stalled {report.camera_stalls} time(s); SIGTERM at the end.",
        "",
        f"**Verdict: {'PASS' if report.passed else 'FAIL'}**",
        "",
        "| check | result |",
        "|---|---|",
        f"| stream entries / unique events | {events.entries} / {events.unique_events} |",
        f"| redeliveries dropped by `event_id` | {events.redelivered} |",
        f"| event ids missing after de-duplication | {len(events.missing_ids)} |",
        f"| event ids shared by different events | {len(events.conflicting_ids)} |",
        f"| tracks / `camera:track` keys shared by two runs | {events.tracks} / "
        f"{len(events.track_keys_shared_by_runs)} |",
        f"| tracks never ended | {len(events.tracks_never_ended)} |",
        f"| identities seen / stored identities rewritten (id given again or history lost) | "
        f"{identities['identities_seen']} / {len(report.stored_identities_rewritten)} |",
        f"| `first_seen` moved later within the run that made the identity (splits) | "
        f"{len(identities['first_seen_moves']) - len(report.stored_identities_rewritten)} |",
        f"| `max_global_id` decreases (samples while Redis answered / down) | "
        f"{len(identities['max_global_id_decreases'])} "
        f"({identities['samples']} / {identities['unanswered']}) |",
        f"| `max_global_id` at the end | {series[-1][1] if series else 0} |",
        f"| final exit code (SIGTERM) | {report.final_exit_code} |",
        "",
        "Events per run: "
        + ", ".join(f"`{run_id}` {count}" for run_id, count in events.runs.items())
        + "; by type: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(events.events_by_type.items()))
        + ".",
        "",
        "| crosscam run | started (s) | ended by | exit | warnings | errors | reconnects |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, process in enumerate(report.crosscam_runs, start=1):
        lines.append(
            f"| {index} | {process['started_second']} | {process['ended_by']} | "
            f"{process['exit_code']} | {process['warning_lines']} | {process['error_lines']} | "
            f"{process['reconnects']} |"
        )
    lines += ["", "Timeline (seconds): " + "; ".join(
        f"{entry.seconds:.0f} {entry.action}" for entry in report.timeline
    ) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_report(report: FaultReport, output: Path, command: str, work: Path) -> None:
    machine = machine_description()
    run = {
        "machine": machine,
        "machine_summary": f"{machine['cpu']}, {machine['cores']} cores, GPU {machine['gpu']}",
        "node": platform.node(),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
    }
    output.mkdir(parents=True, exist_ok=True)
    document = {"run": run, "passed": report.passed, **asdict(report)}
    (output / "faults.json").write_text(json.dumps(document, indent=1) + "\n")
    (output / "faults.md").write_text(markdown_report(report, run))
    for log in sorted(work.glob("crosscam-*.log")):
        shutil.copy2(log, output / log.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="scenario length")
    parser.add_argument("--redis-down-seconds", type=float, default=20.0)
    parser.add_argument("--stall-seconds", type=float, default=25.0)
    parser.add_argument("--fps-cap", type=float, default=4.0, help="per camera")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/faults"))
    arguments = parser.parse_args(argv)
    if not rtsp_available():
        print("needs ffmpeg and GStreamer's RTSP server: run `make rtsp-deps`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="crosscam-faults-") as folder:
        report = run_scenario(
            arguments.minutes,
            Path(folder),
            arguments.redis_down_seconds,
            arguments.stall_seconds,
            arguments.fps_cap,
        )
        command = "python -m benchmarks.faults " + " ".join(argv or sys.argv[1:])
        write_report(report, arguments.output, command.strip(), Path(folder))
    print((arguments.output / "faults.md").read_text())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
