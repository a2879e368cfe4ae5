"""Held-out cross-camera retrieval of an encoder in training, for learning curves.

The probe embeds the ``cross-camera, held out`` protocol of ``reid_models.evaluate`` (the
later-in-time ``test`` tracklets with a ground-truth person; camera A queries camera B and the
reverse) from trunk maps computed once (float32, the same clip of ``T`` evenly spaced crops
per tracklet as the evaluation), so scoring a model after every epoch costs its head's
forward pass only. It reports; nothing is chosen by it (no early stopping, no model
selection): the held-out split is never trained or tuned on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reid_models.backbones import FrameBackbone
from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH, ImageNormalization
from reid_models.datasets import Tracklet, read_rgb_image
from reid_models.evaluate import Protocol, cross_camera_protocols, metrics_row
from reid_models.evaluate_metrics import evaluate_retrieval, pairwise_distances
from reid_models.mined_index import MinedIndex
from reid_models.sampling import SamplingMode, sample_clip_indices

MapsEmbedder = Callable[[torch.Tensor], torch.Tensor]
"""Float ``(batch, T, C, h, w)`` backbone maps -> float ``(batch, D)`` L2-normalised."""


def temporal_pooling_of_maps(backbone: FrameBackbone) -> MapsEmbedder:
    """TP from backbone maps: the mean over time of the backbone's pooled feature."""

    def embed(maps: torch.Tensor) -> torch.Tensor:
        pooled = backbone.pool(maps.flatten(0, 1)).unflatten(0, (-1, maps.shape[1]))
        return F.normalize(pooled.mean(dim=1), dim=1)

    return embed


@dataclass
class HeldOutProbe:
    """Trunk maps of the held-out protocol's tracklets and the protocol directions.

    Attributes:
        protocols: the ``cross-camera, held out`` directions.
        trunk_maps: float32 ``(T, C, h, w)`` per distinct tracklet, keyed by its crop files.
    """

    protocols: list[Protocol]
    trunk_maps: dict[tuple[Path, ...], torch.Tensor]

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        index: MinedIndex,
        backbone: FrameBackbone,
        normalization: ImageNormalization,
        clip_length: int,
    ) -> HeldOutProbe:
        """Compute the trunk maps of every held-out labelled tracklet (backbone in eval)."""
        protocols = [
            protocol
            for protocol in cross_camera_protocols(index, held_out_only=True)
            if protocol.query and protocol.gallery
        ]
        tracklets: dict[tuple[Path, ...], Tracklet] = {}
        for protocol in protocols:
            for tracklet in (*protocol.query, *protocol.gallery):
                tracklets.setdefault(tracklet.image_paths, tracklet)
        was_training = backbone.training
        backbone.eval()
        trunk_maps = {}
        for paths, tracklet in tracklets.items():
            indices = sample_clip_indices(len(paths), clip_length, SamplingMode.EVENLY)
            frames = np.stack(
                [
                    read_rgb_image(tracklet.image_paths[int(i)], (INPUT_HEIGHT, INPUT_WIDTH))
                    for i in indices
                ]
            )
            trunk_maps[paths] = backbone.trunk_maps(normalization(torch.from_numpy(frames)))
        backbone.train(was_training)
        return cls(protocols, trunk_maps)

    @torch.no_grad()
    def score(self, backbone: FrameBackbone, embed: MapsEmbedder) -> dict[str, float]:
        """Rank-1/5/10 and mAP in percent, mean over directions, of ``embed`` applied to
        ``backbone.last_stage`` of the cached trunk maps (call with modules in eval mode)."""
        keys = list(self.trunk_maps)
        embedded: dict[tuple[Path, ...], np.ndarray] = {}
        for start in range(0, len(keys), 16):
            chunk = keys[start : start + 16]
            maps = torch.stack([self.trunk_maps[key] for key in chunk])
            maps = backbone.last_stage(maps.flatten(0, 1)).unflatten(0, maps.shape[:2])
            for key, feature in zip(chunk, embed(maps).numpy(), strict=True):
                embedded[key] = feature
        metrics = []
        for protocol in self.protocols:
            query = np.stack([embedded[t.image_paths] for t in protocol.query])
            gallery = np.stack([embedded[t.image_paths] for t in protocol.gallery])
            metrics.append(
                evaluate_retrieval(
                    pairwise_distances(query, gallery, metric="cosine"),
                    np.array([t.identity for t in protocol.query]),
                    np.array([t.identity for t in protocol.gallery]),
                    np.array([t.camera for t in protocol.query]),
                    np.array([t.camera for t in protocol.gallery]),
                )
            )
        return metrics_row(metrics)
