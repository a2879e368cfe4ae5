"""The naive cross-camera matcher of the "glue it together" baseline (``benchmarks/peers.py``).

What users typically write on top of a per-camera tracker: every tracked box gets a ReID
feature each frame; a track seen for the first time takes the most similar known identity
(cosine similarity of L2-normalised features, above ``similarity_threshold``) that is not
already on another track of the same camera, else a new identity; every later box of the
track updates its identity's running-mean feature. No clips, no merges, no time constraints.
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

    def update(self, camera_id: int, track_ids: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Assign global ids to one frame's tracked boxes of one camera.

        Args:
            camera_id: the camera of the frame.
            track_ids: int ``(N,)`` camera-local track ids.
            features: float32 ``(N, D)`` ReID features (normalised here).

        Returns:
            int64 ``(N,)`` global ids, starting at 1.
        """
        features = np.asarray(features, dtype=np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        features = features / np.maximum(norms, 1e-12)
        global_ids = np.zeros(len(track_ids), dtype=np.int64)
        taken = {
            self._global_id_of[(camera_id, int(t))]
            for t in track_ids
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
