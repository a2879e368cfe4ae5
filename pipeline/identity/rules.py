"""Evidence the matcher weighs besides appearance: camera topology, learned thresholds, and
same-camera re-association of fragmented tracks.

- :class:`TopologyRules`: optional per camera-pair transition windows. A person leaving camera
  ``a`` reaches camera ``b`` between ``min_seconds`` and ``max_seconds`` later, or the two views
  overlap (seen at the same time). A match outside the window is penalised or forbidden.
- :class:`NegativeThreshold`: the similarity threshold as a quantile of the run's own negatives:
  tracks visible at the same time in one camera are certainly different people.
- :func:`near_in_image`: whether a new track starts where a recent track of the same camera
  ended (the main source of identity switches is a track broken by an occlusion).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pipeline.config import MatchingConfig, TopologyMode, TransitionWindow


class TopologyRules:
    """Transition windows between cameras, looked up by ``(from_camera, to_camera)``."""

    def __init__(self, windows: list[TransitionWindow], mode: TopologyMode, penalty: float) -> None:
        self.mode = mode
        self.penalty = penalty
        self._windows: dict[tuple[int, int], TransitionWindow] = {}
        for window in windows:
            self._windows[(window.from_camera, window.to_camera)] = window
            if window.symmetric:
                self._windows.setdefault((window.to_camera, window.from_camera), window)

    def __bool__(self) -> bool:
        return bool(self._windows)

    def violation(
        self, last_seen_by_camera: dict[int, float], camera_id: int, start: float
    ) -> bool:
        """True if arriving in ``camera_id`` at ``start`` breaks the window from every camera
        the identity was seen in (an identity already seen in ``camera_id`` never violates)."""
        if camera_id in last_seen_by_camera or not self._windows:
            return False
        verdicts = []
        for other_camera, last_seen in last_seen_by_camera.items():
            window = self._windows.get((other_camera, camera_id))
            if window is None:
                continue
            gap = start - last_seen
            allowed = window.overlap and gap <= 0
            allowed = allowed or window.min_seconds <= gap <= window.max_seconds
            verdicts.append(allowed)
        return bool(verdicts) and not any(verdicts)

    def adjust(self, similarity: float, violated: bool) -> float:
        """The similarity after the topology verdict (``-inf`` when forbidden)."""
        if not violated:
            return similarity
        if self.mode is TopologyMode.FORBID:
            return float("-inf")
        return similarity - self.penalty


class NegativeThreshold:
    """``max(fixed threshold, quantile of negative similarities)`` once enough negatives."""

    def __init__(self, config: MatchingConfig, capacity: int = 5000) -> None:
        self.config = config
        self.negatives: deque[float] = deque(maxlen=capacity)

    def add(self, similarities: list[float]) -> None:
        self.negatives.extend(similarities)

    @property
    def value(self) -> float:
        fixed = self.config.similarity_threshold
        if self.config.threshold_mode == "fixed" or len(self.negatives) < self.config.min_negatives:
            return fixed
        learned = float(np.quantile(np.asarray(self.negatives), self.config.negative_quantile))
        return max(fixed, learned)


def box_center_and_height(box: np.ndarray) -> tuple[float, float, float]:
    """``(center x, center y, height)`` of an xyxy box in pixels."""
    x1, y1, x2, y2 = (float(value) for value in box[:4])
    return (x1 + x2) / 2, (y1 + y2) / 2, max(y2 - y1, 1.0)


def near_in_image(ended_box: np.ndarray, new_box: np.ndarray, max_heights: float) -> bool:
    """True if the new box's centre lies within ``max_heights`` box heights of the ended one."""
    ended_x, ended_y, ended_height = box_center_and_height(ended_box)
    new_x, new_y, new_height = box_center_and_height(new_box)
    scale = max(ended_height, new_height)
    return bool(np.hypot(new_x - ended_x, new_y - ended_y) <= max_heights * scale)
