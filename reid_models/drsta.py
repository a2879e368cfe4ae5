"""DRSTA: Li, Bak, Carr and Wang, "Diversity Regularized Spatiotemporal Attention for
Video-based Person Re-identification", CVPR 2018.

Data flow for a clip of ``N`` frames (drawn TSN-style, one per chunk of the tracklet:
``reid_models.sampling``, mode ``chunks``)::

    frames -> ImageNormalization -> FrameBackbone -> x_{n,l} (C-d) at L = h * w positions
           -> K spatial attention models, each 1x1 conv, ReLU, 1x1 conv, softmax over the L
              positions -> s_{n,k} (distribution over positions)
           -> part features x_{n,k} = sum_l s_{n,k,l} x_{n,l}            (C-d each)
           -> temporal attention per part: t_{n,k} = softmax_n(w_k . x_{n,k} + b_k)
           -> x_k = sum_n t_{n,k} x_{n,k}; parts = concat(x_1 .. x_K)          (K * C)
           -> video feature = mean_n pool(x_n) + P(parts)                      (D)

``pool`` is the backbone's own global feature (average pool and, for OSNet, its ``fc`` head;
``D`` its ``pooled_dim``), so the first term is temporal pooling (TP); ``P`` is a linear layer
that starts at zero, and both attentions start uniform (their scoring layers start at zero).
An untrained encoder therefore *is* TP, and training adds the part features only as far as
the losses ask.

Training adds the Hellinger diversity regularizer on the ``s_{n,k}`` (see
:func:`reid_models.losses.hellinger_diversity_regularizer`) to the identity loss (OIM in the
paper; :class:`reid_models.losses.DrstaLoss`). The spatial attention only uses 1x1
convolutions and the temporal attention a softmax over frames, so any input size and any
``N >= 1`` work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reid_models.backbones import FrameBackbone, build_backbone
from reid_models.contract import IMAGENET_MEAN, IMAGENET_STD, ImageNormalization
from reid_models.state_dicts import read_state_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrstaTrainingOutput:
    """What :class:`DrstaLoss <reid_models.losses.DrstaLoss>` needs, plus the temporal weights.

    Attributes:
        video_features: float ``(batch, D)``: temporal pooling plus the projected parts, not
            normalised.
        part_features: float ``(batch, part_count, C)``, the attended parts ``x_k``.
        attention_maps: float ``(batch, N, part_count, h * w)``, each row a distribution.
        temporal_weights: float ``(batch, N, part_count)``, each column summing to 1 over
            frames.
    """

    video_features: torch.Tensor
    part_features: torch.Tensor
    attention_maps: torch.Tensor
    temporal_weights: torch.Tensor


class MultipleSpatialAttention(nn.Module):
    """``K`` independent spatial attention models applied to the same feature maps.

    Model ``k`` scores position ``l`` as ``w'_k . relu(W_k x_l + b_k) + b'_k``. All ``K`` first
    layers are one 1x1 convolution with ``K * hidden_channels`` outputs; the second layers are
    one grouped 1x1 convolution (``groups=K``), so the models share no weights.

    The scoring layers start at zero, so every model starts as the uniform distribution (a
    global average pool).

    Args:
        channels: ``C`` of the feature maps.
        part_count: number of models ``K``.
        hidden_channels: hidden width of each model.
    """

    def __init__(self, channels: int, part_count: int, hidden_channels: int = 256) -> None:
        super().__init__()
        self.part_count = part_count
        self.hidden = nn.Conv2d(channels, part_count * hidden_channels, kernel_size=1)
        self.score = nn.Conv2d(
            part_count * hidden_channels, part_count, kernel_size=1, groups=part_count
        )
        nn.init.zeros_(self.score.weight)
        if self.score.bias is not None:
            nn.init.zeros_(self.score.bias)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Float ``(N, C, h, w)`` -> attention float ``(N, K, h * w)``, rows summing to 1."""
        scores = self.score(F.relu(self.hidden(feature_maps)))
        return scores.flatten(2).softmax(dim=2)


class PartTemporalAttention(nn.Module):
    """Per-part temporal attention: ``t_{n,k} = softmax_n(w_k . x_{n,k} + b_k)``.

    ``w`` starts at zero: uniform weights over frames (temporal pooling) until trained.

    Args:
        part_count: ``K``.
        feature_dim: size of each part feature.
    """

    def __init__(self, part_count: int, feature_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(part_count, feature_dim))
        self.bias = nn.Parameter(torch.zeros(part_count))

    def forward(self, part_features: torch.Tensor) -> torch.Tensor:
        """Float ``(batch, N, K, D)`` -> weights float ``(batch, N, K)``, summing to 1 over N."""
        scores = (part_features * self.weight).sum(dim=3) + self.bias
        return scores.softmax(dim=1)


class DrstaEncoder(nn.Module):
    """DRSTA clip encoder.

    ``forward`` in train mode returns :class:`DrstaTrainingOutput`; in eval mode float32
    ``(batch, embedding_dim)`` L2-normalised embeddings, ``embedding_dim`` the backbone's
    ``pooled_dim``; untrained, they equal temporal pooling's (see the module docstring).
    Input in both modes: float32 ``(batch, N, 3, H, W)`` RGB in ``[0, 1]``
    (``reid_models.contract``), any ``N >= 1``.

    Args:
        backbone: frame feature extractor with ``out_channels = C``.
        part_count: spatial attention models ``K`` (paper: 6).
        attention_hidden_channels: hidden width of each spatial attention model (64: the
            six models' first layer is then as wide as one of 384 channels, which keeps CPU
            training at minutes).
        mean: normalisation mean (RGB).
        std: normalisation standard deviation (RGB).
    """

    def __init__(
        self,
        backbone: FrameBackbone,
        part_count: int = 6,
        attention_hidden_channels: int = 64,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.normalization = ImageNormalization(mean, std)
        self.backbone = backbone
        self.part_count = part_count
        self.embedding_dim = backbone.pooled_dim
        self.spatial_attention = MultipleSpatialAttention(
            backbone.out_channels, part_count, attention_hidden_channels
        )
        self.temporal_attention = PartTemporalAttention(part_count, backbone.out_channels)
        self.part_projection = nn.Linear(part_count * backbone.out_channels, self.embedding_dim)
        nn.init.zeros_(self.part_projection.weight)
        nn.init.zeros_(self.part_projection.bias)

    def training_outputs(self, clips: torch.Tensor) -> DrstaTrainingOutput:
        """Video features, spatial attention maps and temporal weights (any mode).

        Args:
            clips: float32 ``(batch, N, 3, H, W)``, RGB in ``[0, 1]``.
        """
        batch, frame_count = clips.shape[0], clips.shape[1]
        return self._outputs(self._backbone_maps(clips), batch, frame_count)

    def frame_feature_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone maps of every frame: ``(batch, N, 3, H, W)`` -> ``(batch, N, C, h, w)``."""
        return self._backbone_maps(clips).unflatten(0, (clips.shape[0], clips.shape[1]))

    def _backbone_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """The one backbone pass: ``(batch, N, 3, H, W)`` -> ``(batch * N, C, h, w)``."""
        return self.backbone(self.normalization(clips.flatten(0, 1)))

    def training_outputs_from_maps(self, feature_maps: torch.Tensor) -> DrstaTrainingOutput:
        """:meth:`training_outputs` from backbone maps float ``(batch, N, C, h, w)`` (training
        with a frozen backbone computes them once per crop)."""
        batch, frame_count = feature_maps.shape[0], feature_maps.shape[1]
        return self._outputs(feature_maps.flatten(0, 1), batch, frame_count)

    def _outputs(self, maps: torch.Tensor, batch: int, frame_count: int) -> DrstaTrainingOutput:
        attention = self.spatial_attention(maps)
        part_features = attention @ maps.flatten(2).transpose(1, 2)
        part_features = part_features.unflatten(0, (batch, frame_count))
        temporal_weights = self.temporal_attention(part_features)
        video_parts = (temporal_weights.unsqueeze(3) * part_features).sum(dim=1)
        pooled = self.backbone.pool(maps).unflatten(0, (-1, frame_count)).mean(dim=1)
        return DrstaTrainingOutput(
            video_features=pooled + self.part_projection(video_parts.flatten(1)),
            part_features=video_parts,
            attention_maps=attention.unflatten(0, (batch, frame_count)),
            temporal_weights=temporal_weights,
        )

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """L2-normalised video embeddings, float32 ``(batch, embedding_dim)``."""
        return F.normalize(self.training_outputs(clips).video_features, dim=1)

    def embed_maps(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` from backbone maps float ``(batch, N, C, h, w)``."""
        return F.normalize(self.training_outputs_from_maps(feature_maps).video_features, dim=1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor | DrstaTrainingOutput:
        """Train mode: :meth:`training_outputs`; eval mode: :meth:`embed`."""
        return self.training_outputs(clips) if self.training else self.embed(clips)


def build_drsta_encoder(
    *,
    weights: Path | None,
    backbone: str,
    backbone_weights: Path | None,
    pretrained: bool,
) -> DrstaEncoder:
    """Encoder builder for ``reid_models.factory`` (name ``"drsta"``), in eval mode.

    ``weights`` is a plain state dict file of a trained :class:`DrstaEncoder` (the OIM table
    lives in the loss, not here), possibly wrapped under ``"state_dict"`` or ``"model"`` and
    with a ``module.`` prefix, loaded with ``strict=True``; ``backbone_weights``/``pretrained``
    initialise the backbone as in ``reid_models.backbones.build_backbone``.
    """
    frame_backbone = build_backbone(backbone, backbone_weights, pretrained=pretrained)
    encoder = DrstaEncoder(frame_backbone)
    if weights is not None:
        encoder.load_state_dict(read_state_dict(weights), strict=True)
        logger.info("loaded DRSTA weights from %s", weights)
    return encoder.eval()
