"""One random transform per tracklet, applied alike to every crop of it.

A person does not change colour or get half-occluded from one frame to the next, so a
training clip gets one draw of the transform for all its frames: a horizontal flip, colour
jitter (brightness, contrast and a gain per RGB channel), a crop jitter (zoom in by up to
``crop_jitter`` and shift), and random erasing (one rectangle of random colour, at the same
place in every frame). Frozen-backbone training draws a few such variants per tracklet and
caches their backbone maps (``reid_models.feature_cache``), so augmentation costs one backbone
pass per variant instead of one per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentationRanges:
    """How strong each transform may be.

    Attributes:
        horizontal_flip: probability of a flip.
        color_jitter: brightness offset in ``[-j/2, j/2]``, contrast and per-channel gains in
            ``[1 - j, 1 + j]``.
        crop_jitter: largest zoom-in, as a fraction of the crop (``0.1``: up to 10 %).
        random_erasing: probability of an erased rectangle (2 % to 30 % of the area).
    """

    horizontal_flip: float = 0.5
    color_jitter: float = 0.2
    crop_jitter: float = 0.1
    random_erasing: float = 0.5


@dataclass(frozen=True)
class TrackletTransform:
    """One draw of the transform; :meth:`apply` maps a crop the same way every time.

    Attributes:
        flip: mirror left-right.
        channel_gains: float ``(3,)`` RGB gains (contrast times channel gain).
        brightness: offset added after the gains, in ``[0, 1]`` units.
        zoom: ``>= 1``; the crop keeps ``1 / zoom`` of the height and width.
        shift: ``(dy, dx)`` in ``[0, 1]``: where the kept window lies in the free margin.
        erase: ``(top, left, height, width)`` as fractions of the crop, or ``None``.
        erase_colour: float ``(3,)`` RGB fill of the erased rectangle.
    """

    flip: bool
    channel_gains: tuple[float, float, float]
    brightness: float
    zoom: float
    shift: tuple[float, float]
    erase: tuple[float, float, float, float] | None
    erase_colour: tuple[float, float, float]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Float32 ``(3, H, W)`` RGB in ``[0, 1]`` -> the transformed crop, same shape/range."""
        _, height, width = image.shape
        output = image
        if self.zoom > 1.0:
            kept_height = max(1, round(height / self.zoom))
            kept_width = max(1, round(width / self.zoom))
            top = round(self.shift[0] * (height - kept_height))
            left = round(self.shift[1] * (width - kept_width))
            window = torch.from_numpy(
                np.ascontiguousarray(output[:, top : top + kept_height, left : left + kept_width])
            )
            # torch, not OpenCV: OpenCV's thread pool next to torch's slows both down badly.
            resized = F.interpolate(
                window[None], size=(height, width), mode="bilinear", align_corners=False
            )
            output = resized[0].numpy()
        if self.flip:
            output = output[:, :, ::-1]
        gains = np.asarray(self.channel_gains, dtype=np.float32)[:, None, None]
        output = np.clip(output * gains + self.brightness, 0.0, 1.0)
        if self.erase is not None:
            top = int(self.erase[0] * height)
            left = int(self.erase[1] * width)
            box_height = max(1, int(self.erase[2] * height))
            box_width = max(1, int(self.erase[3] * width))
            colour = np.asarray(self.erase_colour, dtype=np.float32)[:, None, None]
            output[:, top : top + box_height, left : left + box_width] = colour
        return np.ascontiguousarray(output, dtype=np.float32)


def draw_transform(ranges: AugmentationRanges, generator: np.random.Generator) -> TrackletTransform:
    """One random :class:`TrackletTransform` within ``ranges``."""
    jitter = ranges.color_jitter
    contrast = 1.0 + generator.uniform(-jitter, jitter)
    gains = contrast * (1.0 + generator.uniform(-jitter, jitter, 3) / 2)
    erase = None
    if generator.uniform() < ranges.random_erasing:
        area = generator.uniform(0.02, 0.3)
        aspect = generator.uniform(0.3, 3.3)
        box_height = min(1.0, float(np.sqrt(area * aspect * 0.5)))
        box_width = min(1.0, float(np.sqrt(area / aspect * 2.0)))
        erase = (
            float(generator.uniform(0.0, 1.0 - box_height)),
            float(generator.uniform(0.0, 1.0 - box_width)),
            box_height,
            box_width,
        )
    colour = generator.uniform(0.0, 1.0, 3)
    return TrackletTransform(
        flip=bool(generator.uniform() < ranges.horizontal_flip),
        channel_gains=(float(gains[0]), float(gains[1]), float(gains[2])),
        brightness=float(generator.uniform(-jitter / 2, jitter / 2)),
        zoom=1.0 + float(generator.uniform(0.0, ranges.crop_jitter)),
        shift=(float(generator.uniform()), float(generator.uniform())),
        erase=erase,
        erase_colour=(float(colour[0]), float(colour[1]), float(colour[2])),
    )
