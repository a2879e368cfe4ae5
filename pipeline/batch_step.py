"""The work on one batch of frames: detect, then track → clips → encode → match → publish.

:meth:`BatchStep.detector_stage` runs the one batched detector forward over the frames of a
tick (on the detection thread when ``stages.pipelined``, ``pipeline/stages.py``);
:meth:`BatchStep._tick` tracks and buffers each camera's detections, hands finished clips to
the batching encoder (its own thread), matches or sends whatever clips it has embedded since
the last tick through the sink (``pipeline/sinks.py``), runs the periodic identity pass when
due and publishes what came of it: to the publisher thread (``stages.publish_async``,
``pipeline/publish_thread.py``) or to Redis in the loop. Latency and the benchmarks' per-frame
timeline are recorded here. A part of :class:`~pipeline.runner.Pipeline`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from pipeline.clips import Clip, ClipBufferOutput
from pipeline.events import Event, EventType
from pipeline.identity import EmbeddedClip, MatchResult
from pipeline.publish import StreamRecord
from pipeline.publish_thread import AsyncPublisher
from pipeline.records import Frame, FrameDetections
from pipeline.run_state import RunState


class BatchStep(RunState):
    """Detection and the per-batch step of a run, and the publishing both end in."""

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


def _frame_keys(frames: Iterable[Frame]) -> list[tuple[int, int]]:
    return [(frame.camera_id, frame.frame_index) for frame in frames]


def _clip_keys(clips: Iterable[Clip]) -> list[tuple[int, int]]:
    """Timeline keys of clips: each clip under its newest frame. Final clips (emitted when a
    track ends, ``clips.track_end_seconds`` after its last frame) are left out, so the stage
    breakdown shows the identity path of live tracks."""
    return [(clip.camera_id, clip.last_frame_index) for clip in clips if not clip.final]
