"""What a finished run reports: :class:`RunResult` (returned by ``Pipeline.run``).

The console prints it (``pipeline/console.py``), ``run.py`` turns it into the exit status, and
the benchmarks read their counts from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.sources import SourceState
from pipeline.stats import LatencyRecorder, RunTotals


@dataclass
class RunResult:
    """What a finished run reports."""

    run_id: str
    run_directory: Path
    redis_url: str
    totals: RunTotals
    latency: LatencyRecorder
    identities_total: int
    identities_multi_camera: int
    sources: dict[int, SourceState] = field(default_factory=dict)
    source_errors: dict[int, str] = field(default_factory=dict)
    events_unsent: int = 0
    events_published: int = 0
    """Events that reached Redis, those replayed from the spool included."""
    events_replayed: int = 0
    gallery_read: bool = True
    """False when Redis never answered, so nothing was matched (``pipeline/identity/store.py``)."""
    stopped: bool = False
    """Stopped by :meth:`pipeline.runner.Pipeline.stop` (a signal), not by the cameras or the time
    limit."""
    mtmc_lines: int | None = None
