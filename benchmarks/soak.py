"""Soak: run.py on looped replay of 4 cameras for a long time, sampling the process's resident
memory (RSS), open file descriptors and threads every ``--interval`` seconds.

    python -m benchmarks.soak --minutes 30 --output benchmarks/results/soak

writes ``soak.json`` (samples and the verdict) and ``soak.png`` (RSS, fds and threads over
time). Verdict: memory plateaus (mean RSS of the last third within ``--rss-tolerance`` of the
middle third) and, after warm-up, file descriptors and threads stay constant. The slow test
``tests/test_soak.py`` runs it for 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPOSITORY_ROOT / "assets"


@dataclass
class Sample:
    seconds: float
    rss_megabytes: float
    file_descriptors: int
    threads: int


@dataclass
class SoakResult:
    minutes: float
    cameras: int
    samples: list[Sample] = field(default_factory=list)
    rss_growth: float = 0.0
    """Mean RSS of the last third over the middle third, minus 1."""
    file_descriptors_range: int = 0
    threads_range: int = 0
    """max - min after warm-up (the first third)."""
    exit_code: int | None = None

    def passed(self, rss_tolerance: float) -> bool:
        return (
            self.rss_growth <= rss_tolerance
            and self.file_descriptors_range <= 2
            and self.threads_range <= 2
            and self.exit_code == 0
        )


def soak_config(directory: Path, cameras: int, fps_cap: float) -> Path:
    """``cameras`` looped realtime replays of the two terrace views (30 s segments)."""
    entries = [
        {
            "id": index,
            "uri": str(ASSETS / "videos" / f"epfl_terrace1-c{index % 2}.mp4"),
            "replay": "realtime",
            "loop": True,
            "fps_cap": fps_cap,
            "start_seconds": 40 + 5 * (index // 2),
            "end_seconds": 70 + 5 * (index // 2),
        }
        for index in range(cameras)
    ]
    config = {
        "cameras": entries,
        "detector": {"weights": str(ASSETS / "weights" / "yolov8_person_hfd.pt")},
        "outputs": {"run_directory": str(directory / "runs")},
        "metrics": {"port": 0},
    }
    path = directory / "soak.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def process_sample(pid: int, started: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in status}
    return Sample(
        seconds=round(time.monotonic() - started, 1),
        rss_megabytes=int(fields["VmRSS"].split()[0]) / 1024.0,
        file_descriptors=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
    )


def run_soak(minutes: float, cameras: int, interval_seconds: float, fps_cap: float) -> SoakResult:
    result = SoakResult(minutes=minutes, cameras=cameras)
    with tempfile.TemporaryDirectory(prefix="crosscam-soak-") as folder:
        config = soak_config(Path(folder), cameras, fps_cap)
        command = [sys.executable, "run.py", "--quiet", "--streams", str(config)]
        process = subprocess.Popen(
            command, cwd=REPOSITORY_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started = time.monotonic()
        try:
            while time.monotonic() - started < minutes * 60:
                if process.poll() is not None:
                    break
                result.samples.append(process_sample(process.pid, started))
                print(asdict(result.samples[-1]), flush=True)
                time.sleep(interval_seconds)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            result.exit_code = process.returncode
            if process.returncode != 0:
                print(stderr.decode()[-3000:], file=sys.stderr)
    summarise(result)
    return result


def summarise(result: SoakResult) -> None:
    samples = result.samples
    third = max(1, len(samples) // 3)
    middle = [sample.rss_megabytes for sample in samples[third : 2 * third]] or [1.0]
    last = [sample.rss_megabytes for sample in samples[2 * third :]] or middle
    result.rss_growth = (sum(last) / len(last)) / (sum(middle) / len(middle)) - 1.0
    warm = samples[third:] or samples
    if warm:
        descriptors = [sample.file_descriptors for sample in warm]
        threads = [sample.threads for sample in warm]
        result.file_descriptors_range = max(descriptors) - min(descriptors)
        result.threads_range = max(threads) - min(threads)


def plot(result: SoakResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [sample.seconds / 60 for sample in result.samples]
    figure, (memory, counts) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    memory.plot(minutes, [sample.rss_megabytes for sample in result.samples], color="tab:blue")
    memory.set_ylabel("RSS (MiB)")
    memory.set_title(
        f"crosscam soak: {result.cameras} looped cameras, {result.minutes:g} min "
        f"(RSS growth last vs middle third {100 * result.rss_growth:+.1f} %)"
    )
    memory.grid(alpha=0.3)
    counts.plot(minutes, [s.file_descriptors for s in result.samples], label="file descriptors")
    counts.plot(minutes, [s.threads for s in result.samples], label="threads")
    counts.set_xlabel("minutes")
    counts.legend()
    counts.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--fps-cap", type=float, default=2.0, help="per camera")
    parser.add_argument("--rss-tolerance", type=float, default=0.05)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/soak"))
    arguments = parser.parse_args(argv)
    result = run_soak(arguments.minutes, arguments.cameras, arguments.interval, arguments.fps_cap)
    arguments.output.mkdir(parents=True, exist_ok=True)
    verdict = result.passed(arguments.rss_tolerance)
    report = asdict(result) | {"passed": verdict, "rss_tolerance": arguments.rss_tolerance}
    (arguments.output / "soak.json").write_text(json.dumps(report, indent=1))
    plot(result, arguments.output / "soak.png")
    print(
        f"RSS growth {100 * result.rss_growth:+.1f} %, fd range {result.file_descriptors_range}, "
        f"thread range {result.threads_range}, exit {result.exit_code}: "
        f"{'PASS' if verdict else 'FAIL'}"
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
