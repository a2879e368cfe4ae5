"""The frame rate assumed when a video or a camera config does not give one.

OpenCV reports 0 (sometimes NaN) for streams without a rate, and a camera without ``fps_cap``
has no configured rate; trackers, replay and video writers then all assume the same
:data:`DEFAULT_FRAME_RATE`.
"""

from __future__ import annotations

import math

DEFAULT_FRAME_RATE = 25.0
"""Frames per second assumed when none is known (PAL video, and the EPFL sequences)."""


def frame_rate_or_default(frame_rate: float | None) -> float:
    """``frame_rate`` (frames per second) when it is a usable rate, else
    :data:`DEFAULT_FRAME_RATE` (``None``, 0, negative, NaN or infinite)."""
    if frame_rate is None or not math.isfinite(frame_rate) or frame_rate <= 0:
        return DEFAULT_FRAME_RATE
    return float(frame_rate)
