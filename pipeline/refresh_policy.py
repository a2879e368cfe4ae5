"""Which refresh clips are worth encoding: encoder work where it can change a decision.

A live track emits a refresh clip every ``clips.refresh_seconds``. With
``clips.refresh_policy: uncertain`` a refresh clip is encoded only when

- the track's identity is still uncertain: it has none yet, fewer than ``clips.settled_clips``
  of its latest clips in a row were matched to the same identity, or its identity changed
  since (a merge, split or move of the matcher or of the online identity passes);
- its crops are better than those behind its current feature: the mean box height or the clip
  quality (confidence times distinct frames) is ``clips.better_crops_factor`` times the best
  encoded so far (clips are never cut while the track's box meets another, so none of these
  is taken in an encounter);
- the identity layer asked for it (:meth:`RefreshPolicy.request`, after an event about the
  track);
- or ``clips.settled_refresh_seconds`` have passed since the track's last encoded clip:
  settled tracks refresh rarely, not never (the appearance checks of ``pipeline/identity/splits.py``
  still see them).

First, encounter and final clips are always encoded. ``always`` (the default) encodes every
clip. State is kept per live track and dropped when the track ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline.clips import Clip
from pipeline.config import ClipsConfig
from pipeline.identity import TrackKey


@dataclass
class _TrackRefresh:
    global_id: int = -1
    agreeing_clips: int = 0
    best_quality: float = 0.0
    best_box_height: float = 0.0
    last_encoded_timestamp: float | None = None
    requested: bool = False


class RefreshPolicy:
    """``admit(clips) -> clips to encode``; ``matched(clips, global_id_of)`` after matching."""

    def __init__(self, config: ClipsConfig) -> None:
        self.config = config
        self.skipped = 0
        """Refresh clips not encoded so far."""
        self._tracks: dict[TrackKey, _TrackRefresh] = {}

    def admit(self, clips: list[Clip], global_id_of: Callable[[int, int], int]) -> list[Clip]:
        """The clips to encode, in order; the others are counted in ``skipped``.
        ``global_id_of(camera, track)``: the track's identity now (``-1``: none)."""
        if self.config.refresh_policy == "always":
            return clips
        admitted = []
        for clip in clips:
            key = (clip.camera_id, clip.track_id)
            state = self._tracks.setdefault(key, _TrackRefresh())
            if clip.kind != "refresh" or self._worth_encoding(clip, state, global_id_of(*key)):
                state.requested = False
                state.last_encoded_timestamp = clip.last_timestamp
                admitted.append(clip)
            else:
                self.skipped += 1
        return admitted

    def matched(self, clips: Iterable[Clip], global_id_of: Callable[[int, int], int]) -> None:
        """Note the identity each encoded clip's track has after matching."""
        if self.config.refresh_policy == "always":
            return
        for clip in clips:
            key = (clip.camera_id, clip.track_id)
            if clip.final:  # the track has ended
                self._tracks.pop(key, None)
                continue
            state = self._tracks.setdefault(key, _TrackRefresh())
            global_id = global_id_of(*key)
            if global_id >= 0 and global_id == state.global_id:
                state.agreeing_clips += 1
            else:
                state.global_id, state.agreeing_clips = global_id, 1 if global_id >= 0 else 0
            state.best_quality = max(state.best_quality, clip.quality)
            state.best_box_height = max(state.best_box_height, clip.box_height)

    def request(self, keys: Iterable[TrackKey]) -> None:
        """The identity layer wants the next refresh clip of these tracks encoded (and their
        identity counts as uncertain again)."""
        for key in keys:
            state = self._tracks.get(key)
            if state is not None:
                state.requested = True
                state.agreeing_clips = 0

    def forget(self, keys: Iterable[TrackKey]) -> None:
        """Tracks that ended."""
        for key in keys:
            self._tracks.pop(key, None)

    def _worth_encoding(self, clip: Clip, state: _TrackRefresh, global_id: int) -> bool:
        config = self.config
        if state.requested or state.global_id < 0 or global_id != state.global_id:
            return True  # asked for, never matched, or merged, split or moved since
        if state.agreeing_clips < config.settled_clips:
            return True
        factor = config.better_crops_factor
        if clip.quality >= factor * state.best_quality:
            return True
        if clip.box_height >= factor * state.best_box_height:
            return True
        last = state.last_encoded_timestamp
        return last is None or clip.last_timestamp - last >= config.settled_refresh_seconds
