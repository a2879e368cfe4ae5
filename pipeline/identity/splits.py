"""Identity splits: evidence that one global identity holds two people.

Two kinds of evidence make the matcher split a track off its identity into a new one (and
publish ``identity_split``):

- **simultaneous tracks** (certain): two tracks of the identity were visible at the same time
  in the same camera (by more than the hand-over tolerance). One person is never two tracks at
  once; this can arise after the fact, e.g. when a track's end time arrives later than the clip
  that made a second track join. The track that joined later moves.
- **appearance** (patient): a track of an identity with other tracks whose last
  ``patience_clips`` clips each fit the rest of the identity (the other tracks' mean feature)
  below ``appearance_similarity``. The disagreeing track moves.

Per-track evidence (quality-weighted sum of clip embeddings, last clip's box and frame) is kept
so that both halves of a split get a feature rebuilt from their own tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import MatchingConfig
from pipeline.events import Event, EventType
from pipeline.identity.gallery import Identity, TrackKey, unit_vector, update_prototypes


@dataclass(frozen=True)
class SplitConfig:
    """When the matcher splits identities.

    Attributes:
        simultaneous: split tracks that co-occur in one camera (a certain contradiction).
        appearance_similarity: a clip fitting the rest of its identity below this cosine
            similarity counts as a mismatch; ``-1`` turns appearance splits off.
        patience_clips: consecutive mismatching clips of one track before it is split off.
    """

    simultaneous: bool = True
    appearance_similarity: float = 0.3
    patience_clips: int = 3

    @classmethod
    def of(cls, config: MatchingConfig) -> SplitConfig:
        """The ``split_*`` settings of the matching config."""
        return cls(
            simultaneous=config.split_simultaneous,
            appearance_similarity=config.split_similarity,
            patience_clips=config.split_patience_clips,
        )


@dataclass
class TrackEvidence:
    """What one track contributed to its identity.

    Attributes:
        embedding_sum: float32 ``(D,)`` quality-weighted sum of its clips' unit embeddings.
        weight: total clip quality in ``embedding_sum``.
        mismatches: consecutive latest clips that fit the rest of the identity badly.
        last_box: xyxy pixels of its newest box.
        last_frame_index: frame index of its newest clip.
        captured_at: monotonic capture time of its newest clip (latency bookkeeping).
    """

    embedding_sum: np.ndarray
    weight: float = 0.0
    mismatches: int = 0
    last_box: np.ndarray | None = None
    last_frame_index: int = -1
    captured_at: float = 0.0

    def add(self, embedding: np.ndarray, quality: float) -> None:
        self.embedding_sum = self.embedding_sum + quality * embedding
        self.weight += quality


class EvidenceBook:
    """Every track's :class:`TrackEvidence`, kept by the matcher for splits and moves: both
    halves of a split get a feature rebuilt from their own tracks."""

    def __init__(self) -> None:
        self._tracks: dict[TrackKey, TrackEvidence] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def get(self, key: TrackKey) -> TrackEvidence | None:
        return self._tracks.get(key)

    def record(self, key: TrackKey, embedding: np.ndarray, quality: float) -> TrackEvidence:
        """Add one clip's float32 ``(D,)`` unit embedding to track ``key``'s evidence."""
        evidence = self._tracks.get(key)
        if evidence is None:
            evidence = self._tracks[key] = TrackEvidence(np.zeros_like(embedding))
        evidence.add(embedding, quality)
        return evidence

    def forget(self, key: TrackKey) -> None:
        self._tracks.pop(key, None)

    def clear(self) -> None:
        self._tracks.clear()

    def rest_feature(self, identity: Identity, exclude: TrackKey) -> np.ndarray | None:
        """Unit float32 ``(D,)`` mean of the identity's tracks other than ``exclude``; ``None``
        if no other track has evidence (one-track identities, or tracks from before a
        restart)."""
        total: np.ndarray | None = None
        for key in identity.tracks:
            item = self._tracks.get(key)
            if key == exclude or item is None or item.weight <= 0:
                continue
            total = item.embedding_sum if total is None else total + item.embedding_sum
        if total is None:
            return None
        norm = float(np.linalg.norm(total))
        return (total / norm).astype(np.float32) if norm > 0 else None

    def mismatch(
        self, identity: Identity, key: TrackKey, embedding: np.ndarray, config: SplitConfig
    ) -> float | None:
        """Count a clip of track ``key`` that fits the rest of its identity badly.

        Args:
            embedding: float32 ``(D,)`` unit embedding of the track's newest clip.

        Returns:
            The clip's similarity to the rest of the identity once ``patience_clips`` clips in
            a row were mismatches (the track should be split off), else ``None``.
        """
        track = self._tracks.get(key)
        if track is None or config.appearance_similarity <= -1:
            return None
        rest = self.rest_feature(identity, exclude=key)
        if rest is None:
            track.mismatches = 0
            return None
        similarity = float(embedding @ rest)
        track.mismatches = track.mismatches + 1 if similarity < config.appearance_similarity else 0
        return similarity if track.mismatches >= config.patience_clips else None

    def rebuild(self, identity: Identity, forget_cameras: set[int], config: MatchingConfig) -> None:
        """Recompute an identity's feature, weight and prototypes from its tracks' evidence
        (kept as they are when none of its tracks has any, e.g. restored identities), and its
        times from its track spans (``first_seen`` never past a stored one: earlier runs saw
        it first); ``forget_cameras`` lose their last-seen time unless a track was there."""
        tracks = [self._tracks[key] for key in identity.tracks if key in self._tracks]
        if tracks:
            identity.feature = unit_vector(np.sum([item.embedding_sum for item in tracks], axis=0))
            identity.weight = min(sum(item.weight for item in tracks), config.max_feature_weight)
            identity.prototypes = []
            for item in tracks:
                update_prototypes(identity, unit_vector(item.embedding_sum), config)
        for camera_id in forget_cameras:
            identity.last_seen_by_camera.pop(camera_id, None)
        for (camera_id, _), span in identity.tracks.items():
            seen = identity.last_seen_by_camera.get(camera_id, span.end)
            identity.last_seen_by_camera[camera_id] = max(seen, span.end)
        if identity.tracks:
            starts = [span.start for span in identity.tracks.values()]
            if identity.stored_first_seen is not None:  # seen by earlier runs, spans not kept
                starts.append(identity.stored_first_seen)
            identity.first_seen = min(starts)
            identity.last_seen = max(span.end for span in identity.tracks.values())


def tracks_to_move(identity: Identity) -> list[TrackKey]:
    """Tracks to split off for simultaneous-track contradictions: of each co-occurring pair,
    the one that joined the identity later (a track already moving settles its pairs)."""
    moving: list[TrackKey] = []
    for first, second in identity.simultaneous_tracks():
        if first in moving or second in moving:
            continue
        moving.append(second)
    return moving


def split_event(
    old: Identity, new: Identity, key: TrackKey, evidence: TrackEvidence | None, score: float
) -> Event:
    """The ``identity_split`` event: track ``key`` moved from ``old`` to ``new``."""
    span = new.tracks[key]
    box = span.last_box
    if box is None and evidence is not None:
        box = evidence.last_box
    return Event(
        type=EventType.IDENTITY_SPLIT,
        camera_id=key[0],
        track_id=key[1],
        global_id=new.global_id,
        bbox=np.asarray(box if box is not None else np.zeros(4), dtype=np.float32),
        frame_index=evidence.last_frame_index if evidence is not None else -1,
        timestamp=span.end,
        score=score,
        captured_at=evidence.captured_at if evidence is not None else 0.0,
        split_from=old.global_id,
    )
