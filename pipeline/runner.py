"""The pipeline loop: sources → detect → track → clips → encode → match → publish.

Each tick takes at most one frame per camera, detects persons in all of them with one batched
forward, tracks and buffers per camera, hands finished clips to the batching encoder (its own
thread) and matches whatever clips it has embedded since the last tick. Events are handed to
the publisher in the same tick: to its own thread (``stages.publish_async``, the default;
``pipeline/publish_thread.py``), or sent to Redis in the loop. Pipelined
(``stages.pipelined``, the default), the gather and detection of tick ``n + 1`` run on a
thread of their own (``pipeline/stages.py``) while tick ``n`` is handled here; the serial loop
does one after the other, with the same outputs on file replay. ``stop()`` (called from a
signal handler) ends the loop; the shutdown path then flushes clip buffers, encodes and
matches what is in flight, publishes it and closes outputs. ``request_reload()`` (SIGHUP)
makes the loop re-read the config between ticks and stop, start or restart the cameras that
changed (``pipeline/reload.py``). What the loop produces goes to its sink
(``pipeline/sinks.py``): matched here (the single process), or sent to the matchers (an edge).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from pipeline.clips import Clip, ClipBuffer, ClipBufferOutput
from pipeline.config import CameraConfig, CrosscamConfig
from pipeline.detect import PersonDetector
from pipeline.encode import BatchingEncoder, load_encoder_engine
from pipeline.events import Event, EventType
from pipeline.frame_rate import frame_rate_or_default
from pipeline.identity import (
    EmbeddedClip,
    IdentityService,
    MatchResult,
    OnlineRefinement,
    Refinement,
    TrackLog,
    known_homographies,
    reconcile,
    refine_identities,
)
from pipeline.mtmc import MtmcRecorder
from pipeline.publish import RedisPublisher, StreamRecord, build_publisher
from pipeline.publish_thread import AsyncPublisher
from pipeline.reconnect import ReconnectWatcher
from pipeline.records import Frame, FrameDetections
from pipeline.refresh_policy import RefreshPolicy
from pipeline.reload import ContinuingTracker, ReloadPlan, TrackerLike, plan_reload
from pipeline.sinks import ClipStream, LocalIdentity, TrackSink
from pipeline.sources import CameraSource, FrameGatherer, SourceState
from pipeline.stages import DetectionAhead
from pipeline.stats import CameraCounters, FrameTimeline, LatencyRecorder, RunTotals
from pipeline.track import CameraTracker
from pipeline.track_ledger import read_track_ledger
from pipeline.visualize import AnnotatedVideoWriter

logger = logging.getLogger(__name__)


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
    """Stopped by :meth:`Pipeline.stop` (a signal), not by the cameras or the time limit."""
    mtmc_lines: int | None = None


class Pipeline:
    """One crosscam run over the configured cameras, publishing to the Redis at ``redis_url``."""

    def __init__(
        self,
        config: CrosscamConfig,
        redis_url: str,
        run_id: str,
        run_directory: Path,
        on_tick: Callable[[Pipeline], None] | None = None,
        edge_name: str | None = None,
    ) -> None:
        """``edge_name`` set: run as an edge, sending clip embeddings to the clip stream for
        distributed matchers instead of matching here (``--role edge``)."""
        self.config = config
        self.edge_name = edge_name
        self.run_id = run_id
        self.run_directory = run_directory
        self.redis_url = redis_url
        self.on_tick = on_tick
        self.latency = LatencyRecorder()
        self.timeline: FrameTimeline | None = None
        """Per-frame stage stamps; set by benchmarks (``benchmarks/pipeline.py``), else off."""
        self.sources: list[CameraSource] = []
        """Running cameras; changed in place by reloads (the frame gatherer holds this list)."""
        self.trackers: dict[int, TrackerLike] = {}
        self.buffers: dict[int, ClipBuffer] = {}
        self.removed_cameras: dict[int, CameraConfig] = {}
        """Cameras a reload removed (metrics show them as ``removed``)."""
        self.config_loader: Callable[[], CrosscamConfig | None] | None = None
        """Reads the config again for :meth:`request_reload`; None after an error (logged)."""
        self._highest_track_id: dict[int, int] = {}
        self.totals = RunTotals()
        for camera in config.cameras:
            self._add_camera(camera)
        self.detector = PersonDetector(config.detector)
        frame_rates = {
            camera.id: frame_rate_or_default(camera.fps_cap) for camera in config.cameras
        }
        engine = load_encoder_engine(config.encoder)
        self.encoder = BatchingEncoder(
            engine,
            config.encoder.max_batch,
            config.encoder.max_wait_ms,
            on_batch=lambda size, ms: self.latency.record("encode", ms),
            overflow=self._encoder_overflow(),
            pinned=config.encoder.device.startswith("cuda"),
        )
        # the matcher gets its own copy: re-association is widened after a camera reconnects
        self.identity = IdentityService(config.matching.model_copy())
        self.reconnects = ReconnectWatcher()
        self.matcher = self.identity.matcher
        self.sink: TrackSink = (
            ClipStream(edge_name)
            if edge_name is not None
            else LocalIdentity(self.identity, redis_url, config.redis)
        )
        """Where tracks and embedded clips go: matched here, or sent to the matchers."""
        clips_config = config.clips
        if edge_name is not None:  # the identities live in the matchers: refresh as configured
            clips_config = clips_config.model_copy(update={"refresh_policy": "always"})
        self.refresh_policy = RefreshPolicy(clips_config)
        """Which refresh clips get encoded (``clips.refresh_policy``)."""
        publisher = build_publisher(config, redis_url, run_id, edge_name)
        self.publisher: RedisPublisher | AsyncPublisher = (
            AsyncPublisher(publisher, self._record_sent, config.stages.publish_queue_batches)
            if config.stages.publish_async
            else publisher
        )
        self.mtmc = MtmcRecorder() if config.outputs.save_mtmc else None
        self.track_log = self._track_log()
        """Whole tracks for the identity passes (``pipeline.identity.refine``)."""
        self.online_refinement = (
            OnlineRefinement(config.identity, known_homographies(config))
            if self.track_log is not None and self.sink.matches
            else None
        )
        self.video = (
            AnnotatedVideoWriter(config.outputs.save_video, frame_rates)
            if config.outputs.save_video
            else None
        )
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.started_at = time.monotonic()
        self.gallery_read = True

    def _track_log(self) -> TrackLog | None:
        """A log for the end-of-run pass (MTMC output), the online passes, or to save; file
        replays keep every track, live cameras the last ``identity.window_seconds``."""
        config = self.config
        online = config.identity.refine_every_seconds > 0 and self.sink.matches
        if not (online or config.outputs.save_mtmc or config.outputs.save_track_log):
            return None
        files = all(source.lockstep for source in self.sources)
        return TrackLog(None if files else config.identity.window_seconds)

    def stop(self) -> None:
        """Ask the loop to end after the current tick (safe from a signal handler)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the loop to re-read the config before its next tick (safe from a signal
        handler)."""
        self._reload.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _add_camera(self, camera: CameraConfig) -> CameraSource:
        """Build the source, tracker and clip buffer of a camera (not started yet)."""
        source = CameraSource(camera)
        self.sources.append(source)
        tracker = CameraTracker(self.config.tracker, frame_rate_or_default(camera.fps_cap))
        if camera.id in self._highest_track_id:  # restarted: never reuse one of its track ids
            self.trackers[camera.id] = ContinuingTracker(
                tracker, self._highest_track_id[camera.id] + 1
            )
        else:
            self.trackers[camera.id] = tracker
        identity = self.config.identity
        encounter_iou = identity.encounter_iou if identity.cut_encounters else None
        self.buffers[camera.id] = ClipBuffer(self.config.clips, camera.id, encounter_iou)
        self.totals.cameras.setdefault(camera.id, CameraCounters())
        self.removed_cameras.pop(camera.id, None)
        return source

    def _remove_camera(self, camera_id: int) -> None:
        """Stop a camera's reader (joined), flush its clip buffer into the encoder and publish
        its ended tracks, as shutdown does; the clips' identities follow in the next ticks."""
        source = next(source for source in self.sources if source.camera.id == camera_id)
        source.request_stop()
        source.stop()
        self.sources.remove(source)
        self.trackers.pop(camera_id, None)
        buffer = self.buffers.pop(camera_id)
        self._handle_buffer_output(buffer.flush())
        self.removed_cameras[camera_id] = source.camera

    def _encoder_overflow(self) -> Literal["block", "shed"]:
        """Fast file replay waits for the encoder (no clip lost); live and real-time cameras
        cannot wait, so an overloaded encoder sheds refresh clips (``pipeline.encode``)."""
        return "block" if all(source.lockstep for source in self.sources) else "shed"

    def apply_reload(self) -> ReloadPlan | None:
        """Re-read the config and apply its camera changes; None when it did not load."""
        if self.config_loader is None:
            logger.warning("config reload requested, but this run has no config file to read")
            return None
        new_config = self.config_loader()
        if new_config is None:
            return None
        plan = plan_reload(self.config, new_config)
        if plan.restart_needed:
            logger.warning(
                "config reload: %s changed; restart crosscam to apply (only cameras change live)",
                ", ".join(plan.restart_needed),
            )
        for camera_id in plan.removed:
            self._remove_camera(camera_id)
            logger.info("camera %s removed", camera_id)
        for camera in plan.changed:
            self._remove_camera(camera.id)
            self._add_camera(camera).start()
            logger.info("camera %s restarted with its new settings", camera.id)
        for camera in plan.added:
            self._add_camera(camera).start()
            logger.info("camera %s added (%s)", camera.id, camera.display_name)
        if plan.empty:
            logger.info("config reload: cameras unchanged")
        self.config.cameras = [camera.model_copy() for camera in new_config.cameras]
        self.encoder.overflow = self._encoder_overflow()
        return plan

    def run(self) -> RunResult:
        """Run until every source ends, ``max_seconds`` pass, or :meth:`stop` is called."""
        self.publisher.describe_run(
            {
                "cameras": ",".join(str(camera.id) for camera in self.config.cameras),
                "encoder": self.config.encoder.model,
                "started_unix": f"{time.time():.3f}",
            }
        )
        self.started_at = time.monotonic()  # the time limit covers waiting for Redis too
        self.gallery_read = self._restore_gallery()
        if self.gallery_read:
            self._continue_tracks()
            for source in self.sources:
                source.start()
        try:
            if self.gallery_read and self.config.stages.pipelined:
                self._run_pipelined()
            elif self.gallery_read:
                self._run_serial()
        finally:
            result = self._shutdown()
        return result

    def _run_serial(self) -> None:
        """Gather, detect and handle one batch after the other (``stages.pipelined: false``)."""
        gatherer = FrameGatherer(self.sources, should_stop=self._interrupted)
        while not self._stop.is_set():
            if self._out_of_time():
                logger.info("max_seconds reached; stopping")
                break
            if self._reload.is_set():
                self._reload.clear()
                self.apply_reload()
            frames = gatherer.gather()
            if not frames:
                if self._reload.is_set() and not self._stop.is_set():
                    continue
                self._log_end(gatherer)
                break
            self._handle_reconnects()
            self._tick(self.detector_stage(frames))
            if self.on_tick is not None:
                self.on_tick(self)

    def _run_pipelined(self) -> None:
        """Detect the next batch on a thread of its own while this one handles the previous
        (``pipeline/stages.py``): same batches in the same order, same reload and end points
        as :meth:`_run_serial`. A stop lets the batches already detected through."""
        gatherer = FrameGatherer(self.sources)
        ahead = DetectionAhead(
            gatherer.gather,
            self.detector_stage,
            self._interrupted,
            self.config.stages.detect_ahead_batches,
        )
        gatherer.should_stop = ahead.should_stop_gathering
        ahead.start()
        try:
            while True:
                detected = ahead.next()
                if detected is None:  # paused: every camera ended, or interrupted
                    if self._stop.is_set() or self._out_of_time():
                        self._log_end(gatherer)
                        break
                    if self._reload.is_set():
                        self._reload.clear()
                        self.apply_reload()
                        ahead.resume()
                        continue
                    self._log_end(gatherer)
                    break
                self._handle_reconnects()
                self._tick(detected)
                if self.on_tick is not None:
                    self.on_tick(self)
        finally:
            ahead.close()

    def _log_end(self, gatherer: FrameGatherer) -> None:
        """Say why the loop ends (a stop request needs no line)."""
        if self._stop.is_set():
            return
        if gatherer.finished:
            logger.info(
                "every camera has ended or failed (%s); stopping", _describe_states(self.sources)
            )
        elif self._out_of_time():
            logger.info("max_seconds reached; stopping")

    def _handle_reconnects(self) -> None:
        """Widen re-association after a camera reconnect: here, or, as an edge, in the
        matchers, which get a ``reconnected`` message ahead of the new tracks' clips."""
        records = self.sink.reconnected(self.reconnects.poll(self.sources))
        if records:
            self._publish(records)

    def _interrupted(self) -> bool:
        """Stop waiting for frames: a stop or reload request, or the time limit passed (which
        must hold whatever the cameras do)."""
        return self._stop.is_set() or self._reload.is_set() or self._out_of_time()

    def _restore_gallery(self) -> bool:
        """Read the stored gallery, waiting for Redis (until stopped or out of time); False
        when it never answered. Edges match nothing and need no gallery."""
        return self.sink.restore(lambda: self._stop.is_set() or self._out_of_time())

    def _continue_tracks(self) -> None:
        """Continue each camera's track ids after those of earlier runs, and end the tracks a
        killed run left open (``pipeline/track_ledger.py``). An earlier run's spool is replayed
        first, so its tracks count. Edges continue their ids too, and send an ``ended`` message
        (``left_open``) for each such track, which the matcher publishes as ``track_ended``.
        Either way each track gets one ``track_ended``, whatever other runs start at once."""
        self.publisher.flush(timeout_seconds=10.0)
        camera_ids = [camera.id for camera in self.config.cameras]
        try:
            highest, left_open = read_track_ledger(
                self.redis_url, self.config.redis.key_prefix, camera_ids
            )
        except redis.RedisError as error:
            logger.warning(
                "could not read the track ids of earlier runs (%s); track ids restart at 0",
                error.__class__.__name__,
            )
            return
        for camera_id, track_id in highest.items():
            self._highest_track_id[camera_id] = track_id
            if camera_id in self.trackers:
                self.trackers[camera_id] = ContinuingTracker(self.trackers[camera_id], track_id + 1)
        if not left_open:
            return
        logger.info(
            "%d tracks of an earlier run were never ended (killed?); %s",
            len(left_open),
            self.sink.left_open_action,
        )
        self._publish(self.sink.left_open(left_open))

    def detector_stage(self, frames: list[Frame]) -> list[FrameDetections]:
        started = time.monotonic()
        detected = self.detector.detect(frames)
        finished = time.monotonic()
        self.latency.record("detect", (finished - started) * 1000.0)
        if self.timeline is not None:
            for frame in frames:
                self.timeline.stamp(
                    "capture", [(frame.camera_id, frame.frame_index)], frame.captured_at
                )
            self.timeline.stamp("detect", _frame_keys(frames), finished)
        return detected

    def _out_of_time(self) -> bool:
        limit = self.config.max_seconds
        return limit is not None and time.monotonic() - self.started_at >= limit

    def _tick(self, detected: list[FrameDetections]) -> None:
        output = ClipBufferOutput()
        now = time.monotonic()
        for frame_detections in detected:
            camera_id = frame_detections.camera_id
            started = time.monotonic()
            tracked = self.trackers[camera_id].update(frame_detections)
            tracked_at = time.monotonic()
            track_ids = tracked.detections.tracker_id
            if track_ids is not None and len(track_ids):
                highest = int(max(track_ids))
                if highest > self._highest_track_id.get(camera_id, -1):
                    self._highest_track_id[camera_id] = highest
            emitted = self.buffers[camera_id].update(tracked)
            output.extend(emitted)
            clipped_at = time.monotonic()
            self.latency.record("track", (tracked_at - started) * 1000.0)
            self.latency.record("clips", (clipped_at - tracked_at) * 1000.0)
            if self.timeline is not None:
                key = (camera_id, frame_detections.frame_index)
                self.timeline.stamp("track", [key], tracked_at)
                self.timeline.stamp("clip", _clip_keys(emitted.clips), clipped_at)
            counters = self.totals.cameras[camera_id]
            counters.frames += 1
            counters.recent_frame_times.append(now)
            self.totals.frames += 1
            if self.mtmc is not None:
                self.mtmc.update(tracked)
            if self.track_log is not None:
                self.track_log.add_frame(tracked)
            self.sink.observe(tracked)
            if self.video is not None:
                self.video.update(tracked, self.matcher.global_id_of)
        self._handle_buffer_output(output)
        self._match_and_publish(self.encoder.collect())
        self._refine_online()

    def _refine_online(self) -> None:
        """Run the periodic whole-track pass when due and publish the merges it made."""
        if self.online_refinement is None or self.track_log is None:
            return
        result = self.online_refinement.maybe_refine(self.track_log, self.matcher)
        if result is not None and result.events:
            self._publish(result.events, result)

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

    def _handle_buffer_output(self, output: ClipBufferOutput) -> None:
        for track in output.started:
            self.totals.cameras[track.camera_id].tracks += 1
            self.totals.tracks += 1
        final_keys = {(clip.camera_id, clip.track_id) for clip in output.clips if clip.final}
        self.totals.clips_emitted += len(output.clips)
        self.encoder.submit(self.refresh_policy.admit(output.clips, self.matcher.global_id_of))
        self.refresh_policy.forget(
            (track.camera_id, track.track_id)
            for track in output.ended
            if (track.camera_id, track.track_id) not in final_keys
        )
        self._publish(self.sink.tracks(output.started, output.ended, final_keys))

    def _match_and_publish(self, embedded: list[EmbeddedClip]) -> None:
        self.totals.clips_encoded += len(embedded)
        if self.track_log is not None:
            for item in embedded:
                self.track_log.add_clip(item.clip, item.embedding)
        timeline = self.timeline
        if timeline is not None:
            for item in embedded:
                timeline.stamp("encode", _clip_keys([item.clip]), item.encoded_at)
        if not embedded:
            self._publish([])
            return
        started = time.monotonic()
        records, result = self.sink.clips(embedded)
        matched_at = time.monotonic()
        if self.sink.matches:
            self.refresh_policy.matched((item.clip for item in embedded), self.matcher.global_id_of)
            self.refresh_policy.request(
                (event.camera_id, event.track_id)
                for event in result.events
                if isinstance(event, Event)
                and event.type in (EventType.IDENTITY_SPLIT, EventType.IDENTITY_MERGED)
            )
            self.latency.record("match", (matched_at - started) * 1000.0)
            if timeline is not None:
                timeline.stamp("match", _clip_keys(item.clip for item in embedded), matched_at)
        self._publish(records, result, stamped=embedded)

    def _publish(
        self,
        events: Sequence[StreamRecord],
        result: MatchResult | None = None,
        stamped: list[EmbeddedClip] | None = None,
    ) -> None:
        """Publish in order; asynchronous (``stages.publish_async``): handed to the publisher
        thread, which reports what it sent to :meth:`_record_sent`. The timeline's ``publish``
        stamp of the ``stamped`` clips is the time of the send that carried these events."""
        changed, removed = (None, None) if result is None else (result.changed, result.removed)
        timeline = self.timeline
        keys = _clip_keys(item.clip for item in stamped or [])

        def after_send(sent_at: float) -> None:
            if timeline is not None and keys:
                timeline.stamp("publish", keys, sent_at)

        if isinstance(self.publisher, AsyncPublisher):
            stamp = after_send if timeline is not None and keys else None
            self.publisher.publish(events, changed, removed, after_send=stamp)
            return
        started = time.monotonic()
        sent = self.publisher.publish(events, changed, removed)
        finished = time.monotonic()
        self._record_sent(sent, (finished - started) * 1000.0, finished)
        after_send(finished)

    def _record_sent(self, sent: list[StreamRecord], send_ms: float, sent_at: float) -> None:
        """Latency and counts of events that reached Redis (from the publisher thread when
        asynchronous)."""
        self.latency.record("publish", send_ms)
        for event in sent:
            self.latency.record("frame_to_event", (sent_at - event.captured_at) * 1000.0)
        self.totals.events += len(sent)

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


def _describe_states(sources: Iterable[CameraSource]) -> str:
    """``camera 0 ended, camera 1 failed`` for the line that ends a run."""
    return ", ".join(f"camera {source.camera.id} {source.state.value}" for source in sources)


def _frame_keys(frames: Iterable[Frame]) -> list[tuple[int, int]]:
    return [(frame.camera_id, frame.frame_index) for frame in frames]


def _clip_keys(clips: Iterable[Clip]) -> list[tuple[int, int]]:
    """Timeline keys of clips: each clip under its newest frame. Final clips (emitted when a
    track ends, ``clips.track_end_seconds`` after its last frame) are left out, so the stage
    breakdown shows the identity path of live tracks."""
    return [(clip.camera_id, clip.last_frame_index) for clip in clips if not clip.final]
