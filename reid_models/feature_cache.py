"""Backbone feature maps of every training crop, computed once for frozen-backbone training.

With the backbone frozen, a crop's feature map never changes, so the trainer computes it once
(eval mode, no gradients) and the temporal head trains on cached maps: an epoch then costs the
head's forward and backward only, which makes CPU training a matter of minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH
from reid_models.datasets import Tracklet, read_rgb_image

BATCH_FRAMES = 64


class FeatureMapCache:
    """Float16 maps ``(crops, C, h, w)`` and where each crop file's map lives.

    Args:
        maps: float16 ``(crops, C, h, w)``.
        positions: crop file -> row of ``maps``.
    """

    def __init__(self, maps: torch.Tensor, positions: dict[Path, int]) -> None:
        self.maps = maps
        self.positions = positions

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        backbone: nn.Module,
        normalization: nn.Module,
        tracklets: Sequence[Tracklet],
        image_size: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH),
    ) -> FeatureMapCache:
        """Run ``backbone(normalization(crop))`` over every distinct crop of ``tracklets``."""
        files = sorted({path for tracklet in tracklets for path in tracklet.image_paths})
        was_training = backbone.training
        backbone.eval()
        chunks: list[torch.Tensor] = []
        with tqdm(total=len(files), desc="caching backbone maps", unit="crop") as progress:
            for start in range(0, len(files), BATCH_FRAMES):
                batch = files[start : start + BATCH_FRAMES]
                images = np.stack([read_rgb_image(path, image_size) for path in batch])
                maps = backbone(normalization(torch.from_numpy(images)))
                chunks.append(maps.to(torch.float16))
                progress.update(len(batch))
        backbone.train(was_training)
        positions = {path: row for row, path in enumerate(files)}
        return cls(torch.cat(chunks), positions)

    def maps_of(self, tracklet: Tracklet, indices: np.ndarray) -> torch.Tensor:
        """Float16 ``(T, C, h, w)`` maps of the tracklet's crops at ``indices``."""
        rows = [self.positions[tracklet.image_paths[int(index)]] for index in indices]
        return self.maps[rows]
