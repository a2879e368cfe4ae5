"""Temporal pooling (TP): the video ReID baseline that averages per-frame features over time.

Every frame of a clip goes through the frame backbone and its global pooling; the ``T`` frame
features are averaged and L2-normalised. TP has no parameters of its own, so its weights are
its backbone's, and it works for any clip length ``T``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reid_models.backbones import FrameBackbone, build_backbone
from reid_models.contract import IMAGENET_MEAN, IMAGENET_STD, ImageNormalization


class TemporalPoolingEncoder(nn.Module):
    """Clip encoder: normalise, per-frame backbone features, mean over time, L2 normalise.

    Attributes:
        normalization: the input contract's first layer (mean/std per RGB channel).
        backbone: the frame backbone.
        embedding_dim: size ``D`` of the output, the backbone's ``pooled_dim``.
    """

    def __init__(
        self,
        backbone: FrameBackbone,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.normalization = ImageNormalization(mean, std)
        self.backbone = backbone
        self.embedding_dim = backbone.pooled_dim

    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Per-frame pooled backbone features, before temporal pooling.

        Args:
            clips: float32 ``(batch, T, 3, H, W)``, RGB in ``[0, 1]``.

        Returns:
            float32 ``(batch, T, embedding_dim)``, not normalised.
        """
        batch, clip_length = clips.shape[0], clips.shape[1]
        frames = self.normalization(clips.flatten(0, 1))
        features = self.backbone.pool(self.backbone(frames))
        return features.unflatten(0, (batch, clip_length))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Embed clips.

        Args:
            clips: float32 ``(batch, T, 3, H, W)``, RGB in ``[0, 1]``; any ``T >= 1``.

        Returns:
            float32 ``(batch, embedding_dim)`` with unit L2 norm per row.
        """
        return F.normalize(self.frame_features(clips).mean(dim=1), dim=1)


def build_temporal_pooling_encoder(
    *,
    weights: Path | None,
    backbone: str,
    backbone_weights: Path | None,
    pretrained: bool,
) -> TemporalPoolingEncoder:
    """Encoder builder for ``reid_models.factory`` (name ``"tp"``), in eval mode.

    TP has no parameters besides its backbone, so a plain (non-encoder-checkpoint) ``weights``
    file is the backbone's weights, e.g. ``osnet_x0_25_market1501.pth``. With neither
    ``weights`` nor ``backbone_weights`` the backbone's bundled default is used (OSNet x0.25:
    MSMT17), unless ``pretrained`` is ``False``.
    """
    if weights is not None and backbone_weights is not None:
        raise ValueError(
            "tp has no parameters besides its backbone: give weights or backbone_weights, not both"
        )
    frame_backbone = build_backbone(
        backbone, weights if weights is not None else backbone_weights, pretrained=pretrained
    )
    return TemporalPoolingEncoder(frame_backbone).eval()
