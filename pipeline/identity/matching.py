"""Cross-camera identity matching: a gallery of global identities fed by clip embeddings.

A track (keyed by ``(camera_id, track_id)``) gets a global identity with its first clip:
Hungarian assignment (scipy) of the new tracks of a batch to the gallery on cosine similarity,
accepted above ``similarity_threshold``; a track never joins an identity that already has a
different track in the same camera at an overlapping time. Unmatched tracks open new
identities (later new tracks of the same batch may join them). Later clips of a track refine its
identity's feature by a quality-weighted running mean, and when such a clip is closer to another
identity than to its own, above ``merge_threshold``, the two identities are merged, unless they
were ever seen at the same time in the same camera. When an identity turns out to hold two
people (two of its tracks seen at the same time in one camera, or a track whose clips keep
disagreeing with the rest of it; see :mod:`.splits`), the track is split off into a new
identity. Identities unseen for ``ttl`` expire.

Similarities to the gallery come from a cached matrix (:mod:`.gallery`) updated in place as
identities change, one matrix product per batch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pipeline.clips import Clip
from pipeline.config import MatchingConfig
from pipeline.events import Event, EventType
from pipeline.identity.assignment import assignment, rounds_by_track
from pipeline.identity.gallery import (
    OVERLAP_TOLERANCE_SECONDS,
    GalleryMatrix,
    Identity,
    SimilaritySnapshot,
    TrackKey,
    TrackSpan,
    span_end,
    unit_vector,
    update_prototypes,
)
from pipeline.identity.rules import NegativeThreshold, TopologyRules, near_in_image
from pipeline.identity.splits import EvidenceBook, SplitConfig, split_event, tracks_to_move


@dataclass
class EmbeddedClip:
    """A clip and its L2-normalised embedding, float32 ``(D,)``."""

    clip: Clip
    embedding: np.ndarray
    encoded_at: float = 0.0

    @property
    def key(self) -> TrackKey:
        return (self.clip.camera_id, self.clip.track_id)


@dataclass
class MatchResult:
    """What one :meth:`IdentityMatcher.update` changed."""

    events: list[Event] = field(default_factory=list)
    changed: list[Identity] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


class IdentityMatcher:
    """The cross-camera gallery: ``update(embedded_clips) -> MatchResult``."""

    def __init__(self, config: MatchingConfig, splits: SplitConfig | None = None) -> None:
        self.config = config
        self.splits = splits if splits is not None else SplitConfig.of(config)
        self.gallery = GalleryMatrix()
        """Vectors of ``identities`` (same order), updated whenever an identity changes."""
        self.evidence = EvidenceBook()
        """What each track contributed (splits and moves rebuild features from it)."""
        self._to_check: set[int] = set()
        self.identities: dict[int, Identity] = {}
        self.track_to_identity: dict[TrackKey, int] = {}
        self._next_global_id = 1
        self._now = 0.0
        self.expired_count = 0
        self.expired_multi_camera_count = 0
        self.topology = TopologyRules(
            config.topology, config.topology_mode, config.topology_penalty
        )
        self.threshold = NegativeThreshold(config)
        self._live_tracks: dict[TrackKey, tuple[np.ndarray, float, float]] = {}
        self._recently_ended: deque[tuple[TrackKey, float, np.ndarray, int]] = deque(maxlen=256)
        self.reassociations = 0
        self.splits_count = 0

    def reset(self) -> None:
        """Forget every identity."""
        self.identities.clear()
        self.gallery.clear()
        self.evidence.clear()
        self._to_check.clear()
        self.track_to_identity.clear()
        self._next_global_id = 1
        self.expired_count = 0
        self.expired_multi_camera_count = 0

    def restore(self, identities: list[Identity], max_global_id: int) -> None:
        """Load a stored gallery (see ``pipeline/identity/store.py``); new ids continue after it."""
        for identity in identities:
            identity.stored_first_seen = identity.first_seen
            self.identities[identity.global_id] = identity
            self.gallery.upsert(identity)
            self._now = max(self._now, identity.last_seen)
        self._next_global_id = max(self._next_global_id, max_global_id + 1)

    def multi_camera_count(self) -> int:
        """Identities (current and expired) that were seen by more than one camera."""
        current = sum(1 for identity in self.identities.values() if len(identity.cameras) > 1)
        return current + self.expired_multi_camera_count

    def global_id_of(self, camera_id: int, track_id: int) -> int:
        """The global id of a track, ``-1`` if it has none yet."""
        return self.track_to_identity.get((camera_id, track_id), -1)

    def update(self, embedded_clips: list[EmbeddedClip]) -> MatchResult:
        """Assign or refine identities from one batch of embedded clips."""
        result = MatchResult()
        if embedded_clips:
            self._now = max(self._now, *(item.clip.last_timestamp for item in embedded_clips))
        for item in embedded_clips:
            self._collect_negatives(item)
        for round_items in rounds_by_track(embedded_clips):
            known = [item for item in round_items if item.key in self.track_to_identity]
            new = [item for item in round_items if item.key not in self.track_to_identity]
            snapshot = self._snapshot(known)
            for row, item in enumerate(known):
                self._refine(item, result, snapshot, row)
            self._assign_new_tracks(new, result)
        self._to_check.update(identity.global_id for identity in result.changed)
        self.check_splits(result)
        self._expire(result)
        return result

    def check_splits(self, result: MatchResult) -> None:
        """Split tracks off identities whose tracks were seen at the same time in one camera
        (identities changed since the last check: by clips or by track ends)."""
        to_check, self._to_check = self._to_check, set()
        if not self.splits.simultaneous:
            return
        for global_id in sorted(to_check):
            identity = self.identities.get(global_id)
            if identity is None or len(identity.tracks) < 2:
                continue
            for key in tracks_to_move(identity):
                self._split(identity, key, -1.0, result)

    def end_track(
        self, camera_id: int, track_id: int, timestamp: float, box: np.ndarray | None = None
    ) -> None:
        """Mark a track as gone; its identity stays in the gallery until its TTL.

        ``box`` (xyxy, its last) lets a new track starting nearby soon after continue it.
        """
        self._live_tracks.pop((camera_id, track_id), None)
        global_id = self.track_to_identity.get((camera_id, track_id))
        if global_id is None or global_id not in self.identities:
            return
        span = self.identities[global_id].tracks.get((camera_id, track_id))
        if span is not None:
            self._to_check.add(global_id)
            span.end = max(span.end, timestamp)
            span.active = False
            last_box = box if box is not None else span.last_box
            if last_box is not None:
                self._recently_ended.append(((camera_id, track_id), span.end, last_box, global_id))

    def _collect_negatives(self, item: EmbeddedClip) -> None:
        """Tracks visible together in one camera are different people: keep their similarity."""
        clip = item.clip
        similarities = []
        for key, (embedding, start, end) in self._live_tracks.items():
            if key[0] != clip.camera_id or key == item.key:
                continue
            if min(end, clip.last_timestamp) - max(start, clip.first_timestamp) > 0:
                similarities.append(float(item.embedding @ embedding))
        self.threshold.add(similarities)
        self._live_tracks[item.key] = (item.embedding, clip.first_timestamp, clip.last_timestamp)

    def _reassociate(self, item: EmbeddedClip) -> tuple[Identity, float] | None:
        """A recent track of the same camera that ended near where this one starts, and looks
        like it: continue its identity (tracks broken by occlusions)."""
        config = self.config
        if config.reassociation_seconds <= 0:
            return None
        clip = item.clip
        start_box = clip.first_box if clip.first_box is not None else clip.last_box
        best: tuple[Identity, float] | None = None
        for key, ended_at, box, global_id in self._recently_ended:
            gap = clip.first_timestamp - ended_at
            if key[0] != clip.camera_id or not gap >= -OVERLAP_TOLERANCE_SECONDS:
                continue
            identity = self.identities.get(global_id)
            if gap > config.reassociation_seconds or identity is None:
                continue
            if not near_in_image(box, start_box, config.reassociation_distance):
                continue
            if identity.conflicts_with(
                clip.camera_id, clip.first_timestamp, clip.last_timestamp, item.key
            ):
                continue
            similarity = identity.similarity(item.embedding)
            if similarity >= config.reassociation_similarity and (
                best is None or similarity > best[1]
            ):
                best = (identity, similarity)
        return best

    def _assign_new_tracks(self, new: list[EmbeddedClip], result: MatchResult) -> None:
        if not new:
            return
        remaining = []
        for item in new:
            continued = self._reassociate(item)
            if continued is None:
                remaining.append(item)
                continue
            self.reassociations += 1
            self._attach(item, continued[0], continued[1], result)
        new = remaining
        if not new:
            return
        threshold = self.threshold.value
        identities = list(self.gallery.identities)
        unmatched = list(range(len(new)))
        if identities:
            similarity = self._similarities(new)
            cost = np.where(self._allowed(new, identities), 1.0 - similarity, np.inf)
            cost = np.where(similarity >= threshold, cost, np.inf)
            rows, columns = assignment(cost)
            for row, column in zip(rows, columns, strict=True):
                self._attach(new[row], identities[column], float(similarity[row, column]), result)
            unmatched = [row for row in unmatched if row not in set(rows.tolist())]
        created: list[Identity] = []
        for row in sorted(unmatched, key=lambda row: -new[row].clip.quality):
            item = new[row]
            best, best_similarity = None, threshold
            for identity in created:
                candidate_similarity = identity.similarity(item.embedding)
                clip = item.clip
                conflict = identity.conflicts_with(
                    clip.camera_id, clip.first_timestamp, clip.last_timestamp, item.key
                )
                if candidate_similarity >= best_similarity and not conflict:
                    best, best_similarity = identity, candidate_similarity
            if best is None:
                best = self._create(item)
                created.append(best)
                best_similarity = 1.0
            self._attach(item, best, best_similarity, result)

    def gallery_similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """float64 ``(N, M)`` similarities of float32 ``(N, D)`` unit embeddings to the gallery,
        columns in the order of ``self.gallery.identities`` (that of ``self.identities``)."""
        return self.gallery.similarities(embeddings)

    def _snapshot(self, known: list[EmbeddedClip]) -> SimilaritySnapshot | None:
        """Similarities of a batch's clips of known tracks to the gallery, taken once for the
        batch (kept valid for the identities the batch does not change)."""
        if len(known) > 1 and len(self.gallery):
            return self.gallery.snapshot(np.stack([item.embedding for item in known]))
        return None

    def _similarities(self, new: list[EmbeddedClip]) -> np.ndarray:
        """``(len(new), len(identities))`` similarities, topology verdicts applied."""
        identities = list(self.gallery.identities)
        similarity = self.gallery_similarities(np.stack([item.embedding for item in new]))
        if self.topology:
            for row, item in enumerate(new):
                clip = item.clip
                for column, identity in enumerate(identities):
                    violated = self.topology.violation(
                        identity.last_seen_by_camera, clip.camera_id, clip.first_timestamp
                    )
                    similarity[row, column] = self.topology.adjust(
                        similarity[row, column], violated
                    )
        return similarity

    def _allowed(self, new: list[EmbeddedClip], identities: list[Identity]) -> np.ndarray:
        allowed = np.ones((len(new), len(identities)), dtype=bool)
        for row, item in enumerate(new):
            clip = item.clip
            for column, identity in enumerate(identities):
                if clip.camera_id not in identity.last_seen_by_camera:
                    continue  # no track in this camera (every track's camera is in there)
                allowed[row, column] = not identity.conflicts_with(
                    clip.camera_id, clip.first_timestamp, clip.last_timestamp, item.key
                )
        return allowed

    def _create(self, item: EmbeddedClip) -> Identity:
        identity = Identity(
            global_id=self._next_global_id,
            feature=np.zeros_like(item.embedding),
            weight=0.0,
            first_seen=item.clip.first_timestamp,
            last_seen=item.clip.last_timestamp,
        )
        self._next_global_id += 1
        self.identities[identity.global_id] = identity
        return identity

    def _attach(
        self, item: EmbeddedClip, identity: Identity, similarity: float, result: MatchResult
    ) -> None:
        self.track_to_identity[item.key] = identity.global_id
        self._absorb(identity, item)
        evidence = self.evidence.get(item.key)
        if evidence is not None:
            evidence.mismatches = 0
        result.events.append(self._event(EventType.IDENTITY_ASSIGNED, item, identity, similarity))
        _mark_changed(result, identity)

    def _absorb(self, identity: Identity, item: EmbeddedClip) -> None:
        """Fold a clip into an identity: feature running mean, spans and last-seen times."""
        clip = item.clip
        quality = max(clip.quality, 1e-3)
        mixed = identity.weight * identity.feature + quality * item.embedding
        identity.feature = unit_vector(mixed)
        identity.weight = min(identity.weight + quality, self.config.max_feature_weight)
        update_prototypes(identity, item.embedding, self.config)
        span = identity.tracks.setdefault(
            item.key, TrackSpan(clip.first_timestamp, clip.last_timestamp)
        )
        span.start = min(span.start, clip.first_timestamp)
        span.end = max(span.end, clip.last_timestamp)
        span.active = not clip.final
        span.last_box = clip.last_box
        identity.first_seen = min(identity.first_seen, clip.first_timestamp)
        identity.last_seen = max(identity.last_seen, clip.last_timestamp)
        previous = identity.last_seen_by_camera.get(clip.camera_id, clip.last_timestamp)
        identity.last_seen_by_camera[clip.camera_id] = max(previous, clip.last_timestamp)
        self.gallery.upsert(identity)
        evidence = self.evidence.record(item.key, item.embedding, quality)
        evidence.last_box = clip.last_box
        evidence.last_frame_index = clip.last_frame_index
        evidence.captured_at = clip.captured_at
        self._forget_old_tracks(identity)

    def _forget_old_tracks(self, identity: Identity) -> None:
        """Keep at most ``max_tracks_per_identity`` tracks on ``identity``: the oldest ended
        ones beyond that are dropped with their evidence (the identity's feature and
        prototypes already hold what they contributed). A person seen all day then costs a
        bounded amount of memory instead of one entry per track."""
        excess = len(identity.tracks) - self.config.max_tracks_per_identity
        if excess <= 0:
            return
        ended = sorted((span.end, key) for key, span in identity.tracks.items() if not span.active)
        for _, key in ended[:excess]:
            del identity.tracks[key]
            self.evidence.forget(key)
            if self.track_to_identity.get(key) == identity.global_id:
                del self.track_to_identity[key]

    def _refine(
        self,
        item: EmbeddedClip,
        result: MatchResult,
        snapshot: SimilaritySnapshot | None = None,
        row: int = 0,
    ) -> None:
        """Fold a clip into its track's identity; merge or split on its evidence.

        ``snapshot`` row ``row``: this clip's similarities computed with its whole round (one
        matrix product), brought up to date here.
        """
        identity = self.identities.get(self.track_to_identity[item.key])
        if identity is None:  # expired while the track was quiet: start again
            del self.track_to_identity[item.key]
            self._assign_new_tracks([item], result)
            return
        own_similarity = identity.similarity(item.embedding)
        self._absorb(identity, item)
        _mark_changed(result, identity)
        candidate, candidate_similarity = None, self.config.merge_threshold
        if len(self.gallery) > 1:
            if snapshot is not None:
                similarities = self.gallery.current(snapshot, row)
            else:
                similarities = self.gallery_similarities(item.embedding[None])[0]
            similarities[self.gallery.column_of(identity.global_id)] = -np.inf
            best = int(np.argmax(similarities))
            if similarities[best] > max(candidate_similarity, own_similarity):
                candidate = self.gallery.identities[best]
                candidate_similarity = float(similarities[best])
        if candidate is not None and not identity.ever_simultaneous_with(candidate):
            event = self._event(EventType.IDENTITY_MERGED, item, candidate, candidate_similarity)
            self._merge(identity, candidate, event, result)
        self._check_appearance(item, result)

    def merge_identities(
        self, first_id: int, second_id: int, event: Event, result: MatchResult
    ) -> bool:
        """Merge two identities on outside evidence (the whole-track pass,
        ``pipeline/identity/online.py``) unless they were seen at the same time in one camera;
        ``event`` (its type and global id are set here) describes where. True when merged."""
        first, second = self.identities.get(first_id), self.identities.get(second_id)
        if first is None or second is None or first is second:
            return False
        if first.ever_simultaneous_with(second):
            return False
        self._merge(first, second, event, result)
        return True

    def _merge(self, first: Identity, second: Identity, event: Event, result: MatchResult) -> None:
        """Fold the younger identity into the older (smaller id) and publish the merge."""
        keep, fold = (first, second) if first.global_id < second.global_id else (second, first)
        total = keep.weight + fold.weight
        keep.feature = unit_vector(keep.weight * keep.feature + fold.weight * fold.feature)
        keep.weight = min(total, self.config.max_feature_weight)
        for prototype in fold.prototypes:
            update_prototypes(keep, prototype, self.config)
        keep.tracks.update(fold.tracks)
        keep.first_seen = min(keep.first_seen, fold.first_seen)
        keep.last_seen = max(keep.last_seen, fold.last_seen)
        for camera_id, seen in fold.last_seen_by_camera.items():
            keep.last_seen_by_camera[camera_id] = max(
                seen, keep.last_seen_by_camera.get(camera_id, seen)
            )
        for key in fold.tracks:
            self.track_to_identity[key] = keep.global_id
        self._forget_old_tracks(keep)
        del self.identities[fold.global_id]
        self.gallery.upsert(keep)
        self.gallery.remove([fold.global_id])
        event.type = EventType.IDENTITY_MERGED
        event.global_id = keep.global_id
        event.merged_ids = [fold.global_id]
        result.events.append(event)
        result.changed = [identity for identity in result.changed if identity is not fold]
        _mark_changed(result, keep)
        result.removed.append(fold.global_id)

    def _check_appearance(self, item: EmbeddedClip, result: MatchResult) -> None:
        """Count how many latest clips of a track disagree with the rest of its identity; split
        the track off once they reach ``patience_clips``."""
        identity = self.identities.get(self.track_to_identity.get(item.key, -1))
        if identity is None:
            return
        similarity = self.evidence.mismatch(identity, item.key, item.embedding, self.splits)
        if similarity is not None:
            self._split(identity, item.key, similarity, result)

    def track_fits(self, key: TrackKey, global_id: int) -> bool:
        """Whether track ``key`` could join identity ``global_id``: it exists and has no
        other track of that camera seen at the same time."""
        identity = self.identities.get(global_id)
        mine = self.identities.get(self.track_to_identity.get(key, -1))
        if identity is None or mine is None or key not in mine.tracks:
            return False
        span = mine.tracks[key]
        return not identity.conflicts_with(key[0], span.start, span_end(span), exclude=key)

    def move_track(self, key: TrackKey, global_id: int, result: MatchResult) -> bool:
        """Move track ``key`` off its identity onto identity ``global_id`` on outside evidence
        (the whole-track pass), published as an ``identity_split`` into that identity; False
        when it does not fit there (:meth:`track_fits`) or is its identity's only track (then
        the two identities are one person: a merge)."""
        source = self.identities.get(self.track_to_identity.get(key, -1))
        target = self.identities.get(global_id)
        if source is None or target is None or source is target or len(source.tracks) < 2:
            return False
        if not self.track_fits(key, global_id):
            return False
        target.tracks[key] = source.tracks.pop(key)
        self.track_to_identity[key] = target.global_id
        for rebuilt, forget_cameras in ((source, {key[0]}), (target, set())):
            self.evidence.rebuild(rebuilt, forget_cameras, self.config)
            self.gallery.upsert(rebuilt)
        result.events.append(split_event(source, target, key, self.evidence.get(key), 1.0))
        self.splits_count += 1
        _mark_changed(result, source)
        _mark_changed(result, target)
        return True

    def is_live(self, key: TrackKey) -> bool:
        """The track has clips and has not ended."""
        return key in self._live_tracks

    def follow_from(self, key: TrackKey, start: float) -> None:
        """Track ``key`` is its identity's person only from ``start`` seconds on (the
        whole-track pass cut it there: the tracker swapped people); the span its identity
        keeps for the same-camera rule starts there."""
        identity = self.identities.get(self.track_to_identity.get(key, -1))
        span = None if identity is None else identity.tracks.get(key)
        if span is not None and span.start < start <= span_end(span):
            span.start = start

    def split_track(self, key: TrackKey, result: MatchResult) -> bool:
        """Move track ``key`` off its identity into a new one on outside evidence (the
        whole-track pass); False when it has no identity or is its identity's only track."""
        identity = self.identities.get(self.track_to_identity.get(key, -1))
        if identity is None or len(identity.tracks) < 2:
            return False
        self._split(identity, key, 1.0, result)
        return True

    def _split(self, identity: Identity, key: TrackKey, score: float, result: MatchResult) -> None:
        """Move track ``key`` off ``identity`` into a new identity and publish the split; both
        get features, prototypes and last-seen times rebuilt from their own tracks."""
        span = identity.tracks.pop(key)
        moved = Identity(
            global_id=self._next_global_id,
            feature=identity.feature.copy(),  # kept if the track has no evidence
            weight=1.0,
            first_seen=span.start,
            last_seen=span.end,
            tracks={key: span},
        )
        self._next_global_id += 1
        self.identities[moved.global_id] = moved
        self.track_to_identity[key] = moved.global_id
        for rebuilt, forget_cameras in ((identity, {key[0]}), (moved, set())):
            self.evidence.rebuild(rebuilt, forget_cameras, self.config)
            self.gallery.upsert(rebuilt)
        evidence = self.evidence.get(key)
        if evidence is not None:
            evidence.mismatches = 0
        result.events.append(split_event(identity, moved, key, evidence, score))
        self.splits_count += 1
        _mark_changed(result, identity)
        _mark_changed(result, moved)

    def _expire(self, result: MatchResult) -> None:
        deadline = self._now - self.config.identity_ttl_seconds
        expired = []
        for global_id, identity in list(self.identities.items()):
            if identity.last_seen < deadline and not identity.active:
                for key in identity.tracks:
                    self.track_to_identity.pop(key, None)
                    self.evidence.forget(key)
                del self.identities[global_id]
                expired.append(global_id)
                result.removed.append(global_id)
                self.expired_count += 1
                self.expired_multi_camera_count += len(identity.cameras) > 1
        self.gallery.remove(expired)

    @staticmethod
    def _event(
        event_type: EventType, item: EmbeddedClip, identity: Identity, similarity: float
    ) -> Event:
        clip = item.clip
        return Event(
            type=event_type,
            camera_id=clip.camera_id,
            track_id=clip.track_id,
            global_id=identity.global_id,
            bbox=clip.last_box,
            frame_index=clip.last_frame_index,
            timestamp=clip.last_timestamp,
            score=similarity,
            captured_at=clip.captured_at,
        )


def _mark_changed(result: MatchResult, identity: Identity) -> None:
    if all(changed is not identity for changed in result.changed):
        result.changed.append(identity)
