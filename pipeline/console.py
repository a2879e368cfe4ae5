"""What a person sees: a live per-camera status line and the end-of-run summary (rich)."""

from __future__ import annotations

import math
import time

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from pipeline.runner import Pipeline, RunResult
from pipeline.stats import STAGES


class StatusLine:
    """Renders one line per camera (fps, active tracks, identities), at most once per interval."""

    def __init__(self, console: Console, interval_seconds: float) -> None:
        self.console = console
        self.interval_seconds = interval_seconds
        self._last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval_seconds:
            return False
        self._last = now
        return True

    def render(self, pipeline: Pipeline) -> Group:
        matcher = pipeline.matcher
        lines = []
        for source in pipeline.sources:
            camera_id = source.camera.id
            counters = pipeline.totals.cameras[camera_id]
            active = len(pipeline.buffers[camera_id].active_track_ids)
            identities = sum(
                1 for identity in matcher.identities.values() if camera_id in identity.cameras
            )
            lines.append(
                Text(
                    f"{source.camera.display_name:>8} [{source.state.value:<12}] "
                    f"{counters.frames_per_second():5.1f} fps  frames {counters.frames:6d}  "
                    f"tracks {active:3d} active  identities here {identities:3d}"
                )
            )
        elapsed = time.monotonic() - pipeline.started_at
        lines.append(
            Text(
                f"{'all':>8} {elapsed:6.1f} s  identities {len(matcher.identities):3d}  "
                f"multi-camera {matcher.multi_camera_count():3d}  "
                f"clips {pipeline.encoder.clips_encoded:5d} encoded  "
                f"redis {'up' if pipeline.publisher.connected else 'DOWN, buffering'}",
                style="bold",
            )
        )
        return Group(*lines)


def summary_table(result: RunResult) -> Table:
    """The end-of-run summary as a rich table."""
    table = Table(title=f"crosscam run {result.run_id}", show_header=False, box=None)
    totals = result.totals
    table.add_row("frames", str(totals.frames))
    for camera_id, counters in totals.cameras.items():
        state = result.sources.get(camera_id)
        error = result.source_errors.get(camera_id, "")
        detail = f"{counters.frames} frames, {counters.tracks} tracks, {state}"
        table.add_row(f"  camera {camera_id}", detail + (f" ({error})" if error else ""))
    table.add_row("tracks", str(totals.tracks))
    table.add_row("clips encoded", str(totals.clips_encoded))
    table.add_row("global identities", str(result.identities_total))
    table.add_row("identities seen in 2+ cameras", str(result.identities_multi_camera))
    replayed = (
        f" ({result.events_replayed} replayed from the spool)" if result.events_replayed else ""
    )
    table.add_row("events published", f"{result.events_published}{replayed}")
    if result.events_unsent:
        table.add_row("events NOT published", str(result.events_unsent), style="red")
    for stage in [stage for stage in STAGES if result.latency.count(stage)]:
        p50, p95 = result.latency.percentiles(stage)
        if not math.isnan(p50):
            table.add_row(f"latency {stage}", f"p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
    if result.mtmc_lines is not None:
        table.add_row("MTMC lines", str(result.mtmc_lines))
    return table
