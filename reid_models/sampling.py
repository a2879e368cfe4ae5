"""The one clip-sampling policy shared by the online clip buffer and by training.

A tracklet of ``n`` frames is turned into a clip of ``T`` frame indices. Three modes, as in
torchreid's ``VideoDataset``:

- ``evenly``: ``T`` indices spread evenly over the tracklet (deterministic; used at inference).
- ``random``: ``T`` sorted indices drawn without replacement (training augmentation).
- ``chunks``: TSN-style, the tracklet cut into ``T`` equal chunks and one index drawn per chunk
  (random when a generator is given, the chunk centre otherwise); DRSTA's sampling.
- ``all``: every frame, padded to a multiple of ``T`` by repeating the last frame.

When a tracklet is shorter than ``T`` the indices repeat frames (``evenly``/``chunks``) or pad
with the last frame (``random``/``all``), so a clip always has the promised length.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class SamplingMode(StrEnum):
    """How ``T`` frames are chosen from a tracklet."""

    EVENLY = "evenly"
    RANDOM = "random"
    CHUNKS = "chunks"
    ALL = "all"


def sample_clip_indices(
    frame_count: int,
    clip_length: int,
    mode: SamplingMode | str = SamplingMode.EVENLY,
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """Choose frame indices for one clip.

    Args:
        frame_count: number of frames ``n`` in the tracklet, at least 1.
        clip_length: frames per clip ``T``, at least 1.
        mode: a :class:`SamplingMode`.
        generator: random source for ``random`` and ``chunks``; ``None`` makes ``chunks``
            deterministic and is refused for ``random``.

    Returns:
        int64 array of indices into ``[0, n)``, non-decreasing. Its length is ``T``, except for
        ``all`` where it is ``n`` rounded up to a multiple of ``T``.
    """
    if frame_count < 1:
        raise ValueError(f"frame_count must be >= 1, got {frame_count}")
    if clip_length < 1:
        raise ValueError(f"clip_length must be >= 1, got {clip_length}")
    mode = SamplingMode(mode)
    if mode is SamplingMode.EVENLY:
        return np.round(np.linspace(0, frame_count - 1, clip_length)).astype(np.int64)
    if mode is SamplingMode.RANDOM:
        if generator is None:
            raise ValueError("random sampling needs a numpy Generator")
        if frame_count >= clip_length:
            chosen = generator.choice(frame_count, size=clip_length, replace=False)
            return np.sort(chosen).astype(np.int64)
        padding = np.full(clip_length - frame_count, frame_count - 1)
        return np.concatenate([np.arange(frame_count), padding]).astype(np.int64)
    if mode is SamplingMode.CHUNKS:
        edges = np.linspace(0, frame_count, clip_length + 1)
        # Disjoint chunks [ceil(k n/T), ceil((k+1) n/T)) when there are enough frames;
        # shorter tracklets must repeat frames, so their chunks start at floor(k n/T).
        if frame_count >= clip_length:
            starts = np.ceil(edges[:-1] - 1e-9).astype(np.int64)
        else:
            starts = np.floor(edges[:-1] + 1e-9).astype(np.int64)
        starts = starts.clip(0, frame_count - 1)
        ends = np.maximum(np.ceil(edges[1:] - 1e-9).astype(np.int64), starts + 1)
        if generator is None:
            return ((starts + ends - 1) // 2).clip(0, frame_count - 1)
        return np.array(
            [generator.integers(start, end) for start, end in zip(starts, ends, strict=True)],
            dtype=np.int64,
        ).clip(0, frame_count - 1)
    padded_length = -(-frame_count // clip_length) * clip_length
    indices = np.arange(padded_length, dtype=np.int64)
    return np.minimum(indices, frame_count - 1)
