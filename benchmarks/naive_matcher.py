"""The naive cross-camera matcher of the "glue it together" baseline (``benchmarks/peers.py``).

What users typically write on top of a per-camera tracker: tracked boxes get ReID features
(every box each frame, or every N frames per track: ``benchmarks.reid_schedule``); a track
seen for the first time takes the most similar known identity (cosine similarity of
L2-normalised features, above ``similarity_threshold``) that is not already on another track
of the same camera, else a new identity; every later feature of the track updates its
identity's running-mean feature. No clips, no merges, no time constraints.
"""

from __future__ import annotations

import numpy as np


class NaiveCrossCameraMatcher:
    """``update(camera_id, track_ids, features) -> global_ids``; state lives on the instance."""

    def __init__(self, similarity_threshold: float = 0.6) -> None:
        self.similarity_threshold = similarity_threshold
        self.reset()

    def reset(self) -> None:
        """Forget every identity and track."""
        self._global_id_of: dict[tuple[int, int], int] = {}
        self._sums: list[np.ndarray] = []
        self._next_id = 1

    @property
    def identity_count(self) -> int:
        return len(self._sums)

    def global_id(self, camera_id: int, track_id: int) -> int | None:
        """The identity of a track that already had a feature, else ``None``."""
        return self._global_id_of.get((camera_id, int(track_id)))

    def update(
        self,
        camera_id: int,
        track_ids: np.ndarray,
        features: np.ndarray,
        other_track_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Assign global ids to one frame's tracked boxes of one camera.

        Args:
            camera_id: the camera of the frame.
            track_ids: int ``(N,)`` camera-local track ids of the boxes with a feature.
            features: float32 ``(N, D)`` ReID features (normalised here).
            other_track_ids: int ``(M,)`` tracks of the same frame without a feature this
                time; their identities are taken too (not given to a new track).

        Returns:
            int64 ``(N,)`` global ids, starting at 1.
        """
        features = np.asarray(features, dtype=np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        features = features / np.maximum(norms, 1e-12)
        global_ids = np.zeros(len(track_ids), dtype=np.int64)
        visible = [*np.asarray(track_ids).tolist()]
        if other_track_ids is not None:
            visible += np.asarray(other_track_ids).tolist()
        taken = {
            self._global_id_of[(camera_id, int(t))]
            for t in visible
            if (camera_id, int(t)) in self._global_id_of
        }
        for index, track_id in enumerate(np.asarray(track_ids).tolist()):
            key = (camera_id, int(track_id))
            global_id = self._global_id_of.get(key)
            if global_id is None:
                global_id = self._best_identity(features[index], taken)
                self._global_id_of[key] = global_id
                taken.add(global_id)
            self._sums[global_id - 1] += features[index]
            global_ids[index] = global_id
        return global_ids

    def _best_identity(self, feature: np.ndarray, taken: set[int]) -> int:
        if self._sums:
            gallery = np.stack(self._sums)
            gallery /= np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
            similarities = gallery @ feature
            for global_id in taken:
                similarities[global_id - 1] = -np.inf
            best = int(np.argmax(similarities))
            if similarities[best] >= self.similarity_threshold:
                return best + 1
        self._sums.append(np.zeros_like(feature))
        return len(self._sums)
