"""Backbone trunk maps of every training crop, computed once for frozen-backbone training.

With the backbone's trunk frozen, a crop's trunk map never changes, so the trainer computes it
once (eval mode, no gradients) and the temporal head (and, when asked, the backbone's last
stage) trains on cached maps: an epoch then costs the head's forward and backward only, which
makes CPU training a matter of minutes. The maps are the trunk's
(``FrameBackbone.trunk_maps``); the trainer applies ``FrameBackbone.last_stage`` to them.

Augmented variants: variant ``v >= 1`` holds the maps of every crop after the tracklet's
``v``-th random transform (``reid_models.tracklet_augmentation``: one draw per tracklet and
variant, the same for all its crops); variant 0 is the crops as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from reid_models.backbones import FrameBackbone
from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH
from reid_models.datasets import Tracklet, read_rgb_image
from reid_models.tracklet_augmentation import AugmentationRanges, TrackletTransform, draw_transform

BATCH_FRAMES = 64


class FeatureMapCache:
    """Trunk maps ``(crops, C, h, w)`` per variant, and where each crop file's map lives.

    Args:
        maps: one tensor ``(crops, C, h, w)`` per variant (variant 0: no augmentation).
        positions: crop file -> row of each variant's maps.
    """

    def __init__(self, maps: Sequence[torch.Tensor], positions: dict[Path, int]) -> None:
        self.maps = list(maps)
        self.positions = positions

    @property
    def variant_count(self) -> int:
        """How many variants (1 + augmented ones)."""
        return len(self.maps)

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        backbone: FrameBackbone,
        normalization: nn.Module,
        tracklets: Sequence[Tracklet],
        image_size: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH),
        augmented_variants: int = 0,
        ranges: AugmentationRanges | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float16,
    ) -> FeatureMapCache:
        """Run ``backbone.trunk_maps(normalization(crop))`` over every distinct crop of
        ``tracklets``, plainly and for ``augmented_variants`` random transforms per tracklet
        (drawn from ``ranges`` with a generator seeded by ``(seed, variant, tracklet)``)."""
        files = sorted({path for tracklet in tracklets for path in tracklet.image_paths})
        positions = {path: row for row, path in enumerate(files)}
        owner = {path: number for number, t in enumerate(tracklets) for path in t.image_paths}
        ranges = ranges or AugmentationRanges()
        was_training = backbone.training
        backbone.eval()
        variants = []
        for variant in range(augmented_variants + 1):
            transforms: dict[int, TrackletTransform] = {}
            if variant:
                for number in range(len(tracklets)):
                    generator = np.random.default_rng([seed, variant, number])
                    transforms[number] = draw_transform(ranges, generator)
            chunks: list[torch.Tensor] = []
            description = f"caching trunk maps (variant {variant})"
            with tqdm(total=len(files), desc=description, unit="crop") as progress:
                for start in range(0, len(files), BATCH_FRAMES):
                    batch = files[start : start + BATCH_FRAMES]
                    images = [read_rgb_image(path, image_size) for path in batch]
                    if variant:
                        images = [
                            transforms[owner[path]].apply(image)
                            for path, image in zip(batch, images, strict=True)
                        ]
                    maps = backbone.trunk_maps(normalization(torch.from_numpy(np.stack(images))))
                    chunks.append(maps.to(dtype))
                    progress.update(len(batch))
            variants.append(torch.cat(chunks))
        backbone.train(was_training)
        return cls(variants, positions)

    def limited(self, variant_count: int) -> FeatureMapCache:
        """The same cache with only its first ``variant_count`` variants (shares tensors)."""
        if not 1 <= variant_count <= self.variant_count:
            raise ValueError(f"asked for {variant_count} of {self.variant_count} variants")
        return FeatureMapCache(self.maps[:variant_count], self.positions)

    def maps_of(self, tracklet: Tracklet, indices: np.ndarray, variant: int = 0) -> torch.Tensor:
        """Cached ``(T, C, h, w)`` trunk maps of the tracklet's crops at ``indices``."""
        rows = [self.positions[tracklet.image_paths[int(index)]] for index in indices]
        return self.maps[variant][rows]
