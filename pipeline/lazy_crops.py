"""Crops taken when a clip needs them: until then, a box and a reference to its frame.

A clip samples ``T`` of up to ``max_frames_per_track`` buffered boxes of a track, so cropping
and resizing every box of every frame, as the clip buffer once did, is mostly wasted work. A
:class:`LazyCrop` keeps the box and its frame's image and crops only when a clip samples it
(once: a later clip sampling the same box reuses the crop).

The frames are held per camera by :class:`HeldFrames`, within a budget of bytes
(``clips.held_frames_megabytes``): past it, the boxes of the oldest held frame that are still
buffered are cropped at once and the frame is let go; a frame none of whose boxes is buffered
any more is let go as soon as it is the oldest. So a clip is the same whatever the budget (0:
every box is cropped when its frame arrives), and a camera holds at most the budget plus one
frame of images, besides the crops taken (bounded, as before, by ``max_tracks`` x
``max_frames_per_track`` crops of ``crop_height x crop_width x 3`` bytes). With the default
128 MB a camera holds up to 20 frames of 1920x1080, 46 of 1280x720 or 430 of 360x288.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np


class LazyCrop:
    """One buffered box of one frame; :meth:`array` crops and resizes it the first time.

    Args:
        image: uint8 ``(H, W, 3)`` BGR frame (not copied: frames are never written to).
        box: ``(4,)`` xyxy pixels.
        holder: the camera's :class:`HeldFrames`, which counts the crops taken.
    """

    __slots__ = ("_crop", "_holder", "_image", "box")

    def __init__(self, image: np.ndarray, box: np.ndarray, holder: HeldFrames) -> None:
        self._image: np.ndarray | None = image
        self.box = np.array(box, copy=True)
        self._holder = holder
        self._crop: np.ndarray | None = None

    @property
    def pending(self) -> bool:
        """Still holds its frame: neither cropped nor released."""
        return self._image is not None

    def array(self) -> np.ndarray:
        """uint8 ``(crop_height, crop_width, 3)`` BGR (see :func:`crop_box`)."""
        if self._crop is None:
            if self._image is None:
                raise ValueError("a released crop was sampled")
            self._crop = crop_box(self._image, self.box, self._holder.crop_size)
            self._image = None
            self._holder.crops_taken += 1
        return self._crop

    def materialize(self) -> None:
        """Crop now if still pending (its frame is being let go)."""
        if self._image is not None:
            self.array()

    def release(self) -> None:
        """No clip will sample this box any more: drop the frame and the crop."""
        self._image = None
        self._crop = None


@dataclass
class _HeldFrame:
    bytes: int
    crops: list[LazyCrop] = field(default_factory=list)


class HeldFrames:
    """The frames one camera's buffered boxes refer to, within ``budget_bytes``.

    ``add(image, boxes) -> list[LazyCrop]``; see the module docstring for the bound.
    ``crop_size`` is ``(height, width)`` of the crops.
    """

    def __init__(self, budget_bytes: int, crop_size: tuple[int, int]) -> None:
        self.budget_bytes = budget_bytes
        self.crop_size = crop_size
        self.crops_taken = 0
        """Crops cut and resized so far (at most one per box)."""
        self._frames: deque[_HeldFrame] = deque()
        self._bytes = 0

    @property
    def held_bytes(self) -> int:
        """Bytes of the frame images held now."""
        return self._bytes

    @property
    def held_frames(self) -> int:
        return len(self._frames)

    def add(self, image: np.ndarray, boxes: np.ndarray) -> list[LazyCrop]:
        """One lazy crop per row of the float ``(N, 4)`` xyxy ``boxes`` of ``image``."""
        crops = [LazyCrop(image, box, self) for box in boxes]
        if crops:
            self._frames.append(_HeldFrame(int(image.nbytes), crops))
            self._bytes += int(image.nbytes)
        while self._frames and (
            self._bytes > self.budget_bytes or not any(c.pending for c in self._frames[0].crops)
        ):
            oldest = self._frames.popleft()
            self._bytes -= oldest.bytes
            for crop in oldest.crops:
                crop.materialize()
        return crops

    def clear(self) -> None:
        """Let every frame go without cropping (the buffers were reset)."""
        for held in self._frames:
            for crop in held.crops:
                crop.release()
        self._frames.clear()
        self._bytes = 0


def crop_box(image: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cut one box out of a frame and resize it (bilinear) to the encoder input.

    Args:
        image: uint8 ``(H, W, 3)`` BGR frame.
        box: ``(4,)`` xyxy pixels; clipped to the frame, at least one pixel wide and high.
        size: ``(height, width)`` of the crop.

    Returns:
        uint8 ``(height, width, 3)`` BGR.
    """
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (round(float(value)) for value in box)
    x1, y1 = max(0, min(x1, width - 1)), max(0, min(y1, height - 1))
    x2, y2 = max(x1 + 1, min(x2, width)), max(y1 + 1, min(y2, height))
    return cv2.resize(image[y1:y2, x1:x2], (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
