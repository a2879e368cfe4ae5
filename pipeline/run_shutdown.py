"""The end of a run: the final flush, the end-of-run identity pass and closing the outputs.

:meth:`RunShutdown._shutdown` stops the camera readers, flushes the clip buffers, encodes,
matches and publishes what is in flight, finishes the online identity passes, runs the
end-of-run pass over whole tracks (``identity.refine_at_end``), flushes the publisher, writes
the MTMC file, the track log and the video, and returns the
:class:`~pipeline.run_summary.RunResult`. A part of :class:`~pipeline.runner.Pipeline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pipeline.batch_step import BatchStep
from pipeline.clips import ClipBufferOutput
from pipeline.identity import Refinement, known_homographies, reconcile, refine_identities
from pipeline.run_summary import RunResult
from pipeline.sources import SourceState

logger = logging.getLogger(__name__)


class RunShutdown(BatchStep):
    """The shutdown path of a run: what is in flight gets published, then outputs close."""

    def _shutdown(self) -> RunResult:
        """Stop readers, flush clips, encode, match and publish what is in flight, close."""
        for source in self.sources:
            source.request_stop()  # all at once: a reader blocked in a read takes a while
        for source in self.sources:
            source.stop()
        flushed = ClipBufferOutput()
        for buffer in self.buffers.values():
            flushed.extend(buffer.flush())
        self._handle_buffer_output(flushed)
        self._match_and_publish(self.encoder.drain())
        self.encoder.close()
        self._publish(self.sink.pending_ends())
        self._finish_online_passes()
        final_identities = self._end_of_run_pass()
        all_sent = self.publisher.flush()
        if not all_sent:
            logger.error(
                "Redis unreachable at shutdown: %d events could not be published",
                self.publisher.buffered_events,
            )
        online = self.online_refinement
        if online is not None and online.passes:
            logger.info(
                "online identity passes: %d, %d identities merged, %d tracks split off, "
                "%.1f s in all",
                online.passes,
                online.merges,
                online.splits,
                online.seconds_total,
            )
        mtmc_lines = None
        if self.mtmc is not None and self.config.outputs.save_mtmc is not None:
            mtmc_lines = self.mtmc.write(self.config.outputs.save_mtmc, final_identities)
        if self.track_log is not None and self.config.outputs.save_track_log is not None:
            self.track_log.save(self.config.outputs.save_track_log)
        if self.video is not None:
            self.video.close()
        self.publisher.close()
        matcher = self.matcher
        return RunResult(
            run_id=self.run_id,
            run_directory=self.run_directory,
            redis_url=self.redis_url,
            totals=self.totals,
            latency=self.latency,
            identities_total=len(matcher.identities) + matcher.expired_count,
            identities_multi_camera=matcher.multi_camera_count(),
            sources={
                **{camera_id: SourceState.REMOVED for camera_id in self.removed_cameras},
                **{source.camera.id: source.state for source in self.sources},
            },
            source_errors={s.camera.id: s.error for s in self.sources if s.error},
            events_unsent=self.publisher.buffered_events,
            events_published=self.publisher.counters.events_published,
            events_replayed=self.publisher.counters.events_replayed,
            gallery_read=self.gallery_read,
            stopped=self._stop.is_set(),
            mtmc_lines=mtmc_lines,
        )

    def _finish_online_passes(self) -> None:
        """Stop the background pass worker: its pass in flight is superseded by the end-of-run
        pass, or, without one, waited for and published (then the pass that is due)."""
        online = self.online_refinement
        if online is None:
            return
        if self.config.identity.refine_at_end or self.track_log is None:
            online.close()
            return
        result = online.finish(self.track_log, self.matcher)
        if result is not None and result.events:
            self._publish(result.events, result)

    def _end_of_run_pass(self) -> Callable[[int, int, int], int]:
        """The end-of-run pass over whole tracks (``identity.refine_at_end``): the identities
        it joins are merged in the gallery (published with the last events), and it returns
        ``(camera, track, frame) -> global id`` for the MTMC file; without it, the online
        matcher's ids."""
        online = self.matcher.global_id_of
        if not self.config.identity.refine_at_end or self.track_log is None:
            return lambda camera_id, track_id, frame: online(camera_id, track_id)
        started = time.monotonic()
        # learned again from every track: the online passes keep the first fit they found
        known = known_homographies(self.config)
        refinement = refine_identities(self.track_log, self.config.identity, known)
        if self.sink.matches:
            merged = reconcile(refinement, self.matcher)
            self._publish(merged.events, merged)
        global_ids = refinement.global_ids(online)
        logger.info(
            "end-of-run identity pass (%.1f s): %s",
            time.monotonic() - started,
            _refinement_summary(refinement),
        )
        return refinement.lookup(global_ids)


def _refinement_summary(refinement: Refinement) -> str:
    views = ", ".join(
        f"{first}->{second} ({view.inliers} inliers, {view.median_error_px:.1f} px)"
        for (first, second), view in sorted(refinement.homographies.items())
        if first < second
    )
    counts = ", ".join(
        f"{name.replace('_', ' ')} {value}" for name, value in refinement.counts().items()
    )
    return f"{counts}; overlapping views: {views or 'none'}"
