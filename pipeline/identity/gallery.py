"""The gallery of global identities and its cached similarity matrix.

An :class:`Identity` holds a mean feature, up to K prototypes and the time spans of its tracks.
:class:`GalleryMatrix` keeps every identity's vectors in one preallocated float32 array of shape
``(capacity, slots, D)`` (slot 0 the mean feature, then the prototypes; unused slots masked),
in the gallery's insertion order, and is updated in place when an identity changes, appears or
goes. Similarities of a whole batch of clips are then one matrix product and one masked max,
instead of stacking every identity's vectors per call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import MatchingConfig

TrackKey = tuple[int, int]
"""``(camera_id, track_id)``."""

OVERLAP_TOLERANCE_SECONDS = 0.2
"""Track spans that overlap by less than this are not simultaneous (track hand-over)."""


@dataclass
class TrackSpan:
    """When one track of an identity was visible: ``[start, end]`` seconds."""

    start: float
    end: float
    active: bool = True
    last_box: np.ndarray | None = None


@dataclass
class Identity:
    """One global identity: its feature and where and when it was seen.

    Attributes:
        feature: float32 ``(D,)`` unit-norm running mean of its clips' embeddings.
        weight: accumulated clip quality behind ``feature`` (capped).
        tracks: the spans of each of its tracks, by ``(camera_id, track_id)``.
        last_seen_by_camera: latest timestamp per camera id.
        prototypes: up to K float32 ``(D,)`` unit vectors of distinct views.
        stored_first_seen: ``first_seen`` as read back from Redis for an identity of an
            earlier run (whose track spans are not restored), else None; rebuilding the times
            from this run's tracks (a split) never moves ``first_seen`` past it.
    """

    global_id: int
    feature: np.ndarray
    weight: float
    first_seen: float
    last_seen: float
    tracks: dict[TrackKey, TrackSpan] = field(default_factory=dict)
    last_seen_by_camera: dict[int, float] = field(default_factory=dict)
    prototypes: list[np.ndarray] = field(default_factory=list)
    stored_first_seen: float | None = None

    def similarity(self, embedding: np.ndarray) -> float:
        """Cosine similarity to the closest of the mean feature and the prototypes."""
        best = float(embedding @ self.feature)
        for prototype in self.prototypes:
            best = max(best, float(embedding @ prototype))
        return best

    @property
    def cameras(self) -> list[int]:
        return sorted(self.last_seen_by_camera)

    @property
    def active(self) -> bool:
        return any(span.active for span in self.tracks.values())

    def conflicts_with(self, camera_id: int, start: float, end: float, exclude: TrackKey) -> bool:
        """True if another track of this identity in ``camera_id`` overlaps ``[start, end]``.

        A track that has not ended is still visible after its last clip: its span is open.
        """
        for key, span in self.tracks.items():
            if key == exclude or key[0] != camera_id:
                continue
            overlap = min(end, span_end(span)) - max(start, span.start)
            if overlap > OVERLAP_TOLERANCE_SECONDS:
                return True
        return False

    def ever_simultaneous_with(self, other: Identity) -> bool:
        """True if the two identities had overlapping tracks in the same camera."""
        return any(
            other.conflicts_with(key[0], span.start, span_end(span), exclude=key)
            for key, span in self.tracks.items()
        )

    def simultaneous_tracks(self) -> list[tuple[TrackKey, TrackKey]]:
        """Pairs of its own tracks seen at the same time in the same camera (a contradiction:
        one person is not two tracks at once), each pair ``(earlier key, later key)``."""
        pairs = []
        keys = list(self.tracks)
        for index, first in enumerate(keys):
            span = self.tracks[first]
            for second in keys[index + 1 :]:
                other = self.tracks[second]
                if first[0] != second[0]:
                    continue
                overlap = min(span_end(span), span_end(other)) - max(span.start, other.start)
                if overlap > OVERLAP_TOLERANCE_SECONDS:
                    pairs.append((first, second))
        return pairs


@dataclass
class SimilaritySnapshot:
    """Similarities of a batch of embeddings to the gallery at one moment, to be brought up to
    date cheaply (only the identities written since) while the batch is folded in clip by clip.

    Attributes:
        embeddings: float32 ``(N, D)``.
        values: float64 ``(N, M)`` at the time of the snapshot.
        version: the gallery's write counter then; ``layout``: its removal counter then.
    """

    embeddings: np.ndarray
    values: np.ndarray
    version: int
    layout: int


class GalleryMatrix:
    """Every identity's mean feature and prototypes as one cached float32 array.

    ``identities`` is kept in insertion order (the order of the matcher's identity dict), so
    column ``j`` of :meth:`similarities` is ``identities[j]``.
    """

    def __init__(self, initial_capacity: int = 64) -> None:
        self.identities: list[Identity] = []
        self._column: dict[int, int] = {}
        self._initial_capacity = initial_capacity
        self._vectors = np.zeros((0, 1, 0), dtype=np.float32)
        """float32 ``(capacity, slots, D)``; rows past ``len(identities)`` are unused."""
        self._valid = np.zeros((0, 1), dtype=bool)
        """bool ``(capacity, slots)``: which slots hold a vector."""
        self._written_at = np.zeros(0, dtype=np.int64)
        """int64 ``(capacity,)``: the write counter when each column was last written."""
        self._version = 0
        self._layout = 0

    def __len__(self) -> int:
        return len(self.identities)

    def clear(self) -> None:
        self.identities.clear()
        self._column.clear()
        self._valid[:] = False
        self._layout += 1

    def upsert(self, identity: Identity) -> None:
        """Write an identity's current vectors (appended at the end if it is new)."""
        column = self._column.get(identity.global_id)
        vectors = [identity.feature, *identity.prototypes]
        self._reserve(len(self.identities) + (column is None), len(vectors), len(identity.feature))
        if column is None:
            column = len(self.identities)
            self._column[identity.global_id] = column
            self.identities.append(identity)
        else:
            self.identities[column] = identity
        self._valid[column] = False
        self._vectors[column, : len(vectors)] = vectors
        self._valid[column, : len(vectors)] = True
        self._version += 1
        self._written_at[column] = self._version

    def remove(self, global_ids: Iterable[int]) -> None:
        """Drop identities, keeping the order of the others."""
        gone = {self._column[global_id] for global_id in global_ids if global_id in self._column}
        if not gone:
            return
        count = len(self.identities)
        kept = np.array([column for column in range(count) if column not in gone], dtype=np.int64)
        self._vectors[: len(kept)] = self._vectors[kept]
        self._valid[: len(kept)] = self._valid[kept]
        self._valid[len(kept) : count] = False
        self._written_at[: len(kept)] = self._written_at[kept]
        self._layout += 1
        self.identities = [self.identities[column] for column in kept.tolist()]
        self._column = {identity.global_id: index for index, identity in enumerate(self.identities)}

    def column_of(self, global_id: int) -> int:
        """The column of an identity in :meth:`similarities` (``-1`` if absent)."""
        return self._column.get(global_id, -1)

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """Similarity of each embedding to each identity (its closest of feature and prototypes).

        Args:
            embeddings: float32 ``(N, D)`` unit rows.

        Returns:
            float64 ``(N, M)``, columns in the order of ``identities``.
        """
        return self._similarities(embeddings, slice(0, len(self.identities)))

    def snapshot(self, embeddings: np.ndarray) -> SimilaritySnapshot:
        """:meth:`similarities` of float32 ``(N, D)`` embeddings, kept for :meth:`current`."""
        values = self.similarities(embeddings)
        return SimilaritySnapshot(embeddings, values, self._version, self._layout)

    def current(self, snapshot: SimilaritySnapshot, row: int) -> np.ndarray:
        """float64 ``(M,)``: row ``row`` of a snapshot as :meth:`similarities` would give it now
        (columns written or added since are recomputed; after a removal, all of them)."""
        embedding = snapshot.embeddings[row : row + 1]
        if snapshot.layout != self._layout:
            return self.similarities(embedding)[0]
        count = len(self.identities)
        values = np.empty(count, dtype=np.float64)
        known = snapshot.values.shape[1]
        values[:known] = snapshot.values[row]
        stale = np.flatnonzero(self._written_at[:count] > snapshot.version)
        if stale.size:
            values[stale] = self._similarities(embedding, stale)[0]
        return values

    def _similarities(self, embeddings: np.ndarray, columns: slice | np.ndarray) -> np.ndarray:
        """float64 ``(N, len(columns))`` similarities to the identities of ``columns``."""
        vectors, valid = self._vectors[columns], self._valid[columns]
        count, slots, dimension = vectors.shape
        if count == 0:
            return np.zeros((len(embeddings), 0), dtype=np.float64)
        products = (embeddings @ vectors.reshape(count * slots, dimension).T).reshape(
            len(embeddings), count, slots
        )
        products = np.where(valid, products, -np.inf)
        return products.max(axis=2).astype(np.float64)

    def _reserve(self, count: int, slots: int, dimension: int) -> None:
        """Grow the arrays (doubling) to hold ``count`` identities of ``slots`` vectors."""
        capacity, current_slots, current_dimension = self._vectors.shape
        if current_dimension not in (0, dimension) and self.identities:
            raise ValueError(f"embedding dimension {dimension} != gallery's {current_dimension}")
        if count <= capacity and slots <= current_slots and dimension == current_dimension:
            return
        new_capacity = max(count, capacity * 2 if count > capacity else capacity)
        new_capacity = max(new_capacity, self._initial_capacity)
        new_slots = max(slots, current_slots)
        vectors = np.zeros((new_capacity, new_slots, dimension), dtype=np.float32)
        valid = np.zeros((new_capacity, new_slots), dtype=bool)
        written_at = np.zeros(new_capacity, dtype=np.int64)
        written_at[: len(self._written_at)] = self._written_at[:new_capacity]
        self._written_at = written_at
        used = len(self.identities)
        if used and current_dimension == dimension:
            vectors[:used, :current_slots] = self._vectors[:used]
            valid[:used, :current_slots] = self._valid[:used]
        self._vectors, self._valid = vectors, valid


def update_prototypes(identity: Identity, embedding: np.ndarray, config: MatchingConfig) -> None:
    """Keep up to K (``prototypes_per_identity``) diverse prototypes: a novel view is added (the
    most redundant one goes when full); a familiar one refines its nearest prototype."""
    limit = config.prototypes_per_identity
    if not identity.prototypes:
        identity.prototypes.append(embedding.astype(np.float32))
        return
    similarities = [float(embedding @ prototype) for prototype in identity.prototypes]
    nearest = int(np.argmax(similarities))
    if similarities[nearest] >= config.prototype_novelty:
        identity.prototypes[nearest] = unit_vector(identity.prototypes[nearest] + embedding)
        return
    identity.prototypes.append(embedding.astype(np.float32))
    if len(identity.prototypes) > limit:
        stacked = np.stack(identity.prototypes)
        gram = stacked @ stacked.T
        np.fill_diagonal(gram, -np.inf)
        identity.prototypes.pop(int(np.argmax(gram.max(axis=1))))


def unit_vector(vector: np.ndarray) -> np.ndarray:
    """float32 ``vector / |vector|`` (unchanged when zero)."""
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


def span_end(span: TrackSpan) -> float:
    """The end of a span for overlap tests: open (``inf``) while its track is active."""
    return math.inf if span.active else span.end
