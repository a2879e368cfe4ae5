"""RRU+STIM: Liu et al., "Spatial and Temporal Mutual Promotion for Video-based Person
Re-identification", AAAI 2019 (authors' code: yolomax/rru-reid, yolomax/person-reid-lib).

Data flow for a clip of ``T`` frames::

    frames -> ImageNormalization -> FrameBackbone -> X_t (C, h, w) per frame
           -> Refining Recurrent Unit: S_1 = X_1, S_t = (1 - z_t) * S_{t-1} + z_t * X_t
           -> refined maps R_t = X_t + g * (S_t - X_t)       (g per channel, starts at 0)
           -> temporal pooling of the backbone's own global feature: mean_t pool(R_t)  (D)
           -> + P(STIM(R)), STIM: 1x1x1 conv, 3x3x3 conv over (C, T, h, w), average pool,
              P a linear layer to D that starts at zero               -> video feature (D)
    training also returns: classifier logits of the video feature, and horizontal part
    features (stripes of the refined maps, averaged over time and width) for the part triplet
    loss.

The RRU and STIM are attached to a pretrained backbone as residual branches whose last layers
(``g`` and ``P``) start at zero, so an untrained encoder *is* temporal pooling (TP) over the
backbone's pooled features (``D`` = the backbone's ``pooled_dim``, 512 for OSNet x0.25), and
training moves away from TP only as far as the losses ask.

The update gate ``z_t`` (shape ``(C, h, w)``, values in ``(0, 1)``) is computed from the
concatenation ``[X_t - S_{t-1}, X_t - X_{t-1}]`` by a transition layer (1x1 convolution, batch
norm, ReLU), then ``sigmoid(spatial_attention * channel_attention)``: the spatial attention is
an MLP over the ``h * w`` positions of the channel-mean of the transition output (the authors'
``8x8`` convolution on an ``8x8`` map is exactly such a fully connected layer), the channel
attention a linear layer on its global average. Because the spatial attention is fully
connected over positions, the model is built for one feature-map size, found at construction
by running the backbone on an ``input_size`` image.

The recurrence is a Python loop over frames: eager PyTorch takes any ``T``, but a traced ONNX
export is unrolled for the ``T`` it was traced with (the batch axis stays dynamic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reid_models.backbones import FrameBackbone, build_backbone
from reid_models.contract import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_HEIGHT,
    INPUT_WIDTH,
    ImageNormalization,
)
from reid_models.state_dicts import read_state_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RruStimTrainingOutput:
    """What :class:`RruStimLoss <reid_models.losses.RruStimLoss>` needs.

    Attributes:
        logits: float ``(batch, identity_count)``, or ``None`` without a classifier head.
        video_features: float ``(batch, embedding_dim)``: pooled backbone features plus the
            projected STIM feature, not normalised.
        part_features: float ``(batch, part_count, C)`` horizontal stripes of the RRU output,
            averaged over time and width.
    """

    logits: torch.Tensor | None
    video_features: torch.Tensor
    part_features: torch.Tensor


def feature_map_size(
    backbone: FrameBackbone, input_size: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH)
) -> tuple[int, int]:
    """``(h, w)`` of the backbone's feature maps for ``input_size = (H, W)`` frames."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            parameter = next(backbone.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
            maps = backbone(torch.zeros(1, 3, *input_size, device=device))
    finally:
        backbone.train(was_training)
    return int(maps.shape[2]), int(maps.shape[3])


def blend_state(state: torch.Tensor, frame: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """The RRU update ``(1 - gate) * state + gate * frame``; all float ``(N, C, h, w)``.

    ``gate = 0`` keeps the previous state, ``gate = 1`` replaces it by the current frame.
    """
    return (1.0 - gate) * state + gate * frame


class RefiningRecurrentUnit(nn.Module):
    """Refines frame feature maps recurrently, filling occluded or noisy regions from the past.

    Args:
        channels: ``C`` of the frame feature maps.
        map_size: ``(h, w)`` of the frame feature maps.
        transition_channels: output channels of the transition layer (authors: 256).
        spatial_hidden: hidden width of the spatial-attention MLP (authors: 128).
    """

    def __init__(
        self,
        channels: int,
        map_size: tuple[int, int],
        transition_channels: int = 256,
        spatial_hidden: int = 128,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.map_size = map_size
        positions = map_size[0] * map_size[1]
        self.transition = nn.Sequential(
            nn.Conv2d(2 * channels, transition_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(transition_channels),
            nn.ReLU(inplace=True),
        )
        self.spatial_attention = nn.Sequential(
            nn.Linear(positions, spatial_hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(spatial_hidden, positions, bias=False),
        )
        self.channel_attention = nn.Linear(transition_channels, channels, bias=False)

    def update_gate(
        self, frame: torch.Tensor, previous_state: torch.Tensor, previous_frame: torch.Tensor
    ) -> torch.Tensor:
        """The update gate ``z_t``.

        Args:
            frame: ``X_t``, float ``(N, C, h, w)``.
            previous_state: ``S_{t-1}``, same shape.
            previous_frame: ``X_{t-1}``, same shape.

        Returns:
            float ``(N, C, h, w)`` in ``(0, 1)``: the sigmoid of the spatial attention
            ``(N, 1, h, w)`` times the channel attention ``(N, C, 1, 1)``.
        """
        transition = self.transition(
            torch.cat([frame - previous_state, frame - previous_frame], dim=1)
        )
        # Reshapes leave the batch axis implicit so that exported graphs keep it dynamic.
        spatial = self.spatial_attention(transition.mean(dim=1).flatten(1))
        spatial = spatial.view(-1, 1, *self.map_size)
        channel = self.channel_attention(transition.mean(dim=(2, 3)))[:, :, None, None]
        return torch.sigmoid(spatial * channel)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Refine a sequence of frame feature maps.

        Args:
            feature_maps: float ``(batch, T, C, h, w)``, any ``T >= 1``.

        Returns:
            float ``(batch, T, C, h, w)``: the states ``S_1 .. S_T`` with ``S_1 = X_1``.
        """
        if not torch.jit.is_tracing() and tuple(feature_maps.shape[3:]) != self.map_size:
            raise ValueError(
                f"RRU built for {self.map_size} feature maps, got {tuple(feature_maps.shape[3:])}"
            )
        state = feature_maps[:, 0]
        states = [state]
        for step in range(1, feature_maps.shape[1]):
            frame = feature_maps[:, step]
            gate = self.update_gate(frame, state, feature_maps[:, step - 1])
            state = blend_state(state, frame, gate)
            states.append(state)
        return torch.stack(states, dim=1)


class SpatialTemporalIntegration(nn.Module):
    """STIM: spatial-temporal clues integration over the refined ``(C, T, h, w)`` volume.

    1x1x1 convolution to ``hidden_channels``, 3x3x3 convolution (padding 1, so any ``T``
    works) to ``out_channels``, each with batch norm and ReLU, then average pooling over time
    and space (authors' ``FuseNet.t_info`` followed by a mean over ``T`` and an ``AvgPool2d``).

    Args:
        in_channels: ``C`` of the refined maps.
        hidden_channels: width after the 1x1x1 convolution (authors: 256).
        out_channels: video feature size (authors: 256).
    """

    def __init__(self, in_channels: int, hidden_channels: int = 256, out_channels: int = 256):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(in_channels, hidden_channels, kernel_size=1, bias=False),
            nn.BatchNorm3d(hidden_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(hidden_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, refined: torch.Tensor) -> torch.Tensor:
        """Float ``(batch, T, C, h, w)`` -> video feature float ``(batch, out_channels)``, >= 0."""
        volume = refined.permute(0, 2, 1, 3, 4)
        return self.layers(volume).mean(dim=(2, 3, 4))


class ResidualRefinement(nn.Module):
    """``X + g * (S - X)`` with a per-channel gain ``g`` that starts at zero.

    Args:
        channels: ``C`` of the maps; ``g`` has shape ``(C,)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(channels))

    def forward(self, frames: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Float ``(batch, T, C, h, w)`` frames and RRU states -> refined maps, same shape."""
        return frames + self.gain.view(1, 1, -1, 1, 1) * (states - frames)


def zero_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer whose weight and bias start at zero (the last layer of a residual
    branch, so the branch adds nothing before training)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class IdentityClassifier(nn.Module):
    """The authors' classifier head: linear, batch norm, leaky ReLU, dropout, linear.

    No BNNeck: the triplet loss and the inference embedding both use the STIM feature itself.
    Input float ``(batch, in_features)``; output logits ``(batch, identity_count)``.
    """

    def __init__(
        self, in_features: int, identity_count: int, hidden: int = 512, dropout: float = 0.5
    ) -> None:
        super().__init__()
        hidden_layer = nn.Linear(in_features, hidden)
        nn.init.kaiming_normal_(hidden_layer.weight, mode="fan_out")
        nn.init.zeros_(hidden_layer.bias)
        self.bottleneck = nn.Sequential(
            hidden_layer, nn.BatchNorm1d(hidden), nn.LeakyReLU(0.1), nn.Dropout(dropout)
        )
        self.output = nn.Linear(hidden, identity_count)
        nn.init.normal_(self.output.weight, std=0.001)
        nn.init.zeros_(self.output.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.bottleneck(features))


class RruStimEncoder(nn.Module):
    """RRU+STIM clip encoder.

    ``forward`` in train mode returns :class:`RruStimTrainingOutput`; in eval mode float32
    ``(batch, embedding_dim)`` L2-normalised embeddings, ``embedding_dim`` the backbone's
    ``pooled_dim``. Input in both modes: float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``
    (``reid_models.contract``), ``H x W`` equal to ``input_size``, any ``T >= 1``. Untrained,
    the embedding equals temporal pooling's (see the module docstring).

    Args:
        backbone: frame feature extractor.
        identity_count: training identities for the classifier head; ``None`` builds no head
            (inference only, ``logits`` is then ``None``).
        input_size: ``(H, W)`` of the frames; fixes the feature-map size the RRU is built for.
        transition_channels: RRU transition width (authors: 256; 64 here, and 32 for STIM's
            widths: the residual branches are a refinement projected onto the pretrained
            feature, and STIM's 3x3x3 convolution at width 256 makes CPU training 64 times
            slower).
        spatial_hidden: RRU spatial-attention hidden width.
        stim_hidden_channels: STIM 1x1x1 convolution width.
        stim_channels: STIM output size (projected to ``embedding_dim`` by a zero-initialised
            linear layer).
        part_count: horizontal stripes for the part features; ``None`` means one per
            feature-map row, as in the authors' code.
        classifier_hidden: classifier bottleneck width.
        classifier_dropout: classifier dropout probability.
        mean: normalisation mean (RGB).
        std: normalisation standard deviation (RGB).
    """

    def __init__(
        self,
        backbone: FrameBackbone,
        identity_count: int | None = None,
        input_size: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH),
        transition_channels: int = 64,
        spatial_hidden: int = 128,
        stim_hidden_channels: int = 32,
        stim_channels: int = 32,
        part_count: int | None = None,
        classifier_hidden: int = 512,
        classifier_dropout: float = 0.5,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.normalization = ImageNormalization(mean, std)
        self.backbone = backbone
        self.input_size = input_size
        self.map_size = feature_map_size(backbone, input_size)
        self.embedding_dim = backbone.pooled_dim
        self.part_count = self.map_size[0] if part_count is None else part_count
        self.rru = RefiningRecurrentUnit(
            backbone.out_channels, self.map_size, transition_channels, spatial_hidden
        )
        self.refinement = ResidualRefinement(backbone.out_channels)
        self.stim = SpatialTemporalIntegration(
            backbone.out_channels, stim_hidden_channels, stim_channels
        )
        self.stim_projection = zero_linear(stim_channels, self.embedding_dim)
        self.classifier = (
            None
            if identity_count is None
            else IdentityClassifier(
                self.embedding_dim, identity_count, classifier_hidden, classifier_dropout
            )
        )

    def remove_classifier(self) -> IdentityClassifier | None:
        """Detach and return the classifier head, leaving the inference-only encoder.

        Call before ``reid_models.factory.save_encoder``: encoder files hold no training head,
        so they load into the head-less encoder the factory builds.
        """
        classifier, self.classifier = self.classifier, None
        return classifier

    def refined_feature_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone maps refined by the RRU (residually: ``X + g * (S - X)``).

        Args:
            clips: float32 ``(batch, T, 3, H, W)``, RGB in ``[0, 1]``.

        Returns:
            float32 ``(batch, T, C, h, w)``.
        """
        return self.refine(self.frame_feature_maps(clips))

    def refine(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Residual RRU refinement of backbone maps float ``(batch, T, C, h, w)``."""
        return self.refinement(feature_maps, self.rru(feature_maps))

    def video_features(self, refined: torch.Tensor) -> torch.Tensor:
        """Float ``(batch, T, C, h, w)`` refined maps -> float ``(batch, embedding_dim)``: the
        time mean of the backbone's pooled feature plus the projected STIM feature."""
        # -1: the batch axis stays dynamic in exported graphs.
        pooled = self.backbone.pool(refined.flatten(0, 1)).unflatten(0, (-1, refined.shape[1]))
        return pooled.mean(dim=1) + self.stim_projection(self.stim(refined))

    def frame_feature_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """Backbone maps of every frame: ``(batch, T, 3, H, W)`` -> ``(batch, T, C, h, w)``."""
        batch, clip_length = clips.shape[0], clips.shape[1]
        maps = self.backbone(self.normalization(clips.flatten(0, 1)))
        return maps.unflatten(0, (batch, clip_length))

    def part_features(self, refined: torch.Tensor) -> torch.Tensor:
        """Horizontal stripes: float ``(batch, T, C, h, w)`` -> ``(batch, part_count, C)``."""
        rows = refined.mean(dim=(1, 4))
        return F.adaptive_avg_pool1d(rows, self.part_count).transpose(1, 2)

    def training_outputs(self, clips: torch.Tensor) -> RruStimTrainingOutput:
        """Logits, video features and part features for the losses (any mode)."""
        return self.training_outputs_from_maps(self.frame_feature_maps(clips))

    def training_outputs_from_maps(self, feature_maps: torch.Tensor) -> RruStimTrainingOutput:
        """:meth:`training_outputs` from backbone maps float ``(batch, T, C, h, w)`` (training
        with a frozen backbone computes them once per crop)."""
        refined = self.refine(feature_maps)
        video_features = self.video_features(refined)
        logits = None if self.classifier is None else self.classifier(video_features)
        return RruStimTrainingOutput(logits, video_features, self.part_features(refined))

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """L2-normalised video embeddings, float32 ``(batch, embedding_dim)``."""
        return self.embed_maps(self.frame_feature_maps(clips))

    def embed_maps(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` from backbone maps float ``(batch, T, C, h, w)``."""
        return F.normalize(self.video_features(self.refine(feature_maps)), dim=1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor | RruStimTrainingOutput:
        """Train mode: :meth:`training_outputs`; eval mode: :meth:`embed`."""
        return self.training_outputs(clips) if self.training else self.embed(clips)


def load_encoder_state(encoder: nn.Module, weights: Path) -> None:
    """Load a plain state dict file into an encoder, ignoring training-only heads.

    The file may hold the state dict itself or wrap it under ``"state_dict"`` or ``"model"``;
    a ``module.`` prefix (DataParallel) is removed and ``classifier.*`` entries are dropped.
    The remaining tensors must fit exactly (``strict=True``).
    """
    state_dict = {
        name: tensor
        for name, tensor in read_state_dict(weights).items()
        if not name.startswith("classifier.")
    }
    encoder.load_state_dict(state_dict, strict=True)
    logger.info("loaded %d tensors from %s", len(state_dict), weights)


def build_rru_stim_encoder(
    *,
    weights: Path | None,
    backbone: str,
    backbone_weights: Path | None,
    pretrained: bool,
) -> RruStimEncoder:
    """Encoder builder for ``reid_models.factory`` (name ``"rru_stim"``), in eval mode.

    Builds the inference encoder (no classifier head) for ``256 x 128`` frames. ``weights`` is
    a plain state dict of a trained :class:`RruStimEncoder` (see :func:`load_encoder_state`);
    ``backbone_weights``/``pretrained`` initialise the backbone as in
    ``reid_models.backbones.build_backbone``.
    """
    frame_backbone = build_backbone(backbone, backbone_weights, pretrained=pretrained)
    encoder = RruStimEncoder(frame_backbone)
    if weights is not None:
        load_encoder_state(encoder, weights)
    return encoder.eval()
